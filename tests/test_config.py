"""matrix.yaml -> Matrix: defaults on a valid file, one precise line for every broken one."""

import os
import re
import threading
from pathlib import Path

import pytest

from runner import certificates
from runner.config import DEFAULT_CPU_BASE, BuildSettings, CpuImages, Matrix, load_matrix
from runner.workloads import Workload
from runner.errors import UserError
from runner.yaml_reader import MAX_MATRIX_BYTES

REPO = Path(__file__).resolve().parent.parent
TEST_CA = REPO / "tests" / "fixtures" / "test-ca.pem"  # a self-signed certificate, valid until 2126

MINIMAL = 'workloads:\n  dogs-vs-cats:\ncpu:\n  tensorflow: ["2.21"]\nbuild:\n  ca_certificates: []\n'


def write(folder: Path, text: str, name: str = "matrix.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


# --- valid files ---------------------------------------------------------------------------


def test_minimal_file_loads_with_the_documented_defaults(tmp_path, monkeypatch):
    path = write(tmp_path / "project", MINIMAL)
    monkeypatch.chdir(tmp_path)  # not the matrix file's folder: data must not resolve against cwd

    matrix = load_matrix(path)

    assert isinstance(matrix, Matrix)
    assert matrix.path == path
    assert len(matrix.workloads) == 1
    workload = matrix.workloads[0]
    assert isinstance(workload, Workload)
    assert workload.name == "dogs-vs-cats"
    assert (workload.epochs, workload.warmup_epochs, workload.batch_size) == (3, 1, 32)
    assert (workload.train_images, workload.validation_images) == (2000, 800)
    assert workload.data_dir == (tmp_path / "project" / "data").resolve()
    assert workload.jit_compile == "auto"
    assert (workload.intra_op_threads, workload.inter_op_threads) == (0, 0)
    assert matrix.cpu == CpuImages(base_image=DEFAULT_CPU_BASE, frameworks=(("tensorflow", ("2.21",)),), keras=None)
    assert (workload.precision, workload.cudnn, workload.conv_autotune, workload.loader) == ("fp32", True, "default", "auto")
    assert workload.kernel_time == "auto"  # GPU cells are profiled
    assert matrix.repeats == 5
    assert DEFAULT_CPU_BASE == "python:3.11-slim"
    assert matrix.gpu is None
    assert matrix.build == BuildSettings(offline_base=False, ca_certificates=(), debian_mirror="http://deb.debian.org/debian")


def test_keras_applications_default_to_the_published_tables_shapes_on_cached_synthetic_images(tmp_path):
    path = write(tmp_path, 'workloads:\n  resnet50: {}\n  small: {model: efficientnet-b0, image_size: 64, classes: 10, data_format: channels_first}\n'
                           'cpu: {tensorflow: ["2.21"]}\n')
    resnet50, small = load_matrix(path).workloads
    assert (resnet50.batch_size, resnet50.train_images, resnet50.validation_images) == (64, 1280, 256)
    assert (resnet50.image_size, resnet50.classes, resnet50.data_format, resnet50.pipeline.input) == (224, 1000, "channels_last", "cached")
    assert (small.model, small.image_size, small.classes, small.data_format) == ("efficientnet-b0", 64, 10, "channels_first")


@pytest.mark.parametrize("settings, expected", [
    ("{model: mnist, image_size: 64}", "workloads.w.image_size: expected no image_size: mnist's shapes are the seed's (set it for resnet50, "),
    ("{model: dogs-vs-cats, classes: 5}", "workloads.w.classes: expected no classes: dogs-vs-cats's shapes are the seed's"),
    ("{model: resnet50, data: photos}", "workloads.w.data: expected no data folder: resnet50 trains on synthetic images made in memory, got the text 'photos'"),
    ("{model: resnet50, input: jpeg}", "workloads.w.input: expected cached: resnet50's synthetic images are made in memory, with no JPEGs to decode"),
    ("{model: resnet50, image_size: 16}", "workloads.w.image_size: expected a whole number from 32 to 1024, got the number 16"),
    ("{model: mobilenet-v2, data_format: nchw}", "workloads.w.data_format: expected one of channels_last, channels_first, got the text 'nchw'"),
])
def test_shape_settings_belong_to_keras_applications_and_their_images_are_made_in_memory(tmp_path, settings, expected):
    path = write(tmp_path, f'workloads:\n  w: {settings}\ncpu: {{tensorflow: ["2.21"]}}\n')
    with pytest.raises(UserError, match=re.escape(f"{path}:2: {expected}")):
        load_matrix(path)


def test_relative_matrix_path_resolves_data_against_the_files_folder(tmp_path, monkeypatch):
    write(tmp_path / "conf", MINIMAL.replace("dogs-vs-cats:\n", "dogs-vs-cats:\n    data: ../images\n"))
    monkeypatch.chdir(tmp_path)

    matrix = load_matrix(Path("conf/matrix.yaml"))

    assert matrix.workloads[0].data_dir == (tmp_path / "images").resolve()
    assert matrix.workloads[0].data_dir.is_absolute()


def test_every_setting_given_is_kept(tmp_path):
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "proxy.pem").write_bytes(TEST_CA.read_bytes())
    path = write(
        tmp_path,
        "workloads:\n"
        "  dogs-vs-cats:\n"
        "    epochs: 6\n"
        "    warmup_epochs: 2\n"
        "    batch_size: 16\n"
        "    train_images: 200\n"
        "    validation_images: 80\n"
        "    data: /srv/cats\n"
        "    jit_compile: true\n"
        "    conv_autotune: off\n"
        "    kernel_time: true\n"
        "    intra_op_threads: 4\n"
        "    inter_op_threads: 2\n"
        "cpu:\n"
        "  base_image: registry.example.com/python:3.12-slim\n"
        '  tensorflow: ["2.20", "2.21"]\n'
        '  keras: "3.12"\n'
        "gpu:\n"
        '  cuda: ["12.5"]\n'
        '  cudnn: ["9.3", "8.9"]\n'
        '  tensorflow: ["2.21"]\n'
        "  devices: [0, 1]\n"
        "  exclude:\n"
        '    - {cudnn: "8.9"}\n'
        "  include:\n"
        '    - {cudnn: "9.3", keras: "3.11"}\n'
        "build:\n"
        "  offline_base: true\n"
        "  ca_certificates: [certs/proxy.pem]\n"
        "  debian_mirror: http://mirror.example/debian\n",
    )

    matrix = load_matrix(path)

    workload = matrix.workloads[0]
    assert (workload.epochs, workload.warmup_epochs, workload.batch_size) == (6, 2, 16)
    assert (workload.train_images, workload.validation_images) == (200, 80)
    assert workload.data_dir == Path("/srv/cats")
    assert (workload.jit_compile, workload.conv_autotune, workload.kernel_time) == ("on", "off", "on")
    assert (workload.intra_op_threads, workload.inter_op_threads) == (4, 2)
    assert matrix.cpu == CpuImages("registry.example.com/python:3.12-slim", (("tensorflow", ("2.20", "2.21")),), "3.12")
    assert matrix.gpu.cuda == ("12.5",)
    assert matrix.gpu.cudnn == ("9.3", "8.9")
    assert matrix.gpu.devices == "0,1"
    assert matrix.gpu.exclude == ((("cudnn", "8.9"),),)
    assert matrix.gpu.include == ((("cudnn", "9.3"), ("keras", "3.11")),)
    assert matrix.gpu.keras is None
    assert matrix.build == BuildSettings(True, ((tmp_path / "certs" / "proxy.pem").resolve(),), "http://mirror.example/debian")


