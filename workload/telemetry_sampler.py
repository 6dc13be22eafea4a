"""What the machine did during every epoch, sampled beside the training by a thread of this process.

On every host: this process's resident memory (sampled, and the peak the kernel keeps) and the CPU
time it used. On NVIDIA GPUs, through NVML (pynvml, from the nvidia-ml-py package): energy, power,
SM and memory clocks, temperature, utilisation, memory in use, and the reasons NVML gives for
clocks held down (power cap, thermal slowdown, ...). It only reads: no clock or limit is ever set.

The sampler is a daemon thread that reads every INTERVAL_SECONDS, started with SIGINT and SIGTERM
blocked, so that those always reach the main thread and the workload stays interruptible. Standard
library and pynvml only. A figure that cannot be had is a string beginning "not available" that
says why, never a zero that would read as a measurement.
"""

import ctypes
import os
import resource
import threading
import time
from statistics import fmean

from contract import (CLOCK_EVENT_REASONS, NOT_AVAILABLE, TELEMETRY_SWITCH, EpochTelemetry, GpuEpoch, GpuFacts, RunTelemetry,
                      SamplerCost)
from threads import start_deaf_to_signals

INTERVAL_SECONDS = 0.25  # 4 reads a second: the cost is measured in every record ("sampler") and in bench/
OFF = f"off: {TELEMETRY_SWITCH}=off"
GPU_IDLE = 0x1  # CLOCK_EVENT_REASONS: clocks are low because nothing runs; such samples say nothing of clocks
# NVML's enums (nvml.h); stable numbers, so that a fake NVML needs only the functions.
CLOCK_SM, CLOCK_MEM = 1, 2
CLOCK_ID_APP_TARGET, CLOCK_ID_APP_DEFAULT = 1, 2
TEMPERATURE_GPU = 0


# --- this process: memory and CPU ----------------------------------------------------------


