"""Training FLOPs as each framework's own cost analysis counts them, beside models.py's exact layer count.

The layer count knows convolutions, depthwise convolutions and dense layers; a user's model may hold
layers it does not know. The frameworks count any step: XLA's cost analysis of the jitted training
step (jax), torch's FLOP counter over one training step, and TensorFlow's profiler over the traced
step's graph. Counted after the timed epochs, on the first batch, so they change no timing.

XLA and TensorFlow's profiler count element-wise work too (activations, normalisation, the
optimiser's update), so they come out a little above the layer count; torch's counter counts
matrix products and convolutions only, as the layer count does.
"""

import backends

METHODS = {"jax": "XLA cost analysis of the jitted training step",
           "torch": "torch.utils.flop_counter over one training step",
           "tensorflow": "TensorFlow's profiler (float_operation) over the traced training step's graph"}


def counted(name, framework, model, batch):
    """{"method", "training_flops_per_image"} from the framework's count of one training step on `batch`, or why not."""
    try:
        flops = {"jax": _jax, "torch": _torch, "tensorflow": _tensorflow}[name](framework, model, batch)
    except Exception as error:  # a count is a cross-check: its failure is recorded, and the run goes on
        return f"not counted: {type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
    return {"method": METHODS[name], "training_flops_per_image": flops / len(batch[0])}


def _jax(jax, model, batch):
    """The same step train_on_batch runs, lowered (not compiled again): XLA's estimate of its floating-point operations."""
    analysis = backends.lowered_train_step(jax, model, batch).cost_analysis()
    return float((analysis[0] if isinstance(analysis, list) else analysis)["flops"])  # a list of one in older jax


def _torch(torch, model, batch):
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        model.train_on_batch(*batch)
    return float(counter.get_total_flops())


def _tensorflow(tf, model, batch):
    from tensorflow.python.profiler import option_builder

    inputs, labels = (tf.convert_to_tensor(part) for part in batch)
    graph = tf.function(model.train_step).get_concrete_function((inputs, labels)).graph  # traced at the batch's shapes
    options = option_builder.ProfileOptionBuilder(option_builder.ProfileOptionBuilder.float_operation()).with_empty_output().build()
    return float(tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops)