def test_the_repositorys_matrix_file_loads():
    matrix = load_matrix(REPO / "matrix.yaml")

    assert [w.name for w in matrix.workloads] == ["dogs-vs-cats", "dogs-vs-cats-cached", "mnist"]
    assert [w.model for w in matrix.workloads] == ["dogs-vs-cats", "dogs-vs-cats", "mnist"]
    assert matrix.workloads[1].pipeline.input == "cached"
    assert matrix.workloads[0].epochs == 4
    assert matrix.workloads[0].data_dir == (REPO / "data").resolve()
    assert matrix.cpu.frameworks == (("tensorflow", ("2.21",)),)
    assert (matrix.gpu.cuda, matrix.gpu.cudnn, matrix.gpu.frameworks) == (("12.6", "12.8"), ("9.3", "9.5", "9.8"), (("tensorflow", ("2.21",)),))


# --- broken files --------------------------------------------------------------------------

# (id, file text, line the message must name or None, substrings the message must contain)
BROKEN = [
    (
        "unquoted-float-version",
        "workloads: {dogs-vs-cats: {}}\ncpu:\n  tensorflow: [2.10]\n",
        3,
        ["cpu.tensorflow[0]", "in quotes", "got the number 2.1"],
    ),
    (
        "unknown-key-close-match",
        'workloads:\n  dogs-vs-cats:\n    epoch: 3\ncpu: {tensorflow: ["2.21"]}\n',
        3,
        ["workloads.dogs-vs-cats.epoch:", "did you mean 'epochs'", "unknown key 'epoch'"],
    ),
    (
        "unknown-top-level-key",
        'workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.21"]}\ntimeout: 5\n',
        3,
        ["timeout:", "expected one of build, cpu, gpu, ", "unknown key 'timeout'"],
    ),
    (
        "misspelt-top-level-key",
        'wrokloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.21"]}\n',
        1,
        ["wrokloads:", "did you mean 'workloads'"],
    ),
    (
        "epochs-wrong-type",
        'workloads:\n  dogs-vs-cats:\n    epochs: "three"\ncpu: {tensorflow: ["2.21"]}\n',
        3,
        ["workloads.dogs-vs-cats.epochs:", "expected a whole number from 2 to 1000", "got the text 'three'"],
    ),
    (
        "batch-size-boolean",
        'workloads:\n  dogs-vs-cats:\n    batch_size: yes\ncpu: {tensorflow: ["2.21"]}\n',
        3,
        ["workloads.dogs-vs-cats.batch_size:", "whole number", "got the boolean true"],
    ),
    (
        "epochs-not-above-warmup",
        'workloads:\n  dogs-vs-cats:\n    warmup_epochs: 2\n    epochs: 2\ncpu: {tensorflow: ["2.21"]}\n',
        4,
        ["workloads.dogs-vs-cats.epochs:", "more epochs than warmup_epochs (2)", "got the number 2"],
    ),
    (
        "odd-train-images",
        'workloads:\n  dogs-vs-cats:\n    train_images: 1001\ncpu: {tensorflow: ["2.21"]}\n',
        3,
        ["workloads.dogs-vs-cats.train_images:", "even number", "got the number 1001"],
    ),
    (
        "empty-tensorflow-list",
        "workloads: {dogs-vs-cats: {}}\ncpu:\n  tensorflow: []\n",
        3,
        ["cpu.tensorflow:", "non-empty list", "got a list"],
    ),
    (
        "tensorflow-not-a-list",
        'workloads: {dogs-vs-cats: {}}\ncpu:\n  tensorflow: "2.21"\n',
        3,
        ["cpu.tensorflow:", "non-empty list", "got the text '2.21'"],
    ),
    (
        "duplicate-version",
        'workloads: {dogs-vs-cats: {}}\ncpu:\n  tensorflow:\n    - "2.21"\n    - "2.20"\n    - "2.21"\n',
        6,
        ["cpu.tensorflow[2]:", "each version once", "'2.21' a second time"],
    ),
    (
        "duplicate-top-level-key",
        'cpu: {tensorflow: ["2.21"]}\nworkloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.20"]}\n',
        3,
        ["cpu: given twice"],
    ),
    (
        "duplicate-nested-key",
        'workloads:\n  dogs-vs-cats:\n    epochs: 4\n    epochs: 5\ncpu: {tensorflow: ["2.21"]}\n',
        4,
        ["workloads.dogs-vs-cats.epochs: given twice"],
    ),
    (
        "invalid-yaml-indentation",
        'workloads:\n  dogs-vs-cats: {}\n cpu: {tensorflow: ["2.21"]}\n',
        3,
        ["not valid YAML"],
    ),
    (
        "invalid-yaml-tab",
        "workloads:\n\tdogs-vs-cats: {}\n",
        2,
        ["not valid YAML", "'\\t'"],
    ),
    (
        "top-level-list",
        "- workloads\n- cpu\n",
        1,
        ["(top level):", "expected a mapping", "got a list"],
    ),
    (
        "top-level-scalar",
        "hello\n",
        1,
        ["(top level):", "expected a mapping", "got the text 'hello'"],
    ),
    (
        "empty-file",
        "",
        None,
        ["(top level):", "expected a mapping", "got nothing"],
    ),
    (
        "comments-only",
        "# nothing here yet\n",
        None,
        ["(top level):", "expected a mapping", "got nothing"],
    ),
    (
        "unknown-workload",
        'workloads:\n  cifar: {}\ncpu: {tensorflow: ["2.21"]}\n',
        2,
        ["workloads.cifar:", "a known model (dogs-vs-cats, mnist, resnet50, mobilenet-v2, efficientnet-b0) as the name, or a model: key", "got 'cifar'"],
    ),
    (
        "unknown-model",
        'workloads:\n  small:\n    model: resnet\ncpu: {tensorflow: ["2.21"]}\n',
        3,
        ["workloads.small.model:", "a known model (dogs-vs-cats, mnist, resnet50, mobilenet-v2, efficientnet-b0)", "got the text 'resnet'"],
    ),
    (
        "bad-workload-name",
        'workloads:\n  "Dogs vs Cats": {}\ncpu: {tensorflow: ["2.21"]}\n',
        2,
        ["a workload name of lowercase letters, digits and dashes"],
    ),
    (
        "no-workloads",
        'workloads: {}\ncpu: {tensorflow: ["2.21"]}\n',
        1,
        ["workloads:", "a mapping of workload names (such as dogs-vs-cats, mnist, resnet50"],
    ),
    (
        "missing-cpu-section",
        "workloads:\n  dogs-vs-cats: {}\n",
        None,
        ["cpu:", "at least one kind of image (cpu or gpu)"],
    ),
    (
        "versions-of-a-backend-not-chosen",
        'workloads: {dogs-vs-cats: {}}\ncpu:\n  backend: [torch]\n  tensorflow: ["2.21"]\n',
        4,
        ["cpu.tensorflow:", "expected tensorflow in cpu.backend, since its versions are listed", "got backend ['torch']"],
    ),
    (
        "unknown-backend",
        "workloads: {dogs-vs-cats: {}}\ncpu:\n  backend: [tensorflow, mxnet]\n",
        3,
        ["cpu.backend:", "a list of Keras backends, each once, from tensorflow, torch, jax"],
    ),
    (
        "unknown-precision",
        "workloads: {dogs-vs-cats: {precision: fp8}}\ncpu:\n  backend: [torch]\n",
        1,
        ["workloads.dogs-vs-cats.precision:", "one of fp32, tf32, bf16, fp16", "got the text 'fp8'"],
    ),
    (
        "unknown-jit-compile",
        "workloads: {dogs-vs-cats: {jit_compile: xla}}\ncpu:\n  backend: [jax]\n",
        1,
        ["workloads.dogs-vs-cats.jit_compile:", "auto, true or false", "got the text 'xla'"],
    ),
    (
        "unknown-conv-autotune",
        "workloads: {dogs-vs-cats: {conv_autotune: heuristic}}\ncpu:\n  backend: [torch]\n",
        1,
        ["workloads.dogs-vs-cats.conv_autotune:", "default, true or false", "got the text 'heuristic'"],
    ),
    (
        "unknown-kernel-time",
        "workloads: {dogs-vs-cats: {kernel_time: always}}\ncpu:\n  backend: [torch]\n",
        1,
        ["workloads.dogs-vs-cats.kernel_time:", "auto, true or false", "got the text 'always'"],
    ),
    (
        "bad-base-image",
        'workloads: {dogs-vs-cats: {}}\ncpu:\n  base_image: "not an image!"\n  tensorflow: ["2.21"]\n',
        3,
        ["cpu.base_image:", "an image reference such as python:3.11-slim", "got the text 'not an image!'"],
    ),
    (
        "missing-ca-certificate",
        'workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.21"]}\nbuild:\n  ca_certificates: [missing.pem]\n',
        4,
        ["build.ca_certificates[0]:", "a readable PEM certificate file", "missing.pem (cannot read it: No such file or directory)"],
    ),
    (
        "ca-certificates-wrong-word",
        'workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.21"]}\nbuild:\n  ca_certificates: system\n',
        4,
        ["build.ca_certificates:", '"host" or a list of PEM certificate files'],
    ),
    (
        "offline-base-not-boolean",
        'workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.21"]}\nbuild:\n  offline_base: "maybe"\n',
        4,
        ["build.offline_base:", "true or false", "got the text 'maybe'"],
    ),
    (
        "bad-debian-mirror",
        'workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.21"]}\nbuild:\n  debian_mirror: deb.debian.org\n',
        4,
        ["build.debian_mirror:", "URL of a Debian mirror"],
    ),
    (
        "gpu-bad-devices",
        'workloads: {dogs-vs-cats: {}}\ngpu:\n  cuda: ["12.5"]\n  cudnn: ["9.3"]\n  tensorflow: ["2.21"]\n  devices: first\n',
        6,
        ["gpu.devices:", "all, none, or GPU indices", "got the text 'first'"],
    ),
    (
        "gpu-empty-include-entry",
        'workloads: {dogs-vs-cats: {}}\ngpu:\n  cuda: ["12.5"]\n  cudnn: ["9.3"]\n  tensorflow: ["2.21"]\n  include:\n    - {}\n',
        7,
        ["gpu.include[0]:", "at least one of cuda, cudnn, tensorflow, torch, jax, keras"],
    ),
    # Hostile input: none of these may escape as a traceback.
    (
        "non-scalar-key",
        'workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.21"]}\n? [a, b]\n: 1\n',
        3,
        ["(top level): expected keys that are plain names, got a sequence"],
    ),
    (
        "number-as-key",
        'workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.21"]}\n1: x\n',
        3,
        ["expected keys that are plain names, got '1'"],
    ),
    (
        "self-referencing-alias",
        'workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.21"]}\nbuild: &x [*x]\n',
        3,
        ["anchors and aliases", "are not allowed"],
    ),
    (
        "alias-bomb",
        'a: &a ["x", "x"]\nb: &b [*a, *a]\nc: &c [*b, *b]\nd: [*c, *c]\n',
        1,
        ["anchors and aliases (&a, *a) are not allowed"],
    ),
    (
        "explicit-tag",
        'workloads: {dogs-vs-cats: {epochs: !!int abc}}\ncpu: {tensorflow: ["2.21"]}\n',
        1,
        ["YAML tags such as !!int are not allowed"],
    ),
    (
        "python-tag",
        'workloads: !!python/object/apply:os.system ["true"]\n',
        1,
        ["YAML tags such as !!python/object/apply:os.system are not allowed"],
    ),
    (
        "nul-character",
        'workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.21"]}\n# \x00\n',
        3,
        ["not valid YAML: the character U+0000 is not allowed"],
    ),
    (
        "escape-character",
        'workloads: {dogs-vs-cats: {}}\n\x1b[2Jcpu: {tensorflow: ["2.21"]}\n',
        2,
        ["not valid YAML: the character U+001B is not allowed"],
    ),
    (
        "nesting-deeper-than-a-matrix",
        "workloads:\n  dogs-vs-cats: " + "[" * 30 + "]" * 30 + "\n",
        2,
        ["nested more than 20 levels deep"],
    ),
    # $ matches before a final newline: every pattern must match the whole value.
    (
        "version-with-trailing-newline",
        'workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.21\\n"]}\n',
        2,
        ["cpu.tensorflow[0]:", "a version in quotes", "got the text '2.21\\n'"],
    ),
    (
        "keras-version-with-trailing-newline",
        'workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.21"], keras: "3.12\\n"}\n',
        2,
        ["cpu.keras:", "got the text '3.12\\n'"],
    ),
    (
        "image-reference-with-trailing-newline",
        'workloads: {dogs-vs-cats: {}}\ncpu:\n  base_image: "python:3.11-slim\\n"\n  tensorflow: ["2.21"]\n',
        3,
        ["cpu.base_image:", "an image reference"],
    ),
    (
        "workload-name-with-trailing-newline",
        'workloads: {"small\\n": {model: mnist}}\ncpu: {tensorflow: ["2.21"]}\n',
        1,
        ["workloads.'small\\n':", "a workload name of lowercase letters, digits and dashes"],
    ),
    (
        "unknown-key-with-a-newline",
        'workloads: {dogs-vs-cats: {"epochs\\n": 3}}\ncpu: {tensorflow: ["2.21"]}\n',
        1,
        ["workloads.dogs-vs-cats.'epochs\\n':", "unknown key 'epochs\\n'"],
    ),
    (
        "devices-with-trailing-newline",
        'workloads: {dogs-vs-cats: {}}\ngpu: {cuda: ["12.5"], cudnn: ["9.3"], tensorflow: ["2.21"], devices: "0\\n"}\n',
        2,
        ["gpu.devices:", "all, none, or GPU indices"],
    ),
    (
        "memory-with-trailing-newline",
        'workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.21"]}\nlimits: {memory: "16g\\n"}\n',
        3,
        ["limits.memory:", "a size such as"],
    ),
    (
        "mirror-with-trailing-newline",
        'workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.21"]}\nbuild: {debian_mirror: "http://deb.debian.org/debian\\n"}\n',
        3,
        ["build.debian_mirror:", "URL of a Debian mirror"],
    ),
    (
        "data-with-nul",
        'workloads: {dogs-vs-cats: {data: "data\\0x"}}\ncpu: {tensorflow: ["2.21"]}\n',
        1,
        ["workloads.dogs-vs-cats.data:", "a folder path without control characters"],
    ),
    (
        "infinite-timeout",
        'workloads:\n  dogs-vs-cats:\n    timeout_minutes: .inf\ncpu: {tensorflow: ["2.21"]}\n',
        3,
        ["timeout_minutes:", "above 0 and at most 10080", "got the number inf"],
    ),
    (
        "nan-timeout",
        'workloads:\n  dogs-vs-cats:\n    timeout_minutes: .nan\ncpu: {tensorflow: ["2.21"]}\n',
        3,
        ["timeout_minutes:", "above 0 and at most 10080", "got the number nan"],
    ),
    # Upper bounds: a few zeros too many is refused before anything runs.
    (
        "too-many-epochs",
        'workloads:\n  dogs-vs-cats:\n    epochs: 1000000\ncpu: {tensorflow: ["2.21"]}\n',
        3,
        ["workloads.dogs-vs-cats.epochs:", "a whole number from 2 to 1000", "got the number 1000000"],
    ),
    (
        "too-many-train-images",
        'workloads:\n  mnist:\n    train_images: 6000000\ncpu: {tensorflow: ["2.21"]}\n',
        3,
        ["workloads.mnist.train_images:", "from 2 to 100000"],
    ),
    (
        "too-many-validation-images",
        'workloads:\n  mnist:\n    validation_images: 100002\ncpu: {tensorflow: ["2.21"]}\n',
        3,
        ["workloads.mnist.validation_images:", "from 2 to 100000"],
    ),
    (
        "batch-too-large",
        'workloads:\n  mnist:\n    batch_size: 1000000\ncpu: {tensorflow: ["2.21"]}\n',
        3,
        ["workloads.mnist.batch_size:", "from 1 to 4096"],
    ),
    (
        "too-many-threads",
        'workloads:\n  mnist:\n    intra_op_threads: 99999\ncpu: {tensorflow: ["2.21"]}\n',
        3,
        ["workloads.mnist.intra_op_threads:", "from 0 to 1024"],
    ),
    (
        "too-many-parallel-calls",
        'workloads:\n  mnist:\n    parallel_calls: 99999\ncpu: {tensorflow: ["2.21"]}\n',
        3,
        ["workloads.mnist.parallel_calls:", "from 1 to 1024"],
    ),
    (
        "too-many-prefetch-batches",
        'workloads:\n  mnist:\n    prefetch_batches: 99999\ncpu: {tensorflow: ["2.21"]}\n',
        3,
        ["workloads.mnist.prefetch_batches:", "from 1 to 1024"],
    ),
    # Container limits the engine would refuse only when the first container starts.
    (
        "memory-below-docker-minimum",
        'workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.21"]}\nlimits:\n  memory: "5m"\n',
        4,
        ["limits.memory:", "from 6m (Docker's least) to 1024g", "got the text '5m'"],
    ),
    (
        "memory-in-kilobytes-below-docker-minimum",
        'workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.21"]}\nlimits:\n  memory: "6000k"\n',
        4,
        ["limits.memory:", "from 6m"],
    ),
    (
        "memory-beyond-any-host",
        'workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.21"]}\nlimits:\n  memory: "99999999g"\n',
        4,
        ["limits.memory:", "to 1024g"],
    ),
    (
        "pids-beyond-the-kernel",
        'workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.21"]}\nlimits:\n  pids: 5000000\n',
        4,
        ["limits.pids:", "a whole number from 64 to 65536", "got the number 5000000"],
    ),
]


