"""Where a training step's time goes, by kernel class, from each framework's own profiler.

Run after the timed epochs (so it changes none of them) for a few steps on one batch. On a GPU it
adds up the device's kernels and memory copies; on a CPU, the framework's operators on the host's
threads (XLA's and TensorFlow's run several at once, so their sum may exceed the step's wall time:
set the classes against each other, not against the clock). Kernels and operators are classed by
their names, which say what they are: cuDNN's kernel names say fprop, dgrad or wgrad and the
algorithm (implicit_gemm, winograd, fft ...); TensorFlow's op types say Conv2DBackpropFilter; jax's
say where in the compiled step they came from (transpose(jvp(conv2d)) is a convolution's gradient).
The convolution kernels' names are kept with their time: which algorithm or engine ran.
"""

import glob
import re
import tempfile

import contract

PROFILED_STEPS = 3
KEPT_CONVOLUTIONS = 12  # the convolution kernels kept by name, longest first

# First match wins: a convolution's direction before "convolution", convolutions before matmuls (cuDNN's
# implicit_gemm kernels are convolutions), copies before element-wise, pooling and reductions ("other") before the
# element-wise names they contain, but after kernels that call themselves element-wise.
RULES = (
    ("convolution_backward_data", r"(\b|_)dgrad|backpropinput|conv-bw-input|backward data"),  # not BiasAddGrad
    ("convolution_backward_filter", r"(\b|_)wgrad|backpropfilter|conv-bw-filter|backward filter"),
    ("convolution_backward", r"conv\w*backward"),
    ("convolution_forward", r"conv|fprop|winograd|implicit_gemm|fft2d"),
    ("memory_copy", r"memcpy|memset|\bcopy|copy_|contiguous|transpose|nchwtonhwc|nhwctonchw|::to\b"),
    ("matmul", r"gemm|gemv|matmul|addmm|\bmm\b|bmm|dot|linear|cublas"),
    ("elementwise", r"elementwise"),
    ("other", r"pool|reduce|softmax|\bsum\b|mean|argmax|variableop"),
    ("elementwise", r"loop_|fusion|relu|add|mul|sub|div|neg|exp|log|sqrt|tanh|sigmoid|maximum|minimum|select|where|"
                    r"threshold|fill|cast|convert|square|pow|clamp|dropout|bernoulli|sign|abs"),
)
COMPILED_RULES = tuple((name, re.compile(pattern)) for name, pattern in RULES)


def kernel_class(description):
    """The class of one kernel or operator, from what its profiler calls it (and, for XLA, the step's op name)."""
    text = description.lower()
    return next((name for name, pattern in COMPILED_RULES if pattern.search(text)), "other")


def summarize(timed, steps, profiler, device):
    """KernelTime from (description, seconds) pairs over `steps` steps."""
    per_class = dict.fromkeys(contract.KERNEL_CLASSES, 0.0)
    convolutions = {}
    for description, seconds in timed:
        kind = kernel_class(description)
        per_class[kind] += seconds / steps
        if kind.startswith("convolution"):
            convolutions[description] = convolutions.get(description, 0.0) + seconds / steps
    kept = dict(sorted(convolutions.items(), key=lambda item: -item[1])[:KEPT_CONVOLUTIONS])
    return contract.KernelTime(profiler=profiler, device=device, steps=steps, seconds_per_step=per_class, convolutions=kept)


def profile(name, framework, model, batch, synchronize, gpu):
    """KernelTime over PROFILED_STEPS training steps on `batch`, or why there is none: a profiler that fails costs no cell.

    Called once steps on batches of this shape have run, so that nothing is traced or compiled while profiled.
    """
    try:
        timed = {"torch": _torch, "jax": _jax, "tensorflow": _tensorflow}[name](framework, model, batch, synchronize, gpu)
    except Exception as error:  # noqa: BLE001 - any profiler's failure is recorded, not raised
        return f"{contract.NOT_AVAILABLE}: the {name} profiler failed: {type(error).__name__}: {error}"[:300]
    if not timed:
        return f"{contract.NOT_AVAILABLE}: the {name} profiler recorded no {'kernel' if gpu else 'operator'}"
    profiler = {"torch": "torch.profiler", "jax": "jax.profiler", "tensorflow": "tf.profiler"}[name]
    return summarize(timed, PROFILED_STEPS, profiler, "gpu" if gpu else "cpu")


def _steps(model, batch, synchronize):
    for _ in range(PROFILED_STEPS):
        model.train_on_batch(*batch)
    synchronize()


