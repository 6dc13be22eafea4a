"""Locks and `reproduce`: every record names its environment's lock, and a run is made again from its locks.

Pure parts on data; the run and the command through the CLI with the fake executor (which makes a
lock as Docker and venv do) and a package index served on loopback, so that checking a lock against
the index is the real code over real HTTP. The real installers are tested in test_venv.py (venv,
against PyPI) and test_docker_reproduce.py (Docker).
"""

import json
import pytest

from fake_executor import FakeExecutor
from runner import cli, executors, locks, records, reproduce
from runner.environments import EnvironmentSpec
from runner.errors import UserError

MATRIX = """workloads:
  mnist: {model: mnist, epochs: 2, train_images: 64, validation_images: 32}
cpu:
  tensorflow: ["2.21"]
  jax: ["0.7"]
repeats: 3
build:
  ca_certificates: []
"""


def report(*installed):
    """pip's installation report (pip install --report) of these (name, version, sha256), as much of it as a lock reads."""
    items = []
    for name, version, sha256 in installed:
        archive = {"hash": f"sha256={sha256}", "hashes": {"sha256": sha256}} if sha256 else {}
        items.append({"metadata": {"name": name, "version": version}, "download_info": {"url": f"https://files/{name}", "archive_info": archive}})
    return {"version": "1", "pip_version": "26.3", "install": items}


BASE = {"image": "python:3.11-slim", "image_id": "sha256:1234"}


def test_a_lock_holds_every_installed_distribution_by_canonical_name_version_and_hash():
    lock = locks.from_reports("cpu-tf2.21", BASE, report(("Protobuf", "5.29.1", "b" * 64), ("numpy", "2.1.3", "a" * 64)),
                              debian="python3=3.11.2-1\napt=2.6.1\n")

    assert [(pin.name, pin.version) for pin in lock.requirements] == [("numpy", "2.1.3"), ("protobuf", "5.29.1")]
    assert lock.hashed and lock.debian == ("apt=2.6.1", "python3=3.11.2-1") and lock.installer == "pip==26.3"
    assert locks.parse(lock.text(), "x.lock") == lock  # the file is the lock, byte for byte the same each time
    assert lock.file_name() == f"cpu-tf2.21.{lock.digest}.lock"


def test_a_lock_digest_changes_with_any_version_and_not_with_the_order_pip_reported():
    one = locks.from_reports("e", BASE, report(("a", "1.0", "1" * 64), ("b", "2.0", "2" * 64)))
    same = locks.from_reports("e", BASE, report(("b", "2.0", "2" * 64), ("a", "1.0", "1" * 64)))
    other = locks.from_reports("e", BASE, report(("a", "1.0", "1" * 64), ("b", "2.1", "2" * 64)))
    assert one.digest == same.digest != other.digest


def test_a_spec_pinned_to_its_lock_asks_for_exact_versions_with_hashes():
    spec = EnvironmentSpec("cpu", "cpu-tf2.21", "python:3.11-slim", ("tensorflow==2.21.*", "pillow>=10"))
    lock = locks.from_reports(spec.name, BASE, report(("tensorflow", "2.21.0", "c" * 64), ("pillow", "11.0.0", "d" * 64)))

    pinned = locks.locked_spec(spec, lock)

    assert pinned.requirements == (f"pillow==11.0.0 --hash=sha256:{'d' * 64}", f"tensorflow==2.21.0 --hash=sha256:{'c' * 64}")
    assert pinned.lock == lock.digest and pinned.describe()["lock"] == lock.digest and spec.describe()["lock"] is None


def test_without_every_hash_a_pinned_spec_asks_for_versions_only():
    # pip's hash-checking mode is all or nothing: one file without a hash (a local folder) turns it off for the lock.
    lock = locks.from_reports("e", BASE, report(("a", "1.0", "1" * 64), ("b", "2.0", "")))
    assert not lock.hashed
    assert locks.locked_spec(EnvironmentSpec("cpu", "e", "", ("a",)), lock).requirements == ("a==1.0", "b==2.0")


def test_a_file_that_is_not_a_lock_is_one_line_naming_it():
    with pytest.raises(UserError, match=r"^x\.lock: not a lock cudnn-matrix wrote") as raised:
        locks.parse('{"schema": 1, "environment": "e"}', "x.lock")
    assert "\n" not in str(raised.value)


def test_the_machines_two_runs_differ_in_are_named():
    before = {"hostname": "a", "cpu_model": "Xeon", "gpus": [{"name": "H100", "driver": "550"}]}
    after = {"hostname": "a", "cpu_model": "EPYC", "gpus": [{"name": "H200", "driver": "580"}]}
    text = reproduce.render_differences(before, after)
    assert "- cpu_model: Xeon -> EPYC" in text and "- gpus: H100, 550 -> H200, 580" in text and "hostname" not in text
    assert "no difference" in reproduce.render_differences(before, dict(before))


@pytest.fixture
def locked_run(tmp_path, monkeypatch):
    """A run of two CPU cells by an executor that locks what it makes; the executor, for the test to look at after."""
    fake = FakeExecutor(locks=True)
    monkeypatch.setitem(executors.REGISTRY, "docker", lambda wanted: fake)
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(MATRIX)
    assert cli.main(["run", "-f", str(matrix), "--results", str(tmp_path / "results")]) == 0
    return records.latest_run(tmp_path / "results"), fake


def test_every_record_names_its_environment_lock_and_the_run_keeps_it(locked_run):
    run_folder, fake = locked_run
    good = [record for record in records.load(run_folder) if record.status == "ok"]

    assert len(good) == 6
    for record in good:
        lock = locks.read(run_folder, record.environment["name"], record.environment["lock"])
        assert lock.environment == record.environment["name"] and [pin.name for pin in lock.requirements] == ["numpy", "protobuf"]


