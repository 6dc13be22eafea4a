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

import backends
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
    ("convolution_forward", r"conv(?!ert)|fprop|winograd|implicit_gemm|fft2d"),  # not XLA's convert fusions
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
                stats = {name: str(value) for name, value in event.stats}
                if gpu and stats.get("hlo_module", module) == module:  # every kernel and copy of the step
                    timed.append((device_description(event.name, stats, ops), event.duration_ns / 1e9))
                elif stats.get("hlo_module") == module and "hlo_op" in stats:  # the step's thunks, not the host's other work
                    timed.append((f"{stats['hlo_op']} ({ops.get(stats['hlo_op'], stats['hlo_op'])})", event.duration_ns / 1e9))
    return timed


def _compiled_hlo(jax, model, batch):
    """The HLO of the step train_on_batch runs (the same jit of the same function, so jax's cache has it compiled)."""
    return backends.lowered_train_step(jax, model, batch).compile().as_text()


# An instruction of HLO text: its name, the dimensions of its (array) output and its opcode; what it calls and the op
# name jax gave it are found on the same line, where it has them.
HLO_INSTRUCTION = re.compile(r"^\s+(?:ROOT )?%?([\w.-]+) = \(?\w+\[([\d,]*)\][^(]*? ([a-z][\w-]*)\(")
CALLS = re.compile(r"calls=%?([\w.-]+)")
OP_NAME = re.compile(r'op_name="([^"]*)"')
# What a fusion computes, by the ops inside it: a convolution's or a dot's op name, else their opcode.
MAIN_PRIMITIVES = ("conv_general_dilated", "dot_general")
MAIN_OPCODES = {"convolution": "conv_general_dilated", "dot": "dot_general"}


def _hlo_ops(hlo, kernel_shapes):
    """What each HLO instruction computes: the last part of its op name ("conv_general_dilated", "dot_general"), or for
    a fusion that has none of its own (XLA drops some), its fused computation's convolution or dot. A convolution has its
    direction: in a gradient (transpose(jvp(...))), one whose output has a kernel's shape computes the filter's
    gradient (backward filter), any other the input's (backward data)."""
    instructions, inside, opcodes = {}, {}, {}
    computation = None
    for line in hlo.splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith("{"):
            computation = line.split()[1 if line.startswith("ENTRY") else 0].lstrip("%")
        elif found := HLO_INSTRUCTION.match(line):
            name, dimensions, opcode = found.groups()
            op_name, calls = OP_NAME.search(line), CALLS.search(line)
            op_name = op_name.group(1) if op_name else None
            instructions[name] = (dimensions, op_name, calls.group(1) if calls else None, opcode)
            inside.setdefault(computation, []).append(op_name or MAIN_OPCODES.get(opcode))
            opcodes.setdefault(computation, set()).add(opcode)
    described = {}
    for instruction, (dimensions, op_name, calls, opcode) in instructions.items():
        candidates = [op_name] if op_name else [name for name in (inside.get(calls, []) if calls else [MAIN_OPCODES.get(opcode)]) if name]
        chosen = next((name for main in MAIN_PRIMITIVES for name in candidates if name.endswith(main)), op_name)
        computes = opcodes.get(calls, set(MAIN_OPCODES)) if calls else {opcode}  # a computation not in the text: as its op name says
        if chosen and chosen.endswith(MAIN_PRIMITIVES) and not computes & set(MAIN_OPCODES):
            described[instruction] = opcode  # a copy or transpose made for a convolution or dot: not one itself
        elif chosen:
            described[instruction] = _primitive(chosen, dimensions, kernel_shapes)
    return described


def _primitive(op_name, dimensions, kernel_shapes):
    primitive = op_name.rsplit("/", 1)[-1]
    if primitive != "conv_general_dilated":
        return primitive
    shape = tuple(sorted(int(d) for d in dimensions.split(","))) if dimensions else ()
    if "transpose(" not in op_name:  # a forward convolution, or one whose op name XLA dropped
        return "convolution backward filter" if shape in kernel_shapes and "jvp(" not in op_name else "convolution forward"
    return "convolution backward filter" if shape in kernel_shapes else "convolution backward data"


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
                    stats = {stat_names.get(stat.metadata_id, ""): stat.str_value for stat in event.stats if stat.str_value}
                    timed.append((device_description(metadata.name, stats, {}), event.duration_ps / 1e12))
                elif TF_OPERATOR.match(metadata.name):  # an operator, not the executor's or Python's own events
                    timed.append((metadata.name.rsplit(":", 1)[1], event.duration_ps / 1e12))
    return timed


TF_OPERATOR = re.compile(r"^[^\s:]+:\w+$")  # scope/name:OpType
# Where the profiler's version puts it: the launching op as a stat of its own, or in the kernel's annotation.
HLO_OP = re.compile(r"hlo_op=([\w.-]+)")
TF_OP_TYPE = re.compile(r":(\w+)#?$")


def device_description(kernel, stats, hlo_ops):
    """A GPU kernel's name with what launched it, where the profile says: the HLO op (described by hlo_ops, the step's
    HLO) or TensorFlow's op type. Only the op's own name is added: a name scope (transpose(jvp(...)) is a gradient,
    not a transpose) would mislead the classes."""
    text = " ".join(stats.values())
    hlo_op = stats.get("hlo_op") or next(iter(HLO_OP.findall(text)), None)
    if hlo_op:
        return f"{kernel} ({hlo_ops.get(hlo_op, hlo_op)})"
    tf_op = TF_OP_TYPE.search(stats.get("tf_op") or stats.get("kernel_annotation") or "")
    return f"{kernel} ({tf_op.group(1)})" if tf_op else kernel


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
