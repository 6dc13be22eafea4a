"""Distance to the limit: the Dogs vs Cats training step's achieved FLOP/s against the machine's measured peak.

    python bench/distance_to_limit.py [--quick]

In the jax CPU environment the cells run in (the venv executor's venv of `cpu-jax0.10`, made if
missing), bench/flops_probe.py alternates a large float32 matmul through jax (the peak this
framework reaches here at the same precision) with training steps of the seed's CNN on a cached
batch (the model's own FLOP count, as the records' GFLOP/s use it). Writes the fraction to
bench/RESULTS.md (section `limit`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from statistics import median

from pathlib import Path

import yaml

import common
from common import BENCH, load, provenance, spread, table, write_section

from runner.executors import Prepared  # noqa: E402
from runner.executors.venv_executor import VenvExecutor  # noqa: E402
from runner.progress import Progress  # noqa: E402
from runner.session import plan  # noqa: E402

SIZES = {"full": (5, 3, 2048), "quick": (2, 1, 1024)}  # rounds, steps per round, matmul N


def environment_python(results) -> str:
    """The interpreter of the venv the venv executor makes for the jax CPU cells (built here if missing)."""
    results.mkdir(parents=True, exist_ok=True)
    matrix = results / "limit-matrix.yaml"
    matrix.write_text(yaml.safe_dump({"workloads": {"dogs-vs-cats": {}}, "cpu": {"backend": ["jax"], "jax": ["0.10"]}}))
    prepared = VenvExecutor(sys.executable, "none", Progress()).prepare(plan(matrix).cells[0].environment)
    if not isinstance(prepared, Prepared):
        raise SystemExit(f"error: the jax venv could not be made: {prepared.reason}")
    return prepared.handle


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer rounds, a smaller matmul")
    parser.add_argument("--results", type=Path, default=BENCH / "results")
    args = parser.parse_args()
    if args.quick:
        common.divert(args.results / "RESULTS-quick.md")
    rounds, steps, size = SIZES["quick" if args.quick else "full"]
    python = environment_python(args.results)
    load_before = load()
    done = subprocess.run([python, str(BENCH / "flops_probe.py"), str(rounds), str(steps), str(size)], capture_output=True, text=True,
                          env={**os.environ, "KERAS_BACKEND": "jax", "CUDA_VISIBLE_DEVICES": ""})
    load_after = load()
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        return 1
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    peak = max(probe["matmul_gflops"])
    step = median(probe["step_seconds"])
    achieved = 32 * probe["training_flops_per_image"] / step / 1e9
    forward = median(probe["forward_seconds"])
    forward_achieved = 32 * probe["forward_flops_per_image"] / forward / 1e9
    backward_achieved = 32 * (probe["training_flops_per_image"] - probe["forward_flops_per_image"]) / max(step - forward, 1e-9) / 1e9
    command = "python bench/distance_to_limit.py" + (" --quick" if args.quick else "")
    header = provenance(command, load_before, load_after, {"jax": probe["jax"], "keras": probe["keras"]})
    rows = [[f"float32 matmul {size}x{size} through jax (best round; median {median(probe['matmul_gflops']):.1f})", f"{peak:.1f}", "1.00"],
            [f"Dogs vs Cats training step, batch 32 (median of {len(probe['step_seconds'])}: {step * 1000:.0f} ms)", f"{achieved:.1f}",
             f"{achieved / peak:.3f}"],
            [f"its forward pass alone (median of {len(probe['forward_seconds'])}: {forward * 1000:.0f} ms)", f"{forward_achieved:.1f}",
             f"{forward_achieved / peak:.3f}"],
            [f"so its backward pass (step - forward: {(step - forward) * 1000:.0f} ms for 2x the forward's FLOPs)", f"{backward_achieved:.1f}",
             f"{backward_achieved / peak:.3f}"]]
    write_section("limit", "## Distance to the limit (bench/distance_to_limit.py)\n\n" + header
                  + f"\n- environment: the venv executor's `cpu-jax0.10` venv (`{python}`); {rounds} interleaved rounds of a matmul "
                    f"(best of 3), {steps} training step(s) and {steps} forward pass(es); matmul spread {spread(probe['matmul_gflops']):.2f}, "
                    f"step spread {spread(probe['step_seconds']):.2f}\n\n"
                  + table(["", "GFLOP/s", "fraction of the peak"], rows)
                  + f"\n\nA training image is {probe['training_flops_per_image'] / 1e9:.2f} GFLOP (the model's multiply-adds x 2, "
                    "training = 3 x forward).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
