"""The image tag is a hash of every input: unchanged inputs give the same tag, any change a new one."""

import dataclasses
from pathlib import Path

from runner.cells import expand
from runner.compatibility import load_table
from runner.config import load_matrix
from runner.executors.docker_images import content_hash, context_files

REPO = Path(__file__).resolve().parent.parent


def cpu_spec_and_settings(tmp_path, certificates="[]"):
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(f'workloads: {{dogs-vs-cats: {{}}}}\ncpu: {{tensorflow: ["2.21"]}}\nbuild: {{ca_certificates: {certificates}}}\n')
    loaded = load_matrix(matrix)
    return expand(loaded, load_table())[0].environment, loaded.build


def test_context_holds_the_kinds_dockerfile_the_workload_the_spec_and_the_certificates(tmp_path):
    certificate = (REPO / "tests" / "fixtures" / "test-ca.pem").read_bytes()  # only real certificates pass config
    (tmp_path / "proxy.pem").write_bytes(certificate)
    spec, settings = cpu_spec_and_settings(tmp_path, "[proxy.pem]")
    files = context_files(spec, settings)
    assert files["Dockerfile"] == (REPO / "docker" / "Dockerfile.cpu").read_bytes()
    assert files["workload/benchmark.py"] == (REPO / "workload" / "benchmark.py").read_bytes()
    assert files["workload/contract.py"] == (REPO / "workload" / "contract.py").read_bytes()
    assert files["requirements.txt"] == b"tensorflow==2.21.*\npillow>=10\n"
    assert files["libraries.txt"] == b""
    assert files["variables.json"] == b'{"KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "1"}'
    assert files["certs/00-proxy.crt"] == certificate


def test_same_inputs_same_tag_and_every_input_changes_it(tmp_path):
    spec, settings = cpu_spec_and_settings(tmp_path)
    files = context_files(spec, settings)
    args = {"BASE_IMAGE": "python:3.11-slim"}
    tag = content_hash(files, args, "sha256:base")
    assert tag == content_hash(dict(files), dict(args), "sha256:base")
    assert len(tag) == 16

    changed_script = dict(files, **{"workload/benchmark.py": files["workload/benchmark.py"] + b"\n"})
    changed_version = context_files(dataclasses.replace(spec, requirements=("tensorflow==2.20.*",)), settings)
    changed_library = context_files(dataclasses.replace(spec, libraries=("nvidia-cudnn-cu12==9.3.0.75",)), settings)
    changed_variables = context_files(dataclasses.replace(spec, variables=(("KERAS_BACKEND", "jax"),)), settings)
    assert content_hash(changed_script, args, "sha256:base") != tag
    for changed in (changed_version, changed_library, changed_variables):
        assert content_hash(changed, args, "sha256:base") != tag
    assert content_hash(files, {"BASE_IMAGE": "cudnn-matrix/base:x"}, "sha256:base") != tag
    assert content_hash(files, args, "sha256:other-base") != tag
    assert content_hash(dict(files, **{"certs/00-new.crt": b"x"}), args, "sha256:base") != tag
