"""The workload's telemetry sampler: its CPU side for real, in this process, for a fraction of a second; its
NVML side against a fake pynvml module (a scripted GPU whose clocks drop, that throttles, with or without
an energy counter); and what the report says of what it recorded."""

import dataclasses
import signal
import sys
import threading
import time
import types
from pathlib import Path

import pytest

from runner.report import render
from test_records import epoch, measurement, record
from workload import contract

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workload"))  # as the workload runs: its modules side by side

import benchmark  # noqa: E402
import telemetry_sampler  # noqa: E402


class NVMLError(Exception):
    """pynvml's error: str() is NVML's own words."""


class FakeGpus:
    """A scripted machine for the sampler: `state` is what the GPUs show now, `advance` moves time and energy on."""

    def __init__(self, count=1, energy_counter=True, unsupported=()):
        self.count, self.energy_counter, self.unsupported = count, energy_counter, set(unsupported)
        self.now = 0.0
        self.millijoules = 5_000_000.0  # since the driver loaded
        self.state = {"sm": 1980, "memory": 2619, "milliwatts": 300_000, "temperature": 60, "utilisation": 97,
                      "used": 10 * 2**30, "reasons": 0}
        self.initialised = self.shut_down = False

    def clock(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds
        self.millijoules += self.state["milliwatts"] * seconds

    def module(self, **replaced):
        """The fake as the pynvml module object the sampler is given."""
        module = types.ModuleType("pynvml")
        module.NVMLError = NVMLError
        for name in dir(self):
            if name.startswith("nvml"):
                setattr(module, name, getattr(self, name))
        for name, function in replaced.items():
            setattr(module, name, function)
        return module

    def _answer(self, what, value):
        if what in self.unsupported:
            raise NVMLError("Not Supported")
        return value

    def nvmlInit(self):
        self.initialised = True

    def nvmlShutdown(self):
        self.shut_down = True

    def nvmlDeviceGetCount(self):
        return self.count

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("handle", index)

    def nvmlDeviceGetUUID(self, handle):
        return f"GPU-{handle[1]}{handle[1]}aa0000-1111-2222-3333-444455556666"

    def nvmlDeviceGetName(self, handle):
        return "NVIDIA H200"

    def nvmlDeviceGetPowerUsage(self, handle):
        return self._answer("power", self.state["milliwatts"])

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.energy_counter:
            raise NVMLError("Not Supported")
        return int(self.millijoules)

    def nvmlDeviceGetClockInfo(self, handle, clock_type):
        return self.state["sm"] if clock_type == telemetry_sampler.CLOCK_SM else self.state["memory"]

    def nvmlDeviceGetMaxClockInfo(self, handle, clock_type):
        return 1980 if clock_type == telemetry_sampler.CLOCK_SM else 2619

    def nvmlDeviceGetClock(self, handle, clock_type, clock_id):
        return 1980

    def nvmlDeviceGetTemperature(self, handle, sensor):
        return self._answer("temperature", self.state["temperature"])

    def nvmlDeviceGetUtilizationRates(self, handle):
        return types.SimpleNamespace(gpu=self.state["utilisation"], memory=40)

    def nvmlDeviceGetMemoryInfo(self, handle):
        return types.SimpleNamespace(used=self.state["used"], total=141 * 2**30, free=131 * 2**30)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle):
        return self.state["reasons"]

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return 700_000


HW_THERMAL, GPU_IDLE = 0x40, 0x1


def scripted_sampler(fake, registered=("/physical_device:GPU:0",), environ=None):
    """A sampler on the fake whose thread never fires on its own: the test takes every sample."""
    gpus = telemetry_sampler.open_gpus(list(registered), nvml=fake.module(), environ=environ or {})
    return telemetry_sampler.Sampler(telemetry_sampler.ProcessProbe(), gpus, interval=3600, clock=fake.clock).start()


def run_epochs(fake, sampler, script):
    """Epochs, each a list of (seconds, state changes) steps, each step ending with a sample; their figures."""
    figures = []
    for steps in script:
        sampler.begin_epoch()
        for seconds, changes in steps:
            fake.state.update(changes)
            fake.advance(seconds)
            sampler.sample()
        figures.append(sampler.end_epoch())
    return figures


STEADY = [(1.0, {}), (1.0, {})]
THROTTLED = [(1.0, {"sm": 1410, "reasons": HW_THERMAL, "temperature": 89}), (1.0, {"sm": 1980, "reasons": 0, "temperature": 80})]
DRIFTING = [(1.0, {"sm": 1800}), (1.0, {"sm": 1980})]  # no reason given: clocks simply not locked
IDLING = [(1.0, {"sm": 345, "reasons": GPU_IDLE, "milliwatts": 80_000}), (1.0, {"sm": 1980, "reasons": 0, "milliwatts": 300_000})]


