"""Measurement parts shaped as the workload writes them (contract.MEASUREMENT_SCHEMA), for tests that make records by hand.

Every field is present, as the contract asks; what a test does not care about is left empty or "not available".
"""

from workload.contract import NOT_AVAILABLE

NOT_IN_TEST = f"{NOT_AVAILABLE}: not in this test"


def epoch(seconds: float, train_seconds: float | None = None, images_per_second: float | None = None, **figures) -> dict:
    """One epoch: its times, and none of the timer's other figures unless given."""
    train_seconds = train_seconds or seconds * 0.8
    return {"seconds": seconds, "train_seconds": train_seconds, "validation_seconds": None, "images_per_second": images_per_second or 2000 / train_seconds,
            "steps": None, "step_seconds_median": None, "step_seconds_max": None, "model_gflops_per_second": None,
            "gflops_per_second": None, "input_wait_share": None, "logs": {}, "telemetry": None, **figures}


def epoch_telemetry(gpus: list | str = NOT_IN_TEST, **figures) -> dict:
    """One epoch's telemetry: its GPUs' figures (gpu_epoch), the process's not measured unless given."""
    return {"samples": 8, "rss_bytes_max": NOT_IN_TEST, "process_peak_rss_bytes": NOT_IN_TEST, "children_peak_rss_bytes": 0,
            "cpu_seconds": 1.0, "cpu_utilisation": NOT_IN_TEST, "gpus": gpus, **figures}


def gpu_epoch(index: int = 0, **figures) -> dict:
    """One GPU's figures for one epoch: none measured unless given."""
    return {"index": index, "samples": 8, "busy_samples": 8, "energy_joules": NOT_IN_TEST, "energy_source": NOT_AVAILABLE,
            **{name: NOT_IN_TEST for name in ("power_watts_mean", "power_watts_max", "sm_clock_mhz_min", "sm_clock_mhz_max",
                                              "memory_clock_mhz_min", "memory_clock_mhz_max", "temperature_c_max",
                                              "utilisation_percent_mean", "memory_used_bytes_max")},
            "clock_event_reasons": [], **figures}


def run_telemetry(gpus: list | str = NOT_IN_TEST) -> dict:
    """A run's telemetry, its GPUs' facts as given (a list of dicts, or why there are none)."""
    return {"interval_seconds": 0.25, "cpus_usable": 2, "memory_limit_bytes": "none: no cgroup memory limit", "gpus": gpus,
            "sampler": {"samples": 40, "cpu_seconds": 0.01, "cpu_share": 0.001}}


def gpu_run_facts(index: int = 0, **facts) -> dict:
    """One GPU's facts for a run's telemetry: an H200 whose clocks are not locked, unless given."""
    return {"index": index, "name": "NVIDIA H200", "uuid": "GPU-00aa0000-1111-2222-3333-444455556666", "power_limit_watts": 700.0,
            "max_sm_clock_mhz": 1980, "max_memory_clock_mhz": 2619, "applications_sm_clock_mhz": 1980,
            "default_applications_sm_clock_mhz": 1980, "energy_counter": True, "not_sampled": {}, **facts}
