"""What the telemetry sampler costs: the same CPU cell's epochs with the sampler on and off, interleaved.

    python bench/telemetry_overhead.py [--python PATH] [--backend jax] [--rounds 3] [--results DIR]

Runs one small CPU cell (MNIST) with the local executor in the interpreter given, which must have
the backend and Keras 3 installed: 4 x rounds fresh processes, one repeat each, the sampler on and
off in the order on, off, off, on (so that a drift of the host falls on both alike).
CUDNN_MATRIX_TELEMETRY=off switches the sampler off; the local executor passes the host's variables
on (the Docker executor does not, which is why this runs locally). Then it prints a Markdown block
for bench/RESULTS.md: epoch time with the sampler on over off, with the interval and the test the
report uses, and the sampler's own CPU time as every record states it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from runner import records  # noqa: E402
from runner.stats import compare_repeats  # noqa: E402
from workload.contract import TELEMETRY_SWITCH, RunTelemetry  # noqa: E402
from workload.machine import cpu_model  # noqa: E402

ORDER = ("on", "off", "off", "on")  # one round
WORKLOAD = {"model": "mnist", "epochs": 4, "warmup_epochs": 1, "train_images": 2048, "validation_images": 256}


def installed(python: str, backend: str) -> dict[str, str]:
    """The versions the interpreter has of the backend and Keras."""
    query = f"import importlib.metadata as m, json; print(json.dumps({{n: m.version(n) for n in ({backend!r}, 'keras')}}))"
    return json.loads(subprocess.run([python, "-c", query], capture_output=True, text=True, check=True).stdout)


def minor(version: str) -> str:
    return ".".join(version.split("+")[0].split(".")[:2])


def matrix(backend: str, versions: dict[str, str], data: Path) -> dict:
    return {"workloads": {"mnist": dict(WORKLOAD, data=str(data))}, "repeats": 1,
            "cpu": {"backend": [backend], backend: [minor(versions[backend])], "keras": minor(versions["keras"])}}


def run_once(switch: str, matrix_path: Path, results: Path, python: str, log: Path) -> float:
    environment = {key: value for key, value in os.environ.items() if key != TELEMETRY_SWITCH}
    if switch == "off":
        environment[TELEMETRY_SWITCH] = "off"
    command = [sys.executable, "-m", "runner", "run", "-f", str(matrix_path), "--results", str(results / switch),
               "--executor", "local", "--python", python, "--repeats", "1"]
    started = time.monotonic()
    with log.open("a") as output:
        finished = subprocess.run(command, cwd=REPO, env=environment, stdout=output, stderr=subprocess.STDOUT)
    if finished.returncode != 0:
        raise SystemExit(f"the runner failed (exit code {finished.returncode}); see {log}")
    return time.monotonic() - started


def measured(results: Path, switch: str) -> list:
    """Every ok record of the runs made with the sampler `switch`."""
    found = [record for run in sorted((results / switch).iterdir()) if (run / records.RESULTS_FILE).exists()
             for record in records.load(run) if record.status == "ok"]
    for record in found:  # the switch did what it says, or nothing here means anything
        telemetry = record.measurement.telemetry
        assert isinstance(telemetry, RunTelemetry) if switch == "on" else str(telemetry).startswith("off"), (switch, telemetry)
    return found


def per_repeat(found: list) -> list[float]:
    return [median(e.seconds for e in r.measurement.epochs[r.measurement.warmup_epochs:]) for r in found]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=sys.executable, help="an interpreter with the backend and Keras 3 (default: this one)")
    parser.add_argument("--backend", default="jax", choices=("jax", "torch", "tensorflow"))
    parser.add_argument("--rounds", type=int, default=3, help="each round runs the cell 4 times: on, off, off, on")
    parser.add_argument("--results", type=Path, default=BENCH / "results" / "telemetry")
    args = parser.parse_args()
    versions = installed(args.python, args.backend)
    args.results.mkdir(parents=True, exist_ok=True)
    matrix_path = args.results / "telemetry_overhead.yaml"
    matrix_path.write_text(yaml.safe_dump(matrix(args.backend, versions, args.results / "data"), sort_keys=False))
    log = args.results / "runner.log"
    order = ORDER * args.rounds
    for number, switch in enumerate(order, 1):
        seconds = run_once(switch, matrix_path, args.results, args.python, log)
        print(f"[{number}/{len(order)}] sampler {switch}: {seconds:.0f} s", file=sys.stderr, flush=True)

    on, off = measured(args.results, "on"), measured(args.results, "off")
    seconds_on, seconds_off = per_repeat(on), per_repeat(off)
    compared = compare_repeats(seconds_on, seconds_off)  # its ratio: the median repeat on over off, in seconds
    shares = [r.measurement.telemetry.sampler.cpu_share for r in on]
    samples = [r.measurement.telemetry.sampler.samples for r in on]
    interval = on[0].measurement.telemetry.interval_seconds
    timed = WORKLOAD["epochs"] - WORKLOAD["warmup_epochs"]
    words = {"faster": "epochs are slower with the sampler on", "slower": "epochs are faster with the sampler on",
             "same": compared.words, "no_difference": compared.words}[compared.verdict]
    bounds = f" ({compared.ci_low:.3f}-{compared.ci_high:.3f})" if compared.ci_low is not None else ""
    cell = on[0].cell_id
    print(f"""
## Telemetry sampler overhead (bench/telemetry_overhead.py)

{time.strftime('%Y-%m-%d')}, {cpu_model()}, {len(os.sched_getaffinity(0))} usable cores, {platform.system()} {platform.release()};
{args.backend} {versions[args.backend]}, Keras {versions['keras']} ({args.python}), executor local; cell `{cell}`
({WORKLOAD['train_images']} synthetic training images, {timed} timed epochs after {WORKLOAD['warmup_epochs']} warm-up),
{len(seconds_on)} fresh processes with the sampler on and {len(seconds_off)} off, run in the order on, off, off, on.

```sh
{' '.join(['python', 'bench/telemetry_overhead.py', '--python', args.python, '--backend', args.backend, '--rounds', str(args.rounds)])}
```

| sampler | processes | epoch s, median repeat (range) |
|---------|-----------|--------------------------------|
| on      | {len(seconds_on)} | {median(seconds_on):.3f} ({min(seconds_on):.3f}-{max(seconds_on):.3f}) |
| off     | {len(seconds_off)} | {median(seconds_off):.3f} ({min(seconds_off):.3f}-{max(seconds_off):.3f}) |

- Epoch time with the sampler on / off: **{compared.ratio:.3f}**{bounds} (95% bootstrap interval; Welch t on log seconds,
  p = {compared.p_value:.2f}: {words}). On this host the repeats themselves spread by
  {max(seconds_on + seconds_off) / min(seconds_on + seconds_off) - 1:.1%}, so the interval, not the ratio, bounds the cost.
- The sampler's own CPU time, as every record states it (`telemetry.sampler.cpu_share`: its CPU seconds over
  the run's wall time): median **{median(shares):.3%}**, at most {max(shares):.3%}; {median(samples):.0f} samples
  a run, one every {interval} s while an epoch runs.
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