def test_each_epoch_gets_energy_from_the_counter_clocks_temperature_and_the_throttle_reasons_seen():
    fake = FakeGpus()
    sampler = scripted_sampler(fake)
    warmup, steady, throttled = run_epochs(fake, sampler, [STEADY, STEADY, THROTTLED])
    (gpu,) = steady.gpus
    assert gpu.index == 0 and gpu.samples == 4 == gpu.busy_samples  # begin, two steps, end
    assert (gpu.energy_joules, gpu.energy_source) == (600.0, "counter")  # 300 W for 2 s
    assert (gpu.power_watts_mean, gpu.power_watts_max) == (300.0, 300.0)
    assert (gpu.sm_clock_mhz_min, gpu.sm_clock_mhz_max, gpu.memory_clock_mhz_min) == (1980, 1980, 2619)
    assert (gpu.temperature_c_max, gpu.utilisation_percent_mean, gpu.memory_used_bytes_max) == (60, 97, 10 * 2**30)
    assert gpu.clock_event_reasons == []
    (hot,) = throttled.gpus
    assert (hot.sm_clock_mhz_min, hot.sm_clock_mhz_max) == (1410, 1980)  # the epoch began at 1980
    assert hot.clock_event_reasons == ["hw_thermal_slowdown"] and hot.temperature_c_max == 89
    facts = sampler.stop()
    assert facts.gpus == [telemetry_sampler.GpuFacts(index=0, name="NVIDIA H200", uuid="GPU-00aa0000-1111-2222-3333-444455556666",
                                             power_limit_watts=700.0, max_sm_clock_mhz=1980, max_memory_clock_mhz=2619,
                                             applications_sm_clock_mhz=1980, default_applications_sm_clock_mhz=1980, energy_counter=True,
                                             not_sampled={})]
    assert fake.shut_down


def test_idle_samples_say_nothing_of_clocks_and_without_a_counter_power_is_integrated():
    fake = FakeGpus(energy_counter=False)
    sampler = scripted_sampler(fake)
    (epoch,) = run_epochs(fake, sampler, [IDLING])
    (gpu,) = epoch.gpus
    assert (gpu.samples, gpu.busy_samples) == (4, 3)
    assert (gpu.sm_clock_mhz_min, gpu.sm_clock_mhz_max) == (1980, 1980)  # the 345 MHz sample was idle
    assert gpu.clock_event_reasons == ["gpu_idle"]
    assert gpu.energy_source == "power samples"
    # Samples at t = 0, 1, 2, 2 s of 300, 80, 300, 300 W: trapezoids (300+80)/2 + (80+300)/2 + 0 = 380 J.
    assert gpu.energy_joules == pytest.approx(380.0)
    assert sampler.stop().gpus[0].energy_counter == "not available: NVML: Not Supported"


def test_what_a_gpu_does_not_answer_is_said_in_words_never_zero():
    fake = FakeGpus(energy_counter=False, unsupported={"power", "temperature"})
    sampler = scripted_sampler(fake)
    (epoch,) = run_epochs(fake, sampler, [STEADY])
    (gpu,) = epoch.gpus
    assert gpu.temperature_c_max == gpu.power_watts_mean == "not available: NVML: Not Supported"
    assert gpu.energy_source == "not available"
    assert gpu.energy_joules.startswith("not available: NVML: Not Supported; too few power samples")
    assert sampler.stop().gpus[0].not_sampled == {"power_milliwatts": "not available: NVML: Not Supported",
                                                        "temperature_c": "not available: NVML: Not Supported"}


def test_the_older_throttle_reasons_function_is_used_where_the_new_one_fails():
    fake = FakeGpus()

    def missing(handle):
        raise NVMLError("Function Not Found")

    module = fake.module(nvmlDeviceGetCurrentClocksEventReasons=missing,
                         nvmlDeviceGetCurrentClocksThrottleReasons=lambda handle: 0x4)
    sampler = telemetry_sampler.Sampler(telemetry_sampler.ProcessProbe(), telemetry_sampler.open_gpus(["gpu"], nvml=module, environ={}), 3600, fake.clock).start()
    (epoch,) = run_epochs(fake, sampler, [STEADY])
    assert epoch.gpus[0].clock_event_reasons == ["sw_power_cap"]
    sampler.stop()