def _torch(torch, model, batch, synchronize, gpu):
    """Device kernels (self device time) on a GPU; the aten operators' self CPU time on a CPU."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA] if gpu else [ProfilerActivity.CPU]) as profiled:
        _steps(model, batch, synchronize)
    if gpu:
        return [(event.key, event.self_device_time_total / 1e6) for event in profiled.key_averages()
                if event.device_type == DeviceType.CUDA and event.self_device_time_total > 0]
    return [(event.key, event.self_cpu_time_total / 1e6) for event in profiled.key_averages()
            if event.key.startswith("aten::") and event.self_cpu_time_total > 0]


def _jax(jax, model, batch, synchronize, gpu):
    """The compiled step's ops (kernels on a GPU), each described with what the step's HLO says it computes."""
    hlo = _compiled_hlo(jax, model, batch)
    module = re.match(r"HloModule (\S+?),", hlo).group(1)
    kernels = {tuple(sorted(layer.kernel.shape)) for layer in model.layers if type(layer).__name__ == "Conv2D"}
    ops = _hlo_ops(hlo, kernels)
    with tempfile.TemporaryDirectory() as folder:
        with jax.profiler.trace(folder):
            _steps(model, batch, synchronize)
        (trace,) = glob.glob(f"{folder}/**/*.xplane.pb", recursive=True)
        data = jax.profiler.ProfileData.from_file(trace)
    timed = []
    for plane in data.planes:
        if plane.name != ("/device:GPU:0" if gpu else "/host:CPU"):
            continue
        for line in plane.lines:
            if gpu and not line.name.startswith("Stream"):  # the kernels themselves, not lines derived from them
                continue
            for event in line.events:
                stats = dict(event.stats)
                if stats.get("hlo_module") == module and "hlo_op" in stats:
                    op = stats["hlo_op"]
                    timed.append((f"{event.name if gpu else op} ({ops.get(op, op)})", event.duration_ns / 1e9))
    return timed


def _compiled_hlo(jax, model, batch):
    """The HLO of the step train_on_batch runs (the same jit of the same function, so jax's cache has it compiled)."""
    state = model._get_jax_state(trainable_variables=True, non_trainable_variables=True, optimizer_variables=True,
                                 metrics_variables=True, purge_model_variables=False)
    inputs, labels = batch
    return jax.jit(model.train_step, donate_argnums=0).lower(state, (inputs, labels, None)).compile().as_text()


# An instruction of HLO text: its name, the dimensions of its (array) output, and the op name jax gave it.
HLO_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.-]+) = \w+\[([\d,]*)\]\S* .*?op_name=\"([^\"]*)\"", re.M)


def _hlo_ops(hlo, kernel_shapes):
    """What each HLO instruction computes, by the last part of its op name ("conv_general_dilated", "dot_general"),
    a convolution with its direction: in a gradient (transpose(jvp(...))), one whose output has a kernel's shape
    computes the filter's gradient (backward filter), any other the input's (backward data)."""
    described = {}
    for instruction, dimensions, op_name in HLO_INSTRUCTION.findall(hlo):
        primitive = op_name.rsplit("/", 1)[-1]
        if primitive == "conv_general_dilated":
            shape = tuple(sorted(int(d) for d in dimensions.split(","))) if dimensions else ()
            primitive = ("convolution forward" if "transpose(" not in op_name
                         else "convolution backward filter" if shape in kernel_shapes else "convolution backward data")
        described[instruction] = primitive
    return described


def _tensorflow(tf, model, batch, synchronize, gpu):
    """Device kernels with the TensorFlow op that launched them on a GPU; TensorFlow's operators on a CPU."""
    xplane = _xplane_module()
    with tempfile.TemporaryDirectory() as folder:
        tf.profiler.experimental.start(folder)
        try:
            _steps(model, batch, synchronize)
        finally:
            tf.profiler.experimental.stop()
        (trace,) = glob.glob(f"{folder}/**/*.xplane.pb", recursive=True)
        space = xplane.XSpace()
        with open(trace, "rb") as file:
            space.ParseFromString(file.read())
    timed = []
    for plane in space.planes:
        if not (plane.name.startswith("/device:GPU:0") if gpu else plane.name == "/host:CPU"):
            continue
        stat_names = {key: metadata.name for key, metadata in plane.stat_metadata.items()}
        for line in plane.lines:
            if gpu and not line.name.startswith("Stream"):  # the kernels themselves, not lines derived from them
                continue
            for event in line.events:
                metadata = plane.event_metadata[event.metadata_id]
                if gpu:
                    op = next((stat.str_value for stat in event.stats if stat_names.get(stat.metadata_id) == "tf_op"), "")
                    timed.append((f"{metadata.name} ({op.rsplit(':', 1)[-1]})" if op else metadata.name, event.duration_ps / 1e12))
                elif TF_OPERATOR.match(metadata.name):  # an operator, not the executor's or Python's own events
                    timed.append((metadata.name.rsplit(":", 1)[1], event.duration_ps / 1e12))
    return timed


TF_OPERATOR = re.compile(r"^[^\s:]+:\w+$")  # scope/name:OpType


def _xplane_module():
    """TensorFlow's XSpace protobuf module, wherever this version keeps it."""
    import importlib

    for name in ("tensorflow.tsl.profiler.protobuf.xplane_pb2", "tsl.profiler.protobuf.xplane_pb2",
                 "tensorflow.core.profiler.protobuf.xplane_pb2"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError("this TensorFlow has no xplane_pb2 to read its profile with")
