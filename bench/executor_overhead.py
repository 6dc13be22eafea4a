"""What the executors cost, and how stable a cell is: docker against venv, venv against local, in one run.

    python bench/executor_overhead.py [--quick] [--repeats N]

The same jax CPU cell (the `cpu-jax0.10` environment: jax 0.10, Keras 3.15, Pillow; MNIST, small
enough that a repeat takes seconds) runs with the venv, local (the venv's own interpreter, via
--python) and docker executors in turn, one repeat at a time, growing `--repeats` with `--resume`
in one run folder per executor — venv, local, docker, venv, local, docker, ... — so that drift in the
machine falls on all three alike. A CPU-bound calibration loop is timed before every repeat, beside
them. From those runs it writes to bench/RESULTS.md:

- container overhead: docker's median timed epoch over venv's (target <= 1.03);
- executor overhead: venv's over local's;
- stability: the spread (slowest / fastest) of timed epochs within a repeat and of repeat medians
  across fresh containers, beside the calibration loop's own spread (target <= 1.05);
- runner overhead per cell: from the runner handing the cell over to the workload's first step,
  less the framework's import, model build and first step, from the workload's timeline; and each
  one-cell run's wall time less the cell's own (target <= 2 s).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from statistics import median

import yaml

import common
from common import (BENCH, ROOT, calibration, judged, docker_version, load, provenance, repeat_medians, results_of, runner, spread,
                    table, timed_epochs, write_section)
from runner.stats import compare_repeats  # noqa: E402

SIZES = {"full": {"epochs": 4, "train_images": 512, "validation_images": 128, "repeats": 4},
         "quick": {"epochs": 2, "train_images": 256, "validation_images": 128, "repeats": 1}}
ORDER = ("venv", "local", "docker")  # venv first: local runs the venv's interpreter
CONTAINER_TARGET, STABILITY_TARGET, RUNNER_TARGET_S = 1.03, 1.05, 2.0


def matrix(size: dict) -> dict:
    workload = {key: size[key] for key in ("epochs", "train_images", "validation_images")}
    return {"workloads": {"mnist": dict(workload, data=str(ROOT / "data"))}, "cpu": {"backend": ["jax"], "jax": ["0.10"]}}


def stages(row: dict) -> dict[str, float]:
    """A record's timeline as seconds per stage, from the runner's launch on."""
    stamps = {"launched": row["launched"], **row["measurement"]["timeline"]}
    order = ["launched", "process_started", "framework_imported", "inputs_ready", "model_built", "first_step_ended", "trained"]
    return {f"{a} -> {b}": stamps[b] - stamps[a] for a, b in zip(order, order[1:])}


def runner_overhead_to_first_step(row: dict) -> float:
    """The runner's and the harness's part before the first step: handing over and starting the process,
    and the workload's own setup (provenance, data listing) — not the framework's import, model build or tracing."""
    timeline = row["measurement"]["timeline"]
    return (timeline["process_started"] - row["launched"]) + (timeline["inputs_ready"] - timeline["framework_imported"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny cells, one repeat")
    parser.add_argument("--repeats", type=int, help="repeats per executor (default: 4; --quick 1)")
    parser.add_argument("--results", type=Path, default=BENCH / "results")
    args = parser.parse_args()
    if args.quick:
        common.divert(args.results / "RESULTS-quick.md")
    size = SIZES["quick" if args.quick else "full"]
    repeats = args.repeats or size["repeats"]
    folder = args.results / ("executors-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S"))
    folder.mkdir(parents=True)
    matrix_path = folder / "matrix.yaml"
    matrix_path.write_text(yaml.safe_dump(matrix(size)))
    load_before = load()
    for executor in ("venv", "docker"):  # built (or found up to date) before anything is timed
        if runner("build", "-f", str(matrix_path), "--executor", executor, quiet=False)[0] != 0:
            return 1
    python, calibrations, walls = None, [], {executor: [] for executor in ORDER}
    for repeat in range(1, repeats + 1):
        for executor in ORDER:
            calibrations.append(calibration())
            options = ["--python", python] if executor == "local" else []
            resume = ["--resume", "latest"] if repeat > 1 else []
            started = time.time()
            code, seconds, _ = runner("run", "-f", str(matrix_path), "--executor", executor, *options, "--results", str(folder / executor),
                                   "--repeats", str(repeat), *resume)
            walls[executor].append((started, started + seconds))
            print(f"repeat {repeat}, {executor}: exit {code}, {seconds:.1f} s", file=sys.stderr)
            if executor == "venv" and python is None:
                python = str(Path(results_of(next((folder / "venv").iterdir()))[0]["environment"]["venv"]) / "bin" / "python")
    load_after = load()
    rows = {executor: results_of(next((folder / executor).iterdir())) for executor in ORDER}
    ok = {executor: [row for row in rows[executor] if row["status"] == "ok"] for executor in ORDER}
    if not all(ok.values()):
        print(f"error: some executor measured nothing; see {folder}", file=sys.stderr)
        return 1
    medians = {executor: repeat_medians(rows[executor]) for executor in ORDER}
    command = "python bench/executor_overhead.py" + (" --quick" if args.quick else "") + (f" --repeats {args.repeats}" if args.repeats else "")
    header = provenance(command, load_before, load_after, {"jax": ok["venv"][0]["measurement"]["versions"]["jax"],
                                                           "keras": ok["venv"][0]["measurement"]["versions"]["keras"], "docker engine": docker_version()})
    cell = (f"cell: `{ok['venv'][0]['cell_id']}` (MNIST, {size['train_images']} training images, {size['epochs']} epochs, the first one warm-up), "
            f"{repeats} repeat(s) per executor, interleaved venv, local, docker; run folders under `{folder.relative_to(ROOT)}`")

    ratio_rows = []
    for label, slower, faster, target in (("container: docker / venv", "docker", "venv", CONTAINER_TARGET),
                                          ("executor: venv / local", "venv", "local", CONTAINER_TARGET)):
        comparison = compare_repeats(medians[slower], medians[faster])
        interval = f"{comparison.ci_low:.3f}-{comparison.ci_high:.3f}" if comparison.ci_low is not None else "- (one repeat)"
        ratio_rows.append([label, f"{median(medians[slower]):.3f}", f"{median(medians[faster]):.3f}", f"{comparison.ratio:.3f}",
                           interval, f"{comparison.p_value:.2f}", judged(comparison.ratio, comparison.ci_high, target)])
    write_section("executors", "## Container and executor overhead (bench/executor_overhead.py)\n\n" + header + "\n- " + cell + "\n\n"
                  + table(["ratio", "numerator epoch s", "denominator epoch s", "ratio", "95% interval", "Welch p", "target"], ratio_rows))

    within = [spread(timed_epochs(row)) for row in ok["docker"]] if size["epochs"] - 1 > 1 else []
    stability_rows = [["timed epochs within one repeat (worst repeat), docker", f"{max(within):.3f}" if within else "-", judged(max(within), max(within), STABILITY_TARGET) if within else "-"],
                      ["repeat medians across fresh containers, docker", f"{spread(medians['docker']):.3f}", judged(spread(medians['docker']), spread(medians['docker']), STABILITY_TARGET)],
                      ["repeat medians across fresh processes, venv", f"{spread(medians['venv']):.3f}", "-"],
                      ["calibration loop (pure Python, one core), timed before each repeat", f"{spread(calibrations):.3f}", "the machine's own noise"]]
    write_section("stability", "## Stability (bench/executor_overhead.py, the same runs)\n\n" + header + "\n- " + cell + "\n\n"
                  + table(["spread (slowest / fastest)", "value", "target <= 1.05"], stability_rows))

    stage_rows, overhead_rows = [], []
    for executor in ORDER:
        timed = [row for row in ok[executor] if row.get("launched") and row["measurement"].get("timeline")]
        if not timed:
            continue
        per_stage = [stages(row) for row in timed]
        stage_rows.append([executor] + [f"{median(s[name] for s in per_stage):.2f}" for name in per_stage[0]])
        to_first = [runner_overhead_to_first_step(row) for row in timed]
        # Each run of the runner holds one cell: its wall time less the cell's own (launch to the last epoch's end).
        by_repeat = sorted(timed, key=lambda row: row["launched"])
        rest = [end - start - (row["measurement"]["timeline"]["trained"] - row["launched"]) for (start, end), row in zip(walls[executor], by_repeat)]
        before = [row["launched"] - start for (start, _), row in zip(walls[executor], by_repeat)]
        overhead_rows.append([executor, f"{median(to_first):.2f}", judged(median(to_first), max(to_first), RUNNER_TARGET_S),
                              f"{median(before):.2f}", f"{median(rest):.2f}", judged(median(rest), max(rest), RUNNER_TARGET_S)])
    names = list(stages(ok["venv"][0]))
    write_section("runner", "## Runner overhead per cell (bench/executor_overhead.py, the same runs)\n\n" + header + "\n- " + cell + "\n\n"
                  + "Median seconds per stage, from the workload's timeline (time.time() stamps; `launched` is the runner handing the "
                    "cell to the executor):\n\n" + table(["executor", *names], stage_rows) + "\n\n"
                  + table(["executor", "runner's part before the first step s", "target <= 2 s", "runner start -> cell launched s",
                           "one-cell run's wall time - the cell's own s", "target <= 2 s"], overhead_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
