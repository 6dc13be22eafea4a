"""Each framework's own count of a training step's FLOPs against the exact layer count, from runs' records.

    .venv/bin/python bench/flop_counts.py RUN_FOLDER [RUN_FOLDER ...]

Every cell records both (docs/workloads.md): `model.training_flops_per_image`, the layer count, and
`model.counted_flops`, what the framework counted and how. This reads the runs given — for example
one of examples/models.yaml and one of the seed's CNNs — and rewrites the flop_counts section of
bench/RESULTS.md with the ratio per cell, so that what each method adds or misses is on record.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tabulate import tabulate

from common import results_of, write_section


def rows(run_folders: list[Path]) -> list[list]:
    found = []
    for folder in run_folders:
        for record in results_of(folder):
            model = (record.get("measurement") or {}).get("model") or {}
            counted = model.get("counted_flops")
            if record["status"] != "ok" or not isinstance(counted, dict):
                continue
            settings = record["measurement"]["settings"]
            exact, framework = model["training_flops_per_image"], counted["training_flops_per_image"]
            found.append([record["workload"], record["axes"]["framework"], settings.get("image_size", "-"), settings["batch_size"],
                          f"{exact / 1e6:.1f}", f"{framework / 1e6:.1f}", f"{framework / exact:.3f}", counted["method"]])
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", metavar="RUN_FOLDER")
    args = parser.parse_args(argv)
    table = tabulate(rows(args.runs), headers=["workload", "backend", "image px", "batch", "layer count MFLOP/image",
                                               "framework's MFLOP/image", "ratio", "method"], tablefmt="github", disable_numparse=True)
    print(table)
    runs = ", ".join(folder.name for folder in args.runs)
    write_section("flop_counts", f"## FLOPs as each framework counts them (bench/flop_counts.py)\n\n"
                                 f"Runs {runs}: `.venv/bin/python bench/flop_counts.py RUN_FOLDER ...` on their folders. "
                                 f"A training step's FLOPs per image, by the exact layer count and by the framework's own "
                                 f"count of one step on the first batch (docs/workloads.md says what each method counts).\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
