"""The image tag is a hash of every input: unchanged inputs give the same tag, any change a new one."""

from pathlib import Path

from runner.cells import expand
from runner.compatibility import load_table
from runner.config import load_matrix
from runner.images import content_hash, context_files

REPO = Path(__file__).resolve().parent.parent


def cpu_spec_and_settings(tmp_path, certificates="[]"):
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(f'workloads: {{dogs-vs-cats: {{}}}}\ncpu: {{tensorflow: ["2.21"]}}\nbuild: {{ca_certificates: {certificates}}}\n')
    loaded = load_matrix(matrix)
    return expand(loaded, load_table())[0].image, loaded.build


def test_context_holds_the_kinds_dockerfile_the_workload_and_the_certificates(tmp_path):
    certificate = (REPO / "tests" / "fixtures" / "test-ca.pem").read_bytes()  # only real certificates pass config
    (tmp_path / "proxy.pem").write_bytes(certificate)
    spec, settings = cpu_spec_and_settings(tmp_path, "[proxy.pem]")
    files = context_files(spec, settings)
    assert files["Dockerfile"] == (REPO / "docker" / "Dockerfile.cpu").read_bytes()
    assert files["workload/benchmark.py"] == (REPO / "docker" / "workload" / "benchmark.py").read_bytes()
    assert files["certs/00-proxy.crt"] == certificate


def test_same_inputs_same_tag_and_every_input_changes_it(tmp_path):
    spec, settings = cpu_spec_and_settings(tmp_path)
    files = context_files(spec, settings)
    args = dict(spec.build_args)
    tag = content_hash(files, args, "sha256:base")
    assert tag == content_hash(dict(files), dict(args), "sha256:base")
    assert len(tag) == 16

    changed_script = dict(files, **{"workload/benchmark.py": files["workload/benchmark.py"] + b"\n"})
    changed_version = dict(args, TENSORFLOW_VERSION="2.20")
    assert content_hash(changed_script, args, "sha256:base") != tag
    assert content_hash(files, changed_version, "sha256:base") != tag
    assert content_hash(files, args, "sha256:other-base") != tag
    assert content_hash(dict(files, **{"certs/00-new.crt": b"x"}), args, "sha256:base") != tag
