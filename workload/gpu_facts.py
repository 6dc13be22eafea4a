"""What a GPU cell really has: registered GPUs, the framework's build, and the CUDA and cuDNN libraries loaded.

Versions come from the libraries themselves (their own version functions, at
the paths mapped into this process), never from image tags.
"""

import ctypes
import os


def loaded_library(name):
    """The path of a shared library this process has mapped, e.g. libcudnn.so.9: what was loaded, not what was asked for."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                if os.path.basename(path).startswith(name + ".so"):
                    return path
    except OSError:
        pass
    return None


def library_version(path, function):
    """An int from a C function of the library at path that writes or returns its version."""
    try:
        library = ctypes.CDLL(path)
    except OSError:
        return None
    if function == "cudnnGetVersion":
        library.cudnnGetVersion.restype = ctypes.c_size_t
        return int(library.cudnnGetVersion())
    value = ctypes.c_int()
    return value.value if getattr(library, function)(ctypes.byref(value)) == 0 else None


def cudnn_text(version):
    # cuDNN 9 encodes major*10000 + minor*100 + patch; cuDNN 8 and older major*1000 + minor*100 + patch.
    major, rest = (version // 10000, version % 10000) if version >= 90000 else (version // 1000, version % 1000)
    return f"{major}.{rest // 100}.{rest % 100}"


def cuda_text(version):
    return f"{version // 1000}.{version % 1000 // 10}"


def nvidia_driver():
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
        if nvml.nvmlInit_v2() != 0:
            return None
        buffer = ctypes.create_string_buffer(96)
        return buffer.value.decode() if nvml.nvmlSystemGetDriverVersion(buffer, 96) == 0 else None
    except (OSError, AttributeError):
        return None


def gpu_facts(registered, built_with):
    """What this process really has: the GPUs the framework registered, what it was built with, and the CUDA/cuDNN libraries loaded."""
    facts = {"registered": registered, "built_with": built_with, "driver": nvidia_driver()}
    cudart = loaded_library("libcudart")
    facts["cuda_runtime"] = {"path": cudart, "version": cuda_text(v) if cudart and (v := library_version(cudart, "cudaRuntimeGetVersion")) else None}
    driver_cuda = library_version("libcuda.so.1", "cuDriverGetVersion") if loaded_library("libcuda") else None
    facts["driver_cuda"] = cuda_text(driver_cuda) if driver_cuda else None
    cudnn = loaded_library("libcudnn")
    facts["cudnn"] = {"path": cudnn, "version": cudnn_text(v) if cudnn and (v := library_version(cudnn, "cudnnGetVersion")) else None}
    return facts


def gpu_failure(expect_cudnn, facts, framework):
    """The reason a GPU cell's numbers must not be trusted, or None."""
    if not facts["registered"]:
        return f"expected a GPU, {framework} registered none"
    if expect_cudnn:
        loaded = facts["cudnn"]["version"]
        if loaded is None:
            return f"expected cuDNN {expect_cudnn}, but no cuDNN library was loaded"
        if ".".join(loaded.split(".")[:2]) != expect_cudnn:
            return f"expected cuDNN {expect_cudnn}, loaded {loaded} from {facts['cudnn']['path']}"
    return None
