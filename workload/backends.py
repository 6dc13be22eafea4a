"""What differs between Keras backends, behind a few functions: set-up, synchronisation, and proof of what ran.

Everything the job spec says about how the GPU computes (precision, cuDNN on or
off, convolution autotuning, threads) is applied here explicitly for each
backend and read back for the record: frameworks differ in their defaults
(TensorFlow computes in TF32 on Ampere and newer unless told otherwise), so a
cell never inherits one silently.
"""

import os
import re

NOT_APPLICABLE = "not applicable"
XLA_AUTOTUNE_LEVEL = re.compile(r"\s*--xla_gpu_autotune_level=\S*")


def before_import(job):
    """Environment variables that take effect only if set before the framework is imported.

    conv_autotune default sets nothing, and takes away an override the process inherited,
    so that what runs is the framework's own default (TensorFlow and XLA autotune, torch does not).
    """
    os.environ["KERAS_BACKEND"] = job.framework  # Keras defaults to TensorFlow, and fails to import without it
    os.environ.pop("TF_CUDNN_USE_AUTOTUNE", None)
    if "XLA_FLAGS" in os.environ:
        os.environ["XLA_FLAGS"] = XLA_AUTOTUNE_LEVEL.sub("", os.environ["XLA_FLAGS"]).strip()
    if job.framework == "tensorflow" and job.conv_autotune != "default":
        os.environ["TF_CUDNN_USE_AUTOTUNE"] = "1" if job.conv_autotune == "on" else "0"
    if job.framework == "jax" and job.conv_autotune != "default":
        # XLA's autotuner picks convolution algorithms by timing them, as cuDNN's benchmark mode does.
        level = 4 if job.conv_autotune == "on" else 0
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" --xla_gpu_autotune_level={level}").strip()


def conv_autotune(job, gpu, in_effect):
    """The record's conv_autotune (on or off, as in effect) and where that came from: the framework's default or the matrix."""
    if not gpu:
        return {"conv_autotune": f"{NOT_APPLICABLE} (no GPU)", "conv_autotune_source": f"{NOT_APPLICABLE} (no GPU)"}
    source = "the framework's default" if job.conv_autotune == "default" else "forced by the matrix"
    return {"conv_autotune": "on" if in_effect else "off", "conv_autotune_source": source}


def jit_compile(job):
    """The jit_compile to give Keras: auto is each backend as Keras users run it.

    XLA on jax (Keras compiles the jax step only when told to, and without it jax dispatches op by
    op); a traced graph without XLA on TensorFlow, as the seed ran it (Keras' own "auto" would turn
    XLA on where a GPU is); eager torch (Keras' own default there).
    """
    if job.jit_compile == "auto":
        return job.framework == "jax"
    return job.jit_compile == "on"


def train_step(name, model):
    """How Keras runs the training step, read back from the compiled model: what the timings time."""
    if getattr(model, "run_eagerly", False):
        return "eager (run_eagerly)"
    compiled = bool(model.jit_compile)
    return {
        "jax": "XLA (jax.jit)" if compiled else "eager (jax op by op)",
        "tensorflow": "XLA (tf.function, jit_compile)" if compiled else "graph (tf.function)",
        "torch": "torch.compile" if compiled else "eager",
    }[name]


def import_framework(name):
    if name == "tensorflow":
        import tensorflow as framework
    elif name == "torch":
        import torch as framework
    else:
        import jax as framework
    return framework


def configure(framework, job):
    """Apply the job's settings; returns them as they took effect, for the record."""
    return {"tensorflow": _tensorflow, "torch": _torch, "jax": _jax}[job.framework](framework, job)


def _tensorflow(tf, job):
    # Thread pools must be sized before TensorFlow runs its first operation.
    tf.config.threading.set_intra_op_parallelism_threads(job.intra_op_threads)
    tf.config.threading.set_inter_op_parallelism_threads(job.inter_op_threads)
    tf.config.experimental.enable_tensor_float_32_execution(job.precision == "tf32")
    gpu = bool(gpus("tensorflow", tf))
    return {
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "tf32": tf.config.experimental.tensor_float_32_execution_enabled(),
        "cudnn": "on (TensorFlow has no switch to run convolutions on a GPU without cuDNN)" if gpu else f"{NOT_APPLICABLE} (no GPU)",
        # TensorFlow autotunes unless TF_CUDNN_USE_AUTOTUNE says otherwise.
        **conv_autotune(job, gpu, os.environ.get("TF_CUDNN_USE_AUTOTUNE", "1") == "1"),
    }


def _torch(torch, job):
    if job.intra_op_threads:
        torch.set_num_threads(job.intra_op_threads)
    if job.inter_op_threads:
        torch.set_num_interop_threads(job.inter_op_threads)
    tf32 = job.precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32  # torch's default: off for matmuls ...
    torch.backends.cudnn.allow_tf32 = tf32  # ... but on for convolutions
    torch.backends.cudnn.enabled = job.cudnn
    if job.conv_autotune != "default":  # torch's default: off
        torch.backends.cudnn.benchmark = job.conv_autotune == "on"
    gpu = torch.cuda.is_available()
    return {
        "intra_op_threads": torch.get_num_threads(),
        "inter_op_threads": torch.get_num_interop_threads(),
        "tf32": torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32,
        "cudnn": ("on" if torch.backends.cudnn.enabled else "off") if gpu else f"{NOT_APPLICABLE} (no GPU)",
        **conv_autotune(job, gpu, torch.backends.cudnn.benchmark),
    }


