"""A corpus of broken and hostile matrix files: each is one line on stderr and exit 2, never a traceback.

In-process through cli.main: an exception other than UserError escapes main and fails the test
just as a traceback would fail a user.
"""

from pathlib import Path

import pytest

from runner.cli import main

CORPUS = sorted((Path(__file__).parent / "bad_matrices").glob("*.yaml"))


def assert_one_line_error(capsys, path):
    assert main(["list", "-f", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith(f"error: {path}"), line
    assert len(line) <= 300, line
    assert "Traceback" not in err


@pytest.mark.parametrize("path", CORPUS, ids=[path.stem for path in CORPUS])
def test_bad_matrix_is_one_line_and_exit_2(path, capsys):
    assert_one_line_error(capsys, path)


def test_the_corpus_covers_the_hostile_cases():
    assert {"not-yaml", "not-a-mapping", "empty", "float-version", "misspelled-key", "duplicate-key", "python-tag",
            "alias-bomb", "empty-expansion", "shell-injection-base", "shell-injection-version",
            "unreadable-character", "deep-nesting", "trailing-newline-version", "trailing-newline-image",
            "infinite-timeout", "nan-timeout", "huge-count", "null-byte-in-path",
            "memory-below-docker-minimum", "pids-limit-too-high",
            "ca-certificate-not-pem", "ca-certificate-broken-pem", "ca-certificate-secret",
            "arabic-indic-digit-version", "arabic-indic-digit-slurm-time", "arabic-indic-digit-host-port",
            "fullwidth-digit-gpu-devices", "fullwidth-digit-memory", "superscript-digit-cuda",
            "host-port-out-of-range", "host-ssh-option-injection", "host-unclosed-bracket",
            "huge-integer", "huge-integer-key", "exclude-unlisted-value", "exclude-unlisted-backend", "batch-larger-than-epoch",
            "data-is-a-device", "data-is-a-file", "data-name-too-long", "ca-certificate-name-too-long",
            } <= {p.stem for p in CORPUS}


def test_a_huge_matrix_is_refused(tmp_path, capsys):
    path = tmp_path / "huge.yaml"
    path.write_text('workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.21"]}\n' + "#" * 2_000_000)
    assert_one_line_error(capsys, path)


@pytest.mark.parametrize("text", [
    'workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["' + "2" * 500_000 + '"]}\n',
    'workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.21"]}\n' + "k" * 500_000 + ': 1\n',
    'workloads: {dogs-vs-cats: {' + "x" * 500_000 + ': 1}}\ncpu: {tensorflow: ["2.21"]}\n',
], ids=["long-value", "long-key", "long-nested-key"])
def test_a_long_value_is_cut_in_the_error_line(tmp_path, capsys, text):
    path = tmp_path / "long.yaml"
    path.write_text(text)
    assert_one_line_error(capsys, path)