class ProcessProbe:
    """This process's resident memory and CPU time, from /proc and the kernel's accounting."""

    def __init__(self, proc="/proc/self"):
        self.proc = proc
        self.page_bytes = os.sysconf("SC_PAGE_SIZE")
        self.cores = len(os.sched_getaffinity(0))

    def rss_bytes(self):
        """Resident memory now (/proc/self/statm), or None where it cannot be read."""
        try:
            with open(f"{self.proc}/statm") as statm:
                return int(statm.read().split()[1]) * self.page_bytes
        except (OSError, IndexError, ValueError):
            return None

    def peaks(self):
        """The kernel's high-water marks: this process's (VmHWM, since it started) and its largest waited-for child's."""
        peak = f"{NOT_AVAILABLE}: no VmHWM in {self.proc}/status"
        try:
            with open(f"{self.proc}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak = int(line.split()[1]) * 1024
        except (OSError, ValueError):
            pass
        return {"process_peak_rss_bytes": peak,
                "children_peak_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}

    @staticmethod
    def cpu_seconds():
        """CPU time used so far, every thread of this process and its waited-for children."""
        times = os.times()
        return times.user + times.system + times.children_user + times.children_system


def memory_limit():
    """This process's cgroup memory limit in bytes, or words: none, or why it is not known."""
    candidates = []
    try:
        with open("/proc/self/cgroup") as cgroups:
            for line in cgroups:
                hierarchy, controllers, path = line.rstrip("\n").split(":", 2)
                path = path.rstrip("/")
                if hierarchy == "0":  # cgroup v2: the process's own group
                    candidates.append(f"/sys/fs/cgroup{path}/memory.max")
                elif "memory" in controllers.split(","):  # cgroup v1
                    candidates.append(f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
    except (OSError, ValueError):
        pass
    # Inside a container the process's own group is mounted at the top (v2, then v1).
    candidates += ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
    for path in candidates:
        try:
            with open(path) as limit:
                text = limit.read().strip()
        except OSError:
            continue
        return "none: no cgroup memory limit" if text == "max" or int(text) >= 2**60 else int(text)
    return "none: no cgroup memory limit"


# --- the GPUs: NVML ------------------------------------------------------------------------


def open_gpus(registered, nvml=None, environ=None):
    """The GPUs this process uses, as Devices, or why there are none to sample ("not available: ...").

    `nvml` is the pynvml module, or a stand-in for it (the tests'); None loads the real one.
    """
    environ = os.environ if environ is None else environ
    if nvml is None:
        try:
            ctypes.CDLL("libnvidia-ml.so.1")
        except OSError:
            return f"{NOT_AVAILABLE}: no NVIDIA driver (libnvidia-ml.so.1 not found)"
    if not registered:
        return f"{NOT_AVAILABLE}: the framework registered no GPU"
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            return f"{NOT_AVAILABLE}: the nvidia-ml-py package is not installed (import pynvml failed)"
    failures = _failures(nvml)
    try:
        nvml.nvmlInit()
        indices = visible_indices(nvml, environ.get("CUDA_VISIBLE_DEVICES"))
        if isinstance(indices, str):
            nvml.nvmlShutdown()
            return indices
        return [Device(nvml, index) for index in indices]
    except failures as error:
        return f"{NOT_AVAILABLE}: NVML failed ({error})"


def visible_indices(nvml, visible):
    """NVML indices of the GPUs CUDA_VISIBLE_DEVICES leaves this process (all when unset), or why none.

    As CUDA reads it: indices or GPU UUIDs (or a unique prefix of one), and the list ends at the
    first entry that names no GPU. Inside a container the engine has already narrowed what NVML lists.
    """
    count = nvml.nvmlDeviceGetCount()
    if visible is None:
        return list(range(count))
    uuids = None
    chosen = []
    for entry in (part.strip() for part in visible.split(",")):
        index = None
        if entry.isascii() and entry.isdigit() and int(entry) < count:
            index = int(entry)
        elif entry.startswith("GPU-"):
            uuids = uuids or [nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)]
            matches = [i for i, uuid in enumerate(uuids) if uuid.startswith(entry)]
            index = matches[0] if len(matches) == 1 else None
        if index is None or index in chosen:
            break
        chosen.append(index)
    return chosen or f"{NOT_AVAILABLE}: CUDA_VISIBLE_DEVICES={visible!r} leaves no GPU that NVML lists"


def _failures(nvml):
    """What NVML calls raise when a query fails: pynvml's NVMLError, or a missing function in an old pynvml."""
    return (getattr(nvml, "NVMLError", RuntimeError), AttributeError)


def _reasons_reader(nvml):
    """nvmlDeviceGetCurrentClocksEventReasons, or its older name where pynvml or the driver lacks it."""
    new, old = (getattr(nvml, name, None) for name in ("nvmlDeviceGetCurrentClocksEventReasons",
                                                          "nvmlDeviceGetCurrentClocksThrottleReasons"))

    def read(handle):
        if new is not None:
            try:
                return new(handle)
            except _failures(nvml):
                if old is None:
                    raise
        return old(handle)

    return read


class Device:
    """One GPU through NVML: what it is, asked once, and what can be sampled of it."""

    def __init__(self, nvml, index):
        self.nvml, self.index = nvml, index
        self.failures = _failures(nvml)
        handle = self.handle = nvml.nvmlDeviceGetHandleByIndex(index)
        reasons = _reasons_reader(nvml)
        candidates = {
            "power_milliwatts": lambda: nvml.nvmlDeviceGetPowerUsage(handle),
            "sm_clock_mhz": lambda: nvml.nvmlDeviceGetClockInfo(handle, CLOCK_SM),
            "memory_clock_mhz": lambda: nvml.nvmlDeviceGetClockInfo(handle, CLOCK_MEM),
            "temperature_c": lambda: nvml.nvmlDeviceGetTemperature(handle, TEMPERATURE_GPU),
            "utilisation_percent": lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu,
            "memory_used_bytes": lambda: nvml.nvmlDeviceGetMemoryInfo(handle).used,
            "reasons": lambda: reasons(handle),
        }
        self.readers, self.missing = {}, {}  # what this GPU answers, and why the rest is not available
        for name, read in candidates.items():
            answer = self.ask(read)
            (self.missing if isinstance(answer, str) else self.readers)[name] = answer if isinstance(answer, str) else read
        self.energy_counter = self.ask(lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(handle))

    def ask(self, question):
        """NVML's answer, or why there is none."""
        try:
            return question()
        except self.failures as error:
            return f"{NOT_AVAILABLE}: NVML: {error}"

    def energy_millijoules(self):
        """The GPU's energy counter (millijoules since the driver loaded), or None without one."""
        if isinstance(self.energy_counter, str):
            return None
        answer = self.ask(lambda: self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))
        return None if isinstance(answer, str) else answer

    def read(self):
        """One sample: every figure this GPU answers now (a failed read is left out)."""
        sample = {}
        for name, read in self.readers.items():
            try:
                sample[name] = read()
            except self.failures:
                continue
        return sample

    def facts(self):
        """What this GPU is and how it is set, asked once: name, limits, application clocks, an energy counter."""
        nvml, handle = self.nvml, self.handle

        def clock(clock_id, old_name):
            answer = self.ask(lambda: nvml.nvmlDeviceGetClock(handle, CLOCK_SM, clock_id))
            return self.ask(lambda: getattr(nvml, old_name)(handle, CLOCK_SM)) if isinstance(answer, str) else answer

        limit = self.ask(lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle))
        return GpuFacts(
            index=self.index,
            name=self.ask(lambda: nvml.nvmlDeviceGetName(handle)),
            uuid=self.ask(lambda: nvml.nvmlDeviceGetUUID(handle)),
            power_limit_watts=limit if isinstance(limit, str) else limit / 1000,
            max_sm_clock_mhz=self.ask(lambda: nvml.nvmlDeviceGetMaxClockInfo(handle, CLOCK_SM)),
            max_memory_clock_mhz=self.ask(lambda: nvml.nvmlDeviceGetMaxClockInfo(handle, CLOCK_MEM)),
            applications_sm_clock_mhz=clock(CLOCK_ID_APP_TARGET, "nvmlDeviceGetApplicationsClock"),
            default_applications_sm_clock_mhz=clock(CLOCK_ID_APP_DEFAULT, "nvmlDeviceGetDefaultApplicationsClock"),
            energy_counter=True if not isinstance(self.energy_counter, str) else self.energy_counter,
            not_sampled=dict(self.missing),
        )