def _jax(jax, job):
    # "highest" is full fp32; jax's default lets matmuls and convolutions run in TF32 (or bf16) on GPUs.
    jax.config.update("jax_default_matmul_precision", "tensorfloat32" if job.precision == "tf32" else "highest")
    gpu = bool(gpus("jax", jax))
    return {
        "intra_op_threads": f"{NOT_APPLICABLE} (jax has no thread setting)" if job.intra_op_threads else 0,
        "inter_op_threads": f"{NOT_APPLICABLE} (jax has no thread setting)" if job.inter_op_threads else 0,
        "tf32": job.precision == "tf32",
        "cudnn": "on (XLA calls cuDNN for convolutions; there is no switch)" if gpu else f"{NOT_APPLICABLE} (no GPU)",
        # XLA's default autotune level is above 0 (it autotunes); before_import set the level only to force it.
        **conv_autotune(job, gpu, job.conv_autotune != "off"),
    }


def gpus(name, framework):
    """The GPUs the framework registered, by name."""
    if name == "tensorflow":
        return [gpu.name for gpu in framework.config.list_physical_devices("GPU")]
    if name == "torch":
        cuda = framework.cuda
        return [cuda.get_device_name(i) for i in range(cuda.device_count())] if cuda.is_available() else []
    return [str(device) for device in framework.devices() if device.platform == "gpu"]


def built_with(name, framework):
    """The CUDA and cuDNN the framework was built against, as it says itself."""
    if name == "tensorflow":
        build = framework.sysconfig.get_build_info()
        return {k: str(build.get(k, "")) for k in ("is_cuda_build", "cuda_version", "cudnn_version")}
    if name == "torch":
        return {"cuda_version": str(framework.version.cuda), "cudnn_version": str(framework.backends.cudnn.version())}
    import jaxlib
    return {"jaxlib": jaxlib.__version__}


def cached_batches(name, framework):
    """How input: cached moves each batch to the device, once, when it is first made (in the warm-up epoch); and where it then lives.

    torch: tensors on the GPU (Keras' torch trainer leaves a tensor on its device as it is). jax: jax.device_put
    (Keras' jax trainer passes jax arrays through). TensorFlow, through the framework-neutral loader: kept as numpy,
    since Keras makes a host-side tf.data dataset of a PyDataset's batches whatever they are (tfdata_input.py says
    what tf.data does). On a CPU the device is the host's memory: the same code path, nothing copied.
    """
    if name == "torch":
        device = "cuda" if framework.cuda.is_available() else "cpu"
        return (lambda array: framework.as_tensor(array, device=device)), f"on the device (torch tensors on {device})"
    if name == "jax":
        # Uncommitted, on the default device (the first GPU where there is one): a batch committed to a device by
        # jax.device_put made the jitted step compile again, for committed inputs, on the first step of the first two epochs.
        device = framework.devices()[0]
        return (lambda array: framework.numpy.asarray(array)), f"on the device (jax arrays on {device})"
    return (lambda array: array), "in host memory (numpy; Keras copies each batch to the device in its step)"


def lowered_train_step(jax, model, batch):
    """Keras' jax training step on one batch, lowered by jax (the jit train_on_batch runs), for what XLA says of it."""
    state = model._get_jax_state(trainable_variables=True, non_trainable_variables=True, optimizer_variables=True,
                                 metrics_variables=True, purge_model_variables=False)
    inputs, labels = batch
    return jax.jit(model.train_step, donate_argnums=0).lower(state, (inputs, labels, None))


def compile_counter(name, framework):
    """A function giving how many XLA compilations jax has made so far, or None where the framework is not jax."""
    if name != "jax":
        return None
    from jax import monitoring

    compiled = [0]

    def count(event, seconds, **_):
        compiled[0] += event == "/jax/core/compile/backend_compile_duration"

    monitoring.register_event_duration_secs_listener(count)
    return lambda: compiled[0]


def synchronize(name, framework):
    """Wait for the GPU to finish what was queued, so that a clock read after it times finished work."""
    if name == "torch" and framework.cuda.is_available():
        framework.cuda.synchronize()
    elif name == "jax":
        for array in framework.live_arrays():
            array.block_until_ready()
    elif name == "tensorflow" and hasattr(framework.test.experimental, "sync_devices") and gpus(name, framework):
        framework.test.experimental.sync_devices()


def convolution_ops(name, framework, train_step):
    """Which convolution implementation the framework really called for one training step (torch's profiler)."""
    if name != "torch":
        return f"{NOT_APPLICABLE} (recorded for torch)"
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if framework.cuda.is_available() else [])
    with profile(activities=activities) as profiled:
        train_step()
        synchronize(name, framework)
    return sorted({event.key for event in profiled.key_averages() if "conv" in event.key.lower()})
