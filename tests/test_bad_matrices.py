"""A corpus of broken and hostile matrix files: each is one line on stderr and exit 2, never a traceback."""

from pathlib import Path

import pytest

from conftest import runner

CORPUS = sorted((Path(__file__).parent / "bad_matrices").glob("*.yaml"))


def assert_one_line_error(result, path):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {path}"), line


@pytest.mark.parametrize("path", CORPUS, ids=[path.stem for path in CORPUS])
def test_bad_matrix_is_one_line_and_exit_2(path):
    assert_one_line_error(runner("list", "-f", path), path)


def test_the_corpus_covers_the_hostile_cases():
    assert {"not-yaml", "not-a-mapping", "empty", "float-version", "misspelled-key", "duplicate-key", "python-tag",
            "alias-bomb", "empty-expansion", "shell-injection-base", "shell-injection-version"} <= {p.stem for p in CORPUS}


def test_a_huge_matrix_is_refused(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text('workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.21"]}\n' + "#" * 2_000_000)
    assert_one_line_error(runner("list", "-f", path), path)