# --- the sampler ---------------------------------------------------------------------------


class Sampler:
    """A thread that samples every `interval` seconds; the epoch timer opens and closes each epoch's window."""

    def __init__(self, process, gpus, interval=INTERVAL_SECONDS, clock=time.monotonic):
        self.process, self.gpus, self.interval, self.clock = process, gpus, interval, clock
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="telemetry", daemon=True)
        self._epoch = None
        self._samples = 0
        self._cost = 0.0  # CPU seconds spent sampling, in whichever thread
        self._started = None

    def start(self):
        self._started = self.clock()
        start_deaf_to_signals(self._thread)
        return self

    def _loop(self):
        while not self._stopping.wait(self.interval):
            self.sample()

    def sample(self):
        """Take one sample into the open epoch, if one is open (the thread calls this every interval)."""
        with self._lock:
            if self._epoch is not None:
                self._take(self._epoch)

    def _take(self, epoch):
        spent = time.thread_time()
        now = self.clock()
        epoch["rss"].append(self.process.rss_bytes())
        if not isinstance(self.gpus, str):
            for device in self.gpus:
                epoch["gpus"][device.index].append((now, device.read()))
        self._samples += 1
        self._cost += time.thread_time() - spent

    def begin_epoch(self):
        with self._lock:
            spent = time.thread_time()
            epoch = {"started": self.clock(), "cpu": self.process.cpu_seconds(), "rss": [], "gpus": {}, "energy": {}}
            if not isinstance(self.gpus, str):
                for device in self.gpus:
                    epoch["gpus"][device.index] = []
                    epoch["energy"][device.index] = device.energy_millijoules()
            self._cost += time.thread_time() - spent
            self._take(epoch)
            self._epoch = epoch

    def end_epoch(self):
        """Close the epoch's window with a last sample; its figures, for the epoch's record."""
        with self._lock:
            epoch, self._epoch = self._epoch, None
            self._take(epoch)
            spent = time.thread_time()
            ended, cpu = self.clock(), self.process.cpu_seconds()
            energy = {} if isinstance(self.gpus, str) else {device.index: device.energy_millijoules() for device in self.gpus}
            summary = self._summary(epoch, ended, cpu, energy)
            self._cost += time.thread_time() - spent
        return summary

    def _summary(self, epoch, ended, cpu, energy):
        wall = ended - epoch["started"]
        rss = [value for value in epoch["rss"] if value is not None]
        used = cpu - epoch["cpu"]
        return EpochTelemetry(
            samples=len(epoch["rss"]),
            rss_bytes_max=max(rss) if rss else f"{NOT_AVAILABLE}: {self.process.proc}/statm could not be read",
            **self.process.peaks(),
            cpu_seconds=used,
            cpu_utilisation=used / (wall * self.process.cores) if wall > 0 else f"{NOT_AVAILABLE}: no time passed",
            gpus=self.gpus if isinstance(self.gpus, str) else
            [gpu_summary(device, epoch["gpus"][device.index], epoch["energy"][device.index], energy[device.index]) for device in self.gpus],
        )

    def stop(self):
        """End the thread (and NVML); what the run had and what sampling cost, for the measurement."""
        self._stopping.set()
        self._thread.join(timeout=5 * self.interval + 1)
        wall = self.clock() - self._started
        gpus = self.gpus if isinstance(self.gpus, str) else [device.facts() for device in self.gpus]
        if not isinstance(self.gpus, str) and self.gpus:
            try:
                self.gpus[0].nvml.nvmlShutdown()
            except self.gpus[0].failures:
                pass
        return RunTelemetry(
            interval_seconds=self.interval, cpus_usable=self.process.cores, memory_limit_bytes=memory_limit(), gpus=gpus,
            sampler=SamplerCost(samples=self._samples, cpu_seconds=self._cost, cpu_share=self._cost / wall if wall > 0 else 0.0),
        )