@pytest.mark.parametrize("text, line, expected", [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
def test_broken_file_gives_one_precise_line(tmp_path, text, line, expected):
    path = write(tmp_path, text, "broken-matrix.yaml")

    with pytest.raises(UserError) as caught:
        load_matrix(path)

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:")
    if line is None:
        assert not re.match(re.escape(str(path)) + r":\d+:", message), message
    else:
        assert message.startswith(f"{path}:{line}: "), message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert caught.value.exit_code == 2


def test_unknown_key_without_a_close_match_suggests_nothing(tmp_path):
    path = write(tmp_path, 'workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.21"]}\ntimeout: 5\n')

    with pytest.raises(UserError) as caught:
        load_matrix(path)

    assert "did you mean" not in str(caught.value)


def test_missing_file_is_a_user_error_naming_it(tmp_path):
    path = tmp_path / "nowhere" / "matrix.yaml"

    with pytest.raises(UserError) as caught:
        load_matrix(path)

    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert "cannot read the matrix file" in message
    assert "No such file or directory" in message
    assert "\n" not in message


def test_file_that_is_not_utf8_is_a_user_error(tmp_path):
    path = tmp_path / "matrix.yaml"
    path.write_bytes(b"workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: [\"2.21\"]}\n# caf\xe9\n")

    with pytest.raises(UserError) as caught:
        load_matrix(path)

    assert str(caught.value).startswith(f"{path}: cannot read the matrix file")
    assert "\n" not in str(caught.value)


def test_a_huge_file_is_refused_before_parsing(tmp_path):
    path = write(tmp_path, "# padding\n" * 200_000)
    with pytest.raises(UserError, match=r"bytes; a matrix file is expected to be under"):
        load_matrix(path)


def write_until_closed(fifo: Path, cap: int) -> int:
    """Write into a named pipe until its reader closes it (or cap bytes); returns the bytes written."""
    written, chunk = 0, b"#" * 65536
    descriptor = os.open(fifo, os.O_WRONLY)
    try:
        while written < cap:
            written += os.write(descriptor, chunk)
    except BrokenPipeError:
        pass
    finally:
        os.close(descriptor)
    return written


def test_a_matrix_is_read_no_further_than_the_limit(tmp_path):
    """A pipe that goes on and on (-f <(yes '#')) is refused after the limit, not read to its end first."""
    fifo = tmp_path / "matrix.yaml"
    os.mkfifo(fifo)
    written = []
    writer = threading.Thread(target=lambda: written.append(write_until_closed(fifo, 64 * MAX_MATRIX_BYTES)), daemon=True)
    writer.start()

    with pytest.raises(UserError, match=f"^{re.escape(str(fifo))}: over {MAX_MATRIX_BYTES} bytes"):
        load_matrix(fifo)

    writer.join(timeout=10)
    assert written[0] < 2 * MAX_MATRIX_BYTES


def test_nesting_far_deeper_than_a_matrix_is_one_line(tmp_path):
    """PyYAML's parser recurses once per level: 100000 levels would end in a RecursionError."""
    path = write(tmp_path, "workloads: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert path.stat().st_size < MAX_MATRIX_BYTES

    with pytest.raises(UserError) as caught:
        load_matrix(path)

    assert str(caught.value) == f"{path}:1: nested more than 20 levels deep; a matrix nests 4"


# --- CA certificates: each file is copied into every image ------------------------------------

BASE64_BUT_NOT_X509 = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"


def certificates_matrix(folder: Path, *files: str) -> Path:
    return write(folder, 'workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.21"]}\nbuild:\n'
                         f"  ca_certificates: [{', '.join(files)}]\n")


def test_a_bundle_of_certificates_with_text_around_them_is_kept(tmp_path):
    certificate = TEST_CA.read_text()
    (tmp_path / "bundle.crt").write_text(f"Subject: the proxy's CA\n{certificate}\n# and again\n{certificate}")

    matrix = load_matrix(certificates_matrix(tmp_path, "bundle.crt"))

    assert matrix.build.ca_certificates == ((tmp_path / "bundle.crt").resolve(),)


@pytest.mark.parametrize(
    "content, reason",
    [
        ("root:$6$salt$hash:19000:0:99999:7:::\n", "no -----BEGIN CERTIFICATE----- block"),
        (BASE64_BUT_NOT_X509, "a CERTIFICATE block that is not an X.509 certificate"),
        ("-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n", "a CERTIFICATE block whose body is not base64"),
        ("-----BEGIN CERTIFICATE-----\nMIIBlTCCATugAwIBAgIU\n", "a -----BEGIN CERTIFICATE----- block without its END line"),
        ("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n-----END PRIVATE KEY-----\n", "holds a PRIVATE KEY block, and only certificates may go into images"),
        ("#" * (1024 * 1024 + 1), "cannot read it: over 1048576 bytes"),
    ],
    ids=["shadow-like", "base64-not-x509", "not-base64", "no-end-line", "private-key", "over-1-mib"],
)
def test_a_ca_certificate_file_that_is_not_a_certificate_is_refused(tmp_path, content, reason):
    (tmp_path / "proxy.crt").write_text(content)
    path = certificates_matrix(tmp_path, "proxy.crt")

    with pytest.raises(UserError) as caught:
        load_matrix(path)

    assert str(caught.value) == (f"{path}:4: build.ca_certificates[0]: expected a readable PEM certificate file, "
                                 f"got {(tmp_path / 'proxy.crt').resolve()} ({reason})")


def test_a_certificate_next_to_a_private_key_is_refused(tmp_path):
    (tmp_path / "proxy.crt").write_text(TEST_CA.read_text() + "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n")

    with pytest.raises(UserError, match=r"holds a EC PRIVATE KEY block"):
        load_matrix(certificates_matrix(tmp_path, "proxy.crt"))


@pytest.mark.parametrize("target, reason", [("/proc/self/environ", "no -----BEGIN CERTIFICATE----- block"),
                                            (".", "cannot read it: not a regular file")])
def test_secrets_and_folders_are_not_certificates(tmp_path, target, reason):
    path = certificates_matrix(tmp_path, target)

    with pytest.raises(UserError) as caught:
        load_matrix(path)

    assert str(caught.value).startswith(f"{path}:4: build.ca_certificates[0]: expected a readable PEM certificate file, got ")
    assert str(caught.value).endswith(f" ({reason})")


def test_the_hosts_certificates_are_checked_too(tmp_path, monkeypatch):
    monkeypatch.setattr(certificates, "DEFAULT_CA_CERTIFICATES", str(tmp_path / "ca-certificates" / "**" / "*.crt"))
    (tmp_path / "ca-certificates" / "proxy").mkdir(parents=True)
    (tmp_path / "ca-certificates" / "proxy" / "good.crt").write_bytes(TEST_CA.read_bytes())
    (tmp_path / "ca-certificates" / "notes.crt").write_text("ask IT for the proxy's CA\n")
    path = write(tmp_path, 'workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.21"]}\n')

    with pytest.raises(UserError) as caught:
        load_matrix(path)

    assert str(caught.value) == (f"{path}: build.ca_certificates: expected only PEM certificates in "
                                 f'{tmp_path}/ca-certificates/**/*.crt (what "host" trusts), '
                                 f"got {tmp_path}/ca-certificates/notes.crt (no -----BEGIN CERTIFICATE----- block)")
    (tmp_path / "ca-certificates" / "notes.crt").unlink()
    assert load_matrix(path).build.ca_certificates == (tmp_path / "ca-certificates" / "proxy" / "good.crt",)


def test_placement_is_spread_unless_same_node_and_anything_else_is_one_line(tmp_path):
    path = tmp_path / "matrix.yaml"
    path.write_text('workloads: {mnist: {model: mnist, epochs: 2}}\ncpu: {tensorflow: ["2.21"]}\n')
    assert load_matrix(path).placement == "spread"
    path.write_text(path.read_text() + "placement: same-node\n")
    assert load_matrix(path).placement == "same-node"
    path.write_text(path.read_text().replace("same-node", "[same-node]"))
    with pytest.raises(UserError, match=r"matrix.yaml:3: placement: expected spread or same-node, got a list"):
        load_matrix(path)
