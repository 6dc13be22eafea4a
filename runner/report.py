"""Stage 6: records -> a table. Pure: it formats what it is given.

The first epoch (graph tracing, autotuning, caches) is shown apart; the epoch
time is the median of the timed epochs with their min-max range.
"""

from __future__ import annotations

from statistics import median

from tabulate import tabulate

from runner.records import Record

HEADERS = ["cell", "status", "epoch s (median, min-max)", "first epoch s", "images/s", "data", "TF loaded", "cuDNN named / loaded"]


def render(records: list[Record], table_format: str = "github") -> str:
    rows = [_row(record) for record in records]
    text = tabulate(rows, headers=HEADERS, tablefmt=table_format, disable_numparse=True)
    problems = [f"- {record.cell_id}: {record.status}: {record.reason}" for record in records if record.status != "ok"]
    if problems:
        text += "\n\nNot measured:\n" + "\n".join(problems)
    synthetic = sorted({r.workload for r in records if r.measurement and r.measurement["data"]["kind"] == "synthetic"})
    if synthetic:
        text += f"\n\nSynthetic data (no real data was present) for: {', '.join(synthetic)}. Timings are real; accuracy is meaningless."
    return text


def _cudnn(record: Record) -> str:
    """For GPU cells, the cuDNN the cell names beside the one the process really loaded."""
    if record.kind != "gpu":
        return "-"
    loaded = ((record.measurement or {}).get("gpu") or {}).get("cudnn", {}).get("version")
    return f"{record.cudnn_requested} / {loaded or '-'}"


def _row(record: Record) -> list[str]:
    if record.status != "ok":
        return [record.cell_id, record.status, "-", "-", "-", "-", "-", _cudnn(record)]
    measurement = record.measurement
    warmup = measurement["warmup_epochs"]
    epochs = measurement["epochs"]
    timed = [epoch["seconds"] for epoch in epochs[warmup:]]
    rates = [epoch["images_per_second"] for epoch in epochs[warmup:]]
    first = ", ".join(f"{epoch['seconds']:.2f}" for epoch in epochs[:warmup])
    return [
        record.cell_id,
        record.status,
        f"{median(timed):.2f} ({min(timed):.2f}-{max(timed):.2f})",
        first,
        f"{median(rates):.0f}",
        measurement["data"]["kind"],
        measurement["versions"]["tensorflow"],
        _cudnn(record),
    ]