def gpu_summary(device, samples, energy_begin, energy_end):
    """One GPU's figures for one epoch, from its samples (time, values) and its energy counter at both ends."""
    values = [sample for _, sample in samples]
    busy = [sample for sample in values if not sample.get("reasons", 0) & GPU_IDLE]

    def figure(name, combine, source=values, scale=1, empty="no sample could be read"):
        if name in device.missing:
            return device.missing[name]
        seen = [sample[name] for sample in source if name in sample]
        return combine(seen) * scale if seen else f"{NOT_AVAILABLE}: {empty}"

    idle = "the GPU was idle in every sample"
    seen = 0
    for sample in values:
        seen |= sample.get("reasons", 0)
    return GpuEpoch(
        index=device.index,
        samples=len(values),
        busy_samples=len(busy),
        **_energy(device, samples, energy_begin, energy_end),
        power_watts_mean=figure("power_milliwatts", fmean, scale=1 / 1000),
        power_watts_max=figure("power_milliwatts", max, scale=1 / 1000),
        sm_clock_mhz_min=figure("sm_clock_mhz", min, busy, empty=idle),
        sm_clock_mhz_max=figure("sm_clock_mhz", max, busy, empty=idle),
        memory_clock_mhz_min=figure("memory_clock_mhz", min, busy, empty=idle),
        memory_clock_mhz_max=figure("memory_clock_mhz", max, busy, empty=idle),
        temperature_c_max=figure("temperature_c", max),
        utilisation_percent_mean=figure("utilisation_percent", fmean),
        memory_used_bytes_max=figure("memory_used_bytes", max),
        clock_event_reasons=device.missing.get("reasons") or reason_names(seen),
    )


def _energy(device, samples, begin, end):
    """The epoch's energy: the counter's difference where the GPU has one, else its power samples integrated."""
    if begin is not None and end is not None:
        return {"energy_joules": (end - begin) / 1000, "energy_source": "counter"}
    powered = [(at, sample["power_milliwatts"]) for at, sample in samples if "power_milliwatts" in sample]
    if len(powered) < 2:
        why = device.energy_counter if isinstance(device.energy_counter, str) else "the energy counter could not be read"
        return {"energy_joules": f"{why}; too few power samples to integrate", "energy_source": NOT_AVAILABLE}
    joules = sum((p0 + p1) / 2 * (t1 - t0) for (t0, p0), (t1, p1) in zip(powered, powered[1:])) / 1000
    return {"energy_joules": joules, "energy_source": "power samples"}


def reason_names(bits):
    """NVML's clocks event reason bits as names, lowest bit first; an unknown bit as its hex value."""
    return [CLOCK_EVENT_REASONS.get(1 << bit, hex(1 << bit)) for bit in range(bits.bit_length()) if bits >> bit & 1]


def start(registered):
    """The sampler for this run, already sampling, or None when telemetry is switched off."""
    if os.environ.get(TELEMETRY_SWITCH, "").strip().lower() == "off":
        return None
    return Sampler(ProcessProbe(), open_gpus(registered)).start()
