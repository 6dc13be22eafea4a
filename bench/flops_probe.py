"""Run by bench/distance_to_limit.py in the cell's own environment: peak matmul FLOP/s and the Dogs vs Cats training step's.

    KERAS_BACKEND=jax ENV_PYTHON bench/flops_probe.py ROUNDS STEPS MATMUL_N

Alternates, ROUNDS times: a large float32 matmul (best of a few, 2 N^3 FLOPs each), STEPS training
steps of the seed's CNN on one cached batch of 32 (the workload's own model and FLOP count), and as
many forward passes of the same batch (what the training step adds to them is the backward pass).
Prints one JSON line: the matmul GFLOP/s, step and forward seconds of every round, the FLOPs per image.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "workload"))

import numpy as np  # noqa: E402
import keras  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import models  # noqa: E402

rounds, steps, size = (int(value) for value in sys.argv[1:4])
keras.utils.set_random_seed(0)
model = models.SEED_MODELS["dogs-vs-cats"](keras, False)
flops = models.TRAINING_FLOPS_PER_FORWARD * models.forward_flops(model)
images = np.random.default_rng(0).random((32, 150, 150, 3), dtype=np.float32)
labels = np.random.default_rng(1).integers(0, 2, (32, 1)).astype(np.float32)
model.train_on_batch(images, labels)  # tracing and compiling, untimed
model.predict_on_batch(images)
a = jax.random.normal(jax.random.PRNGKey(0), (size, size), jnp.float32)
b = jax.random.normal(jax.random.PRNGKey(1), (size, size), jnp.float32)
matmul = jax.jit(jnp.matmul)
matmul(a, b).block_until_ready()
result = {"jax": jax.__version__, "keras": keras.__version__, "training_flops_per_image": flops,
          "forward_flops_per_image": models.forward_flops(model), "matmul_n": size, "matmul_gflops": [], "step_seconds": [],
          "forward_seconds": []}
for _ in range(rounds):
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        matmul(a, b).block_until_ready()
        best = min(best, time.perf_counter() - started)
    result["matmul_gflops"].append(2 * size ** 3 / best / 1e9)
    for _ in range(steps):
        started = time.perf_counter()
        model.train_on_batch(images, labels)  # returns numbers: the step is done
        result["step_seconds"].append(time.perf_counter() - started)
    for _ in range(steps):
        started = time.perf_counter()
        model.predict_on_batch(images)  # returns a numpy array: the pass is done
        result["forward_seconds"].append(time.perf_counter() - started)
print(json.dumps(result))