@pytest.mark.parametrize("visible, indices", [
    (None, [0, 1, 2]),
    ("2", [2]),
    ("2,0", [2, 0]),
    ("1,7,0", [1]),  # CUDA ignores the list from the first entry that names no GPU
    ("GPU-11aa", [1]),  # a unique UUID prefix, as CUDA takes it
    ("", "not available: CUDA_VISIBLE_DEVICES='' leaves no GPU that NVML lists"),
    ("MIG-0a1b", "not available: CUDA_VISIBLE_DEVICES='MIG-0a1b' leaves no GPU that NVML lists"),
])
def test_only_the_gpus_this_process_may_use_are_sampled(visible, indices):
    assert telemetry_sampler.visible_indices(FakeGpus(count=3).module(), visible) == indices


def test_without_gpus_the_record_says_why():
    fake = FakeGpus()
    assert telemetry_sampler.open_gpus([], nvml=fake.module(), environ={}) == "not available: the framework registered no GPU"

    def driver_not_loaded():
        raise NVMLError("Driver Not Loaded")

    assert telemetry_sampler.open_gpus(["gpu"], nvml=fake.module(nvmlInit=driver_not_loaded), environ={}) == \
        "not available: NVML failed (Driver Not Loaded)"
    assert telemetry_sampler.reason_names(0x40 | 0x4 | 0x1 | 0x8000) == ["gpu_idle", "sw_power_cap", "hw_thermal_slowdown", "0x8000"]


def test_the_cpu_side_samples_this_process_for_real():
    sampler = telemetry_sampler.Sampler(telemetry_sampler.ProcessProbe(), "not available: no NVIDIA driver (test)", interval=0.02).start()
    sampler.begin_epoch()
    hoard = bytearray(64 * 2**20)
    hoard[::4096] = b"x" * len(hoard[::4096])  # touched, so resident
    spent = time.process_time() + 0.15
    while time.process_time() < spent:
        pass  # busy: CPU time to account for, however loaded the host
    epoch = sampler.end_epoch()
    facts = sampler.stop()
    del hoard
    assert epoch.samples >= 4  # the thread's, and the first and last
    assert epoch.rss_bytes_max >= 64 * 2**20
    assert epoch.process_peak_rss_bytes >= 64 * 2**20
    assert isinstance(epoch.children_peak_rss_bytes, int)
    assert 0.12 < epoch.cpu_seconds < 2
    assert 0 < epoch.cpu_utilisation <= 1.1
    assert epoch.gpus == "not available: no NVIDIA driver (test)"
    assert facts.sampler.samples == epoch.samples and facts.sampler.cpu_share < 0.2
    assert facts.cpus_usable >= 1 and facts.interval_seconds == 0.02
    assert isinstance(facts.memory_limit_bytes, int) or facts.memory_limit_bytes.startswith("none")


def test_the_sampler_thread_blocks_sigint_and_sigterm_and_the_main_thread_does_not():
    sampler = telemetry_sampler.Sampler(telemetry_sampler.ProcessProbe(), "not available: test", interval=0.02).start()
    try:
        (thread,) = [thread for thread in threading.enumerate() if thread.name == "telemetry"]
        status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
        blocked = int(next(line for line in status.splitlines() if line.startswith("SigBlk:")).split()[1], 16)
        assert blocked >> (signal.SIGINT - 1) & 1 and blocked >> (signal.SIGTERM - 1) & 1
        assert not {signal.SIGINT, signal.SIGTERM} & signal.pthread_sigmask(signal.SIG_BLOCK, [])
    finally:
        sampler.stop()
    assert not thread.is_alive()


def test_the_switch_turns_the_sampler_off(monkeypatch):
    monkeypatch.setenv(contract.TELEMETRY_SWITCH, "off")
    assert telemetry_sampler.start([]) is None
    assert telemetry_sampler.OFF == "off: CUDNN_MATRIX_TELEMETRY=off"


def test_the_epoch_timer_opens_and_closes_each_epochs_window():
    keras = types.SimpleNamespace(callbacks=types.SimpleNamespace(Callback=object))
    fake = FakeGpus()
    sampler = scripted_sampler(fake)
    timer = benchmark.epoch_timer(keras, 64, 1, lambda: None, {}, sampler)
    timer.on_epoch_begin(0)
    timer.on_train_batch_begin(0)
    fake.advance(1.0)
    timer.on_epoch_end(0, {"loss": 0.5})
    (epoch,) = timer.epochs
    assert epoch.telemetry.gpus[0].energy_joules == 300.0 and epoch.logs == {"loss": 0.5}
    assert threading.current_thread() is threading.main_thread()
    sampler.stop()


