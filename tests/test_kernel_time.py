"""Kernel time: classing each profiler's names, reading jax's HLO, and the measurement's kernel_time.

The names below are as the profilers give them (torch's aten operators and cuDNN's kernels, TensorFlow's op
types, XLA's ops with the op names jax gives them); the profilers themselves run in Docker on CPU cells
(tests/test_docker_backends.py) and on a GPU in bench/gpu_check.py.
"""

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from measurements import epoch
from runner.analysis import analyze
from runner.older_schemas import measurement_to_current
from runner.report import render
from test_report import CPU_ID, GPU_93_ID, GPU_95_ID, JITTER, repeated
from workload import contract
from workload.contract import ContractError, Measurement

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workload"))

import kernel_time  # noqa: E402


@pytest.mark.parametrize("name, kind", [
    # torch on a CPU: aten operators, self time
    ("aten::mkldnn_convolution", "convolution_forward"), ("aten::convolution_backward", "convolution_backward"),
    ("aten::addmm", "matmul"), ("aten::mm", "matmul"), ("aten::copy_", "memory_copy"), ("aten::to", "memory_copy"),
    ("aten::threshold_backward", "elementwise"), ("aten::add_", "elementwise"), ("aten::max_pool2d_with_indices", "other"),
    ("aten::sum", "other"),
    # cuDNN's and torch's kernels on a GPU
    ("sm90_xmma_fprop_implicit_gemm_tf32f32_tf32f32_f32_nhwckrsc_nhwc_tilesize128x128x32", "convolution_forward"),
    ("sm80_xmma_dgrad_implicit_gemm_indexed_f32f32_tf32f32_f32_nhwckrsc_nchw", "convolution_backward_data"),
    ("void cudnn::detail::wgrad_alg0_engine<float, 128, 6, 8, 3, 3, 5, false, 512>", "convolution_backward_filter"),
    ("void cudnn::detail::dgrad_engine<float, 128, 6, 7, 3, 3, 5, false>", "convolution_backward_data"),
    ("void implicit_convolve_sgemm<float, float, 128, 5, 5, 3, 3, 3, 1, false, false, true>", "convolution_forward"),
    ("ampere_sgemm_128x64_tn", "matmul"), ("Memcpy HtoD (Pageable -> Device)", "memory_copy"),
    ("void cudnn::ops::nchwToNhwcKernel<float, float, float, false, true>", "memory_copy"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::(anonymous namespace)::sum_functor>", "elementwise"),
    ("void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float>>", "other"),
    # TensorFlow's op types on a CPU, kernels with their op on a GPU
    ("_FusedConv2D", "convolution_forward"), ("Conv2DBackpropInput", "convolution_backward_data"),
    ("Conv2DBackpropFilter", "convolution_backward_filter"), ("BiasAddGrad", "elementwise"), ("MatMul", "matmul"),
    ("_FusedMatMul", "matmul"), ("MaxPoolGrad", "other"), ("ReadVariableOp", "other"), ("ReluGrad", "elementwise"),
    ("void tensorflow::functor::ShuffleInTensor3Simple<float, 2, 1, 0, false> (Conv2DBackpropFilter)", "convolution_backward_filter"),
    # XLA's ops (kernels on a GPU) with what jax's op name says they compute
    ("ynn_fusion.13 (convolution forward)", "convolution_forward"), ("ynn_fusion.3 (convolution backward filter)", "convolution_backward_filter"),
    ("convolution.1 (convolution backward data)", "convolution_backward_data"), ("ynn_fusion.7 (dot_general)", "matmul"),
    ("ynn_fusion.12 (reduce_window_max)", "other"), ("broadcast_maximum_fusion.2 (max)", "elementwise"),
    ("transpose_copy_fusion.5 (transpose)", "memory_copy"), ("wrapped_iota.7 (iota)", "other"),
    ("loop_multiply_fusion (mul)", "elementwise"), ("compare_convert_fusion (convert_element_type)", "elementwise"), ("cudnn-conv-bw-filter.2 (convolution backward filter)", "convolution_backward_filter"),
])
def test_every_profilers_names_are_classed_by_what_they_compute(name, kind):
    assert kernel_time.kernel_class(name) == kind


# From the step Keras 3.15 compiles for the Dogs-vs-Cats CNN on jax 0.10's CPU (compiled.as_text(), shortened).
HLO = """HloModule jit_train_step, entry_computation_layout={()}
  ROOT %convolution.7 = f32[3,3,3,32]{3,2,1,0} convolution(%param_0.5, %param_1.5), window={size=148x148}, dim_labels=b01f_01io->b01f, metadata={op_name="jit(train_step)/transpose(jvp(conv2d))/conv_general_dilated" stack_frame_id=80}
  %ynn_fusion.13 = f32[8,148,148,32]{3,2,1,0} fusion(%data_0_.1, %state_0__0_.1), kind=kCustom, calls=%fused_computation.13, metadata={op_name="jit(train_step)/jvp(conv2d)/conv_general_dilated" stack_frame_id=113}, backend_config={"fusion_config":{"kind":"__ynn_fusion"}}
  %ynn_fusion.7 = f32[8,64]{1,0} fusion(%ynn_fusion.8, %copy.67), kind=kCustom, calls=%fused_computation.7, metadata={op_name="jit(train_step)/jvp(dense)/dot_general" stack_frame_id=9}
  %convolution.1 = f32[8,74,74,32]{3,2,1,0} convolution(%compare_select_fusion.1, %transpose_copy_fusion.5), window={size=3x3 pad=2_2x2_2}, dim_labels=b01f_01io->b01f, metadata={op_name="jit(train_step)/transpose(jvp(conv2d_1))/conv_general_dilated" stack_frame_id=5}
  %ynn_fusion.3 = f32[32,3,3,32]{3,2,1,0} fusion(%transpose_copy_fusion.3, %transpose_copy_fusion.2), kind=kCustom, calls=%fused_computation.3, metadata={op_name="jit(train_step)/transpose(jvp(conv2d_1))/conv_general_dilated" stack_frame_id=7}
  %copy.63 = f32[3,3,32,32]{3,2,1,0} copy(%state_0__2_.1)
  %copy.12 = f32[3,3,32,32]{3,2,1,0} copy(%transpose.11), metadata={op_name="jit(train_step)/transpose(jvp(conv2d_1))/conv_general_dilated" stack_frame_id=118}
  %iota_reduce_fusion.1 = (f32[16], s32[16]) fusion(%data_1_.1), kind=kLoop, calls=%fused_computation.99, metadata={op_name="jit(train_step)/reduce" stack_frame_id=347}
}

%fused_computation.1 (param_0.1: f32[32,26,26,16], param_1.1: f32[24,24,16,32]) -> f32[32,3,3,32] {
  %param_0.1 = f32[32,26,26,16]{3,2,1,0} parameter(0)
  ROOT %convolution.3 = f32[32,3,3,32]{3,2,1,0} convolution(%param_0.1, %param_1.1), window={size=24x24}, dim_labels=b01f_01io->b01f
}

ENTRY %main.1 (data_0_.1: f32[16,28,28,1]) -> f32[] {
  %ynn_fusion.1 = f32[32,3,3,32]{3,2,1,0} fusion(%transpose_copy_fusion.1, %transpose_copy_fusion), kind=kCustom, calls=%fused_computation.1, backend_config={"fusion_config":{"kind":"__ynn_fusion"}}
}
"""


def test_jax_ops_are_described_by_their_op_name_or_their_fusions_and_a_gradient_of_kernel_shape_is_the_filters():
    kernels = {tuple(sorted(shape)) for shape in [(3, 3, 3, 32), (3, 3, 32, 32), (3, 3, 32, 64)]}
    assert kernel_time._hlo_ops(HLO, kernels) == {
        "convolution.7": "convolution backward filter", "ynn_fusion.13": "convolution forward", "ynn_fusion.7": "dot_general",
        "convolution.1": "convolution backward data", "ynn_fusion.3": "convolution backward filter", "iota_reduce_fusion.1": "reduce",
        "convolution.3": "convolution backward filter", "copy.12": "copy",  # made for a convolution, but a copy
        "ynn_fusion.1": "convolution backward filter",  # no op name of its own (XLA dropped it): its fused computation's convolution
    }  # copy.63 has no op name: it is described by its own name


def test_a_profile_is_summed_per_step_by_class_and_keeps_the_convolutions_by_name():
    timed = [("Conv2DBackpropFilter", 0.3), ("Conv2DBackpropFilter", 0.3), ("_FusedConv2D", 0.2), ("MatMul", 0.1), ("Mul", 0.05),
             ("Conv2DBackpropInput", 0.15)]
    kernels = kernel_time.summarize(timed, steps=2, profiler="tf.profiler", device="cpu")
    assert kernels.seconds_per_step == pytest.approx({"convolution_forward": 0.1, "convolution_backward_data": 0.075,
                                                      "convolution_backward_filter": 0.3, "convolution_backward": 0.0,
                                                      "matmul": 0.05, "elementwise": 0.025, "memory_copy": 0.0, "other": 0.0})
    assert list(kernels.convolutions) == ["Conv2DBackpropFilter", "_FusedConv2D", "Conv2DBackpropInput"]
    assert kernels.convolution_seconds == pytest.approx(0.475)
    assert kernels.convolution_share == pytest.approx(0.475 / 0.55)


def test_a_profiler_that_fails_is_recorded_as_not_available_and_the_cell_goes_on():
    class KerasOfAnotherShape:
        def _get_jax_state(self, **parts):
            raise AttributeError("no such state")

    said = kernel_time.profile("jax", None, KerasOfAnotherShape(), ([0], [0]), lambda: None, gpu=True)
    assert said == "not available: the jax profiler failed: AttributeError: no such state"


MEASURED = {"schema": contract.MEASUREMENT_SCHEMA, "cell_id": "c", "workload": "mnist", "data": {}, "warmup_epochs": 1,
            "epochs": [epoch(2.0, 1.5, 40.0)] * 2, "versions": {}, "host": {}, "settings": {}, "devices": [], "gpu": {}}
KERNELS = {"profiler": "torch.profiler", "device": "gpu", "steps": 3, "convolutions": {"sm90_xmma_fprop_implicit_gemm": 0.002},
           "seconds_per_step": dict.fromkeys(contract.KERNEL_CLASSES, 0.001)}


def test_kernel_time_is_typed_in_the_measurement_and_older_measurements_have_none():
    measured = Measurement.from_dict(dict(MEASURED, kernel_time=KERNELS))
    assert measured.kernel_time.convolution_seconds == pytest.approx(0.004)
    assert Measurement.from_dict(dict(MEASURED, kernel_time="not profiled: kernel_time off")).kernel_time.startswith("not profiled")
    with pytest.raises(ContractError, match="measurement: kernel_time: expected steps above 0 and seconds_per_step for convolution_forward"):
        Measurement.from_dict(dict(MEASURED, kernel_time=dict(KERNELS, seconds_per_step={"convolution": 0.1})))
    older = {key: value for key, value in MEASURED.items() if key != "kernel_time"}
    assert measurement_to_current(dict(older, schema=3))["kernel_time"] is None


def profiled(records, convolution_seconds, device="gpu"):
    """The records with a profile whose convolutions take `convolution_seconds` per step (times each repeat's jitter)."""
    def kernels(factor):
        seconds = dict.fromkeys(contract.KERNEL_CLASSES, 0.0)
        seconds.update(convolution_forward=convolution_seconds * factor * 0.4, convolution_backward_data=convolution_seconds * factor * 0.3,
                       convolution_backward_filter=convolution_seconds * factor * 0.3, elementwise=0.2, memory_copy=0.1)
        return contract.KernelTime("tf.profiler", device, 3, seconds, {"sm90_xmma_fprop_implicit_gemm": convolution_seconds * factor * 0.4})
    return [dataclasses.replace(record, measurement=dataclasses.replace(record.measurement, kernel_time=kernels(factor)))
            for record, factor in zip(records, JITTER)]


def test_a_cudnn_step_gets_a_second_verdict_on_convolution_time_beside_the_step_time_one():
    # Step time alike (1.00 s), but the newer cuDNN's convolutions take 0.30 s a step against 0.40 s: the step-time
    # verdict says same, the convolution verdict faster, and the report says both.
    older = profiled(repeated(GPU_93_ID, 1.00, cudnn="9.3"), 0.40)
    newer = profiled(repeated(GPU_95_ID, 1.00, cudnn="9.5"), 0.30)
    analysis = analyze(older + newer)
    (step,) = [pair for pair in analysis.pairs if pair.question == "cuDNN step"]
    assert step.comparison.verdict == "same" and step.convolution.verdict == "faster"
    assert step.convolution.ratio == pytest.approx(0.40 / 0.30) and analysis.convolution_family == 1
    text = render(older + newer)
    assert "cuDNN 9.5 vs 9.3 (CUDA 12.6, tf 2.21.0, Keras 3.12.0): +0.0%" in text
    assert "same within 5%; convolution time per step +33.3% (" in text and "): faster." in text
    assert "Holm-corrected over its own 1 comparison(s)" in text
    assert (f"{GPU_95_ID}: convolutions 50% (forward 20%, backward data 15%, backward filter 15%), element-wise 33%, copies 17%; "
            "600.0 ms per step of device kernels (tf.profiler, 3 steps, median of 5 repeats)") in text
    report = json.loads(render(older + newer, "json"))
    (comparison,) = [c for c in report["comparisons"] if c["question"] == "cuDNN step"]
    assert comparison["convolution"]["verdict"] == "faster" and comparison["verdict"] == "same"
    cell = next(cell for cell in report["cells"] if cell["cell_id"] == GPU_95_ID)
    assert cell["convolution_share"] == pytest.approx(0.5) and cell["kernel_time"]["profiler"] == "tf.profiler"
    assert len(cell["kernel_time"]["convolution_seconds_per_repeat"]) == 5


def test_a_cpus_operators_and_a_gpus_kernels_are_not_set_against_each_other():
    cpu = profiled(repeated(CPU_ID, 10.0, kind="cpu"), 4.0, device="cpu")
    gpu = profiled(repeated(GPU_93_ID, 1.00, cudnn="9.3"), 0.40)
    (speedup,) = analyze(cpu + gpu).pairs[:1]
    assert speedup.comparison.verdict == "faster" and speedup.convolution is None


def test_a_cell_page_shows_its_repeats_kernel_time_or_why_there_is_none():
    from runner.site.views import loaded_facts

    (record,) = profiled(repeated(GPU_95_ID, 1.00, cudnn="9.5")[:1], 0.30)
    facts = loaded_facts(record, {})
    assert facts["kernel time"].startswith("convolutions 50% (forward 20%, backward data 15%, backward filter 15%)")
    assert facts["convolution kernels"] == "sm90_xmma_fprop_implicit_gemm (120.00 ms per step)"
    unprofiled = dataclasses.replace(record, measurement=dataclasses.replace(record.measurement, kernel_time="not profiled: kernel_time off"))
    assert loaded_facts(unprofiled, {})["kernel time"] == "not profiled: kernel_time off"


@pytest.mark.parametrize("stats, described", [
    ({"hlo_op": "cudnn-conv-bw-filter.2", "hlo_module": "jit_train_step"}, "k (convolution backward filter)"),
    ({"kernel_annotation": "XlaModule:#hlo_module=jit_train_step,program_id=3#::XlaOp:#hlo_op=cudnn-conv-bw-filter.2#"},
     "k (convolution backward filter)"),
    ({"tf_op": "sequential/conv2d/Conv2D:Conv2D"}, "k (Conv2D)"),
    ({"kernel_annotation": "sequential_1/conv2d_1/convolution:Conv2DBackpropFilter"}, "k (Conv2DBackpropFilter)"),
    ({"kernel_details": "regs:128 static_shared:0"}, "k"),
])
def test_a_gpu_kernel_is_described_by_the_op_that_launched_it_wherever_the_profile_puts_it(stats, described):
    assert kernel_time.device_description("k", stats, {"cudnn-conv-bw-filter.2": "convolution backward filter"}) == described