def test_reproduce_runs_the_same_cells_in_environments_pinned_to_the_locks(locked_run, package_index, tmp_path, capsys):
    run_folder, fake = locked_run
    (tmp_path / "matrix.yaml").write_text("not: the matrix the run used\n")  # reproduce reads the run's own copy
    fake.prepared.clear()
    capsys.readouterr()

    assert cli.main(["reproduce", run_folder.name, "--results", str(tmp_path / "results")]) == 0

    out = capsys.readouterr().out
    again = records.latest_run(tmp_path / "results")
    assert again != run_folder and records.manifest(again)[reproduce.MANIFEST_KEY]["run"] == run_folder.name
    cells = sorted({record.cell_id for record in records.load(again)})
    assert cells == sorted({record.cell_id for record in records.load(run_folder)}) and len(records.load(again)) == 6
    assert all(record.status == "ok" for record in records.load(again))
    assert {job.cell_id for job in fake.jobs[-6:]} == set(cells)
    assert "B vs A" in out and all(cell in out for cell in cells)
    assert "The two runs' machines: no difference" in out


def test_reproduce_pins_each_environment_to_its_lock(locked_run, package_index):
    run_folder, _ = locked_run
    found = reproduce.source(run_folder)

    chosen, held = reproduce.plan(found)

    assert found.repeats == 3 and len(held) == 2
    for cell in chosen.selected:
        assert cell.environment.lock and all("--hash=sha256:" in requirement for requirement in cell.environment.requirements)


def test_a_lock_naming_a_version_the_index_lacks_fails_in_one_line_before_any_build(locked_run, package_index, tmp_path, capsys):
    run_folder, fake = locked_run
    package_index["numpy"] = ("2.2.0", "a" * 64, 1000)  # 2.1.3 was withdrawn since the run
    fake.prepared.clear()
    capsys.readouterr()

    assert cli.main(["reproduce", run_folder.name, "--results", str(tmp_path / "results")]) == UserError.exit_code

    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "numpy==2.1.3" in err and "protobuf" not in err
    assert fake.prepared == [] and records.latest_run(tmp_path / "results") == run_folder


def test_a_run_without_locks_cannot_be_reproduced_and_says_why(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(executors.REGISTRY, "docker", lambda wanted: FakeExecutor())
    (tmp_path / "matrix.yaml").write_text(MATRIX)
    assert cli.main(["run", "-f", str(tmp_path / "matrix.yaml"), "--results", str(tmp_path / "results"), "--repeats", "1"]) == 0
    capsys.readouterr()

    assert cli.main(["reproduce", "latest", "--results", str(tmp_path / "results")]) == UserError.exit_code

    assert "no lock recorded for environment cpu-" in capsys.readouterr().err


def test_list_json_shows_whether_each_environment_is_pinned_to_a_lock(locked_run, tmp_path, capsys):
    run_folder, _ = locked_run
    capsys.readouterr()
    assert cli.main(["list", "-f", str(tmp_path / "matrix.yaml"), "--json"]) == 0
    assert {row["environment"]["lock"] for row in json.loads(capsys.readouterr().out)} == {None}  # pip resolves them at build

    assert cli.main(["list", "--locked", str(run_folder), "--json"]) == 0

    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2 and all(row["environment"]["lock"] == locks.read(run_folder, row["environment"]["name"],
                                                                           row["environment"]["lock"]).digest for row in rows)


def test_a_slurm_job_of_a_reproduction_pins_its_environment_as_the_manifest_says(locked_run, tmp_path, monkeypatch):
    run_folder, _ = locked_run
    found, asked = reproduce.source(run_folder), []

    class Asked(FakeExecutor):
        def prepare(self, spec):
            asked.append(spec)
            return super().prepare(spec)
    monkeypatch.setitem(executors.REGISTRY, "docker", lambda wanted: Asked(locks=True))
    monkeypatch.setenv("SLURM_JOB_ID", "80")
    again = records.new_run(tmp_path / "again", run_folder / records.MATRIX_COPY, {"dispatch": "slurm"},
                            notes={reproduce.MANIFEST_KEY: found.note()})

    assert cli.main(["run-cell", "-f", str(again / records.MATRIX_COPY), "--cell", found.cells[0], "--run", str(again)]) == 0

    (spec,) = asked
    assert spec.lock == dict(found.locks)[spec.name] and all("--hash=sha256:" in line for line in spec.requirements)
    record = records.read_one(again / "jobs" / f"{found.cells[0]}.0.80.json")
    assert record.status == "ok" and locks.read(again, spec.name, record.environment["lock"]).environment == spec.name


def test_an_environment_built_apart_with_two_locks_is_rebuilt_from_the_one_most_records_name(locked_run):
    run_folder, _ = locked_run
    lines = (run_folder / records.RESULTS_FILE).read_text().splitlines()
    other = json.loads(lines[0])
    other["environment"]["lock"] = "0" * 16  # as if one SSH host had built it on another day
    (run_folder / records.RESULTS_FILE).write_text("\n".join([json.dumps(other), *lines[1:]]) + "\n")

    found = reproduce.source(run_folder)

    assert found.mixed == (other["environment"]["name"],) and dict(found.locks)[other["environment"]["name"]] != "0" * 16


def test_an_index_that_cannot_be_asked_is_said_and_the_reproduction_goes_on(locked_run, tmp_path, monkeypatch, capsys):
    run_folder, fake = locked_run
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # the discard port: nothing answers
    capsys.readouterr()

    assert cli.main(["reproduce", run_folder.name, "--results", str(tmp_path / "results"), "--repeats", "1"]) == 0

    assert "warning: cannot check the locked packages against http://127.0.0.1:9/simple" in capsys.readouterr().err