def test_from_a_throttled_gpu_to_the_reports_words():
    fake = FakeGpus()
    sampler = scripted_sampler(fake)
    epochs = run_epochs(fake, sampler, [STEADY, STEADY, THROTTLED, THROTTLED, DRIFTING])
    data = measurement([dict(epoch(s, 1600 / s), telemetry=dataclasses.asdict(t)) for s, t in zip((5.0, 2.0, 2.4, 2.4, 2.1), epochs)],
                       data_kind="real")
    data["telemetry"] = dataclasses.asdict(sampler.stop())
    cell = "gpu-cuda12.6-cudnn9.3-tf2.21-dogs-vs-cats"
    text = render([record(cell, measurement=data, kind="gpu", cuda="12.6", cudnn="9.3")])
    lines = text.split("Telemetry, during timed epochs")[1].splitlines()[1:3]
    assert lines == [
        f"- {cell}: thermal throttling (hw_thermal_slowdown) in epochs 3-4: its timing is not comparable.",
        f"- {cell}: SM clock moved between 1800 and 1980 MHz in timed epochs (more than 2% below its highest in epoch 5): "
        "clocks were not locked; lock them for comparable timings, e.g. `sudo nvidia-smi -lgc 1800,1800` (the lowest SM clock seen while busy).",
    ]


def test_what_the_workload_writes_the_runner_reads_back_field_for_field(tmp_path):
    """The workload's own measurement-building code, fed epoch timings and a scripted GPU with no framework imported,
    prints a record that the runner's side of the contract reads back whole: a field renamed on one side fails here."""
    keras = types.SimpleNamespace(
        __version__="3.15.1", callbacks=types.SimpleNamespace(Callback=object), backend=types.SimpleNamespace(backend=lambda: "torch"),
        mixed_precision=types.SimpleNamespace(global_policy=lambda: types.SimpleNamespace(compute_dtype="float32")))
    torch = types.SimpleNamespace(__version__="2.11.0", cuda=types.SimpleNamespace(is_available=lambda: False),
                                  version=types.SimpleNamespace(cuda=None), backends=types.SimpleNamespace(cudnn=types.SimpleNamespace(version=lambda: None)))
    job = benchmark.contract.JobSpec(
        cell_id="cpu-torch2.11-mnist", framework="torch", model="mnist", data_dir=str(tmp_path), epochs=2, warmup_epochs=1, batch_size=16,
        train_images=64, validation_images=32, image_size=28, classes=10, data_format="channels_last", jit_compile="auto", intra_op_threads=0, inter_op_threads=0, fault="none",
        pipeline=benchmark.contract.Pipeline("jpeg", False, 2, 2), loader="python", precision="fp32", cudnn=True, conv_autotune="default", kernel_time="auto",
        expect_gpu=False, expect_cudnn="")
    fake = FakeGpus()
    sampler = scripted_sampler(fake)
    timeline = {"process_started": 1.0}
    timer = benchmark.epoch_timer(keras, job.train_images, job.epochs, lambda: None, timeline, sampler)
    for number in range(job.epochs):
        timer.on_epoch_begin(number)
        for step in range(4):
            timer.on_train_batch_begin(step)
            time.sleep(0.002)
            fake.advance(0.5)
        timer.on_test_begin()
        timer.on_test_end()
        timer.on_epoch_end(number, {"loss": 0.7 - number / 10, "accuracy": 0.5})
    record = benchmark.provenance(torch, keras, job, {"tf32": False})
    record.update(epochs=[benchmark.with_rates(epoch, job.batch_size, 12e6, 0.001) for epoch in timer.epochs], telemetry=sampler.stop(),
                  timeline=timeline, model={"parameters": 1, "training_flops_per_image": 12e6}, convolution_ops=["aten::conv2d"])

    line = benchmark.record_line(record, None)

    assert line.startswith(contract.RECORD_PREFIX)
    read = contract.Measurement.from_json(line[len(contract.RECORD_PREFIX):])
    assert dataclasses.asdict(read) == dataclasses.asdict(benchmark.contract.Measurement(**record))
    assert read.epochs[1].logs == {"loss": 0.6, "accuracy": 0.5} and 0 <= read.epochs[1].input_wait_share < 1
    assert read.epochs[1].telemetry.gpus[0].energy_joules == 600.0  # 300 W for four half-second steps
    assert read.telemetry.gpus[0].name == "NVIDIA H200" and read.telemetry.sampler.samples > 0
