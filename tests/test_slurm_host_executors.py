"""Nodes without Docker: real Slurm jobs running the real `python -m runner run-cell` with the venv or local executor.

No TensorFlow here, so no cell can measure: the workload's faults happen before it imports any
framework, and the interpreters the cells run in only claim TensorFlow and Pillow (a distribution's
metadata, no code). So what is real is the whole path up to the workload: the job script carrying
--executor and --python, run-cell building that executor on its node, local's version check, venv
builds with pip in a cache folder the nodes share (two nodes building the same venv at once), the
workload process, and the failed records with their reasons and the nodes' facts.
"""

import sys
import zipfile
from pathlib import Path

import pytest

from runner import records
from test_slurm import dispatch_run, matrix_file, records_of

pytestmark = [pytest.mark.slurm]

FAULTS = {"crash": "fault: crash", "garbage": "fault: garbage"}
REASONS = {"cpu-tf2.21-crash": "the workload exited with code 1: injected fault: crash",
           "cpu-tf2.21-garbage": "the workload printed no readable result record"}
CLAIMED = {"tensorflow": "2.21.0", "pillow": "11.0.0"}  # what a cpu-tf2.21 cell asks for: tensorflow==2.21.*, pillow>=10
SITE_PACKAGES = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"


def metadata(name: str, version: str) -> dict[str, str]:
    """A distribution's files, as installed: enough for importlib.metadata and pip, no code."""
    info = f"{name}-{version}.dist-info"
    files = {f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: cudnn-matrix-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    return {**files, f"{info}/RECORD": "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"])}


def python_claiming_frameworks(folder: Path) -> Path:
    """A virtualenv of this interpreter, without pip, whose metadata says it has TensorFlow 2.21 and Pillow."""
    import venv

    venv.create(folder, with_pip=False)
    for name, version in CLAIMED.items():
        for path, text in metadata(name, version).items():
            (folder / SITE_PACKAGES / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / SITE_PACKAGES / path).write_text(text)
    return folder / "bin" / "python"


def wheels_claiming_frameworks(folder: Path) -> Path:
    """A folder of wheels pip installs in place of TensorFlow 2.21 and Pillow (--find-links), in a second, offline."""
    folder.mkdir()
    for name, version in CLAIMED.items():
        with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
            for path, text in metadata(name, version).items():
                wheel.writestr(path, text)
    return folder


@pytest.mark.timeout(180)
def test_local_jobs_run_their_cells_in_the_runs_python_on_the_nodes(tmp_path, slurm, capsys):
    python = python_claiming_frameworks(tmp_path / "python")
    path = matrix_file(tmp_path, FAULTS, 'cpu:\n  tensorflow: ["2.21", "2.15"]\n')
    code, out, err = dispatch_run(path, capsys, "--executor", "local", "--python", str(python))
    assert code == 1, err[-3000:]

    run_folder, kept = records_of(tmp_path / "results")
    statuses = {cell: (record.status, record.reason) for (cell, _), record in kept.items()}
    assert {cell: statuses[cell] for cell in REASONS} == {cell: ("failed", reason) for cell, reason in REASONS.items()}
    for workload in FAULTS:  # local installs nothing: the node's python decides, and says what it has instead
        assert statuses[f"cpu-tf2.15-{workload}"] == (
            "excluded", f"{python} has tensorflow 2.21.0 (tensorflow==2.15.* asked for): the local executor installs nothing")
    for record in kept.values():
        assert record.executor == "local"
        assert record.environment["host"] in ("n1", "n2", "n3") and record.environment["job_id"].isdigit()
        assert (run_folder / "jobs" / f"{record.cell_id}.0.{record.environment['job_id']}.json").is_file()  # written on its node
    crash = kept[("cpu-tf2.21-crash", 0)]
    assert (crash.environment["python"], crash.environment["isolation"]) == (str(python), "none")
    assert crash.environment["installed"] == "tensorflow==2.21.0 pillow==11.0.0" and "injected fault: crash" in crash.log_tail

    script = (run_folder / "jobs" / "cpu-tf2.21-crash.0.sh").read_text()
    assert f" run-cell -f {path} --cell cpu-tf2.21-crash " in script and f" --executor local --python {python}" in script
    host = records.manifest(run_folder)["host"]
    assert (host["dispatch"], host["node_executor"], host["node_python"]) == ("slurm", "local", str(python))
    assert "Traceback" not in err


@pytest.mark.timeout(180)
def test_venv_jobs_on_two_nodes_build_one_venv_in_the_shared_cache_and_run_their_cells_in_it(tmp_path, slurm, capsys, monkeypatch):
    # Jobs inherit the submitting runner's environment (sbatch --export=ALL): the cache, and pip's offline wheels.
    monkeypatch.setenv("CUDNN_MATRIX_VENVS", str(tmp_path / "venvs"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels_claiming_frameworks(tmp_path / "wheels")))
    path = matrix_file(tmp_path, FAULTS, 'cpu:\n  tensorflow: ["2.21"]\n')
    code, out, err = dispatch_run(path, capsys, "--executor", "venv")
    assert code == 1, err[-3000:]

    run_folder, kept = records_of(tmp_path / "results")
    assert {cell: (record.status, record.reason) for (cell, _), record in kept.items()} == {
        cell: ("failed", reason) for cell, reason in REASONS.items()}, err[-3000:]
    crash, garbage = kept[("cpu-tf2.21-crash", 0)], kept[("cpu-tf2.21-garbage", 0)]
    assert (crash.executor, garbage.executor) == ("venv", "venv")
    assert crash.environment["host"] != garbage.environment["host"]  # both jobs at once, on whole nodes of their own
    (named,) = [entry for entry in (tmp_path / "venvs").iterdir() if entry.is_symlink()]
    assert crash.environment["venv"] == garbage.environment["venv"] == str(named.resolve())  # one venv, both cells in it
    assert sorted(entry.name for entry in (tmp_path / "venvs").iterdir()) == sorted([named.name, named.resolve().name])  # no other build left
    assert crash.environment["installed"] == "tensorflow==2.21.0 pillow==11.0.0"
    assert crash.environment["python"] == f"{named.resolve()}/bin/python"

    script = (run_folder / "jobs" / "cpu-tf2.21-crash.0.sh").read_text()
    assert f" --executor venv --python {sys.executable}" in script
    assert records.manifest(run_folder)["host"]["node_executor"] == "venv"
    assert "Traceback" not in err
