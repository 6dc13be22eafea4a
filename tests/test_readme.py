"""The README stays a front door, and what README.md and docs/ say can be followed.

- README.md is under 200 lines (the manual is in docs/).
- Every relative link in README.md and docs/*.md reaches a file that exists, and a #anchor a heading
  of that file (GitHub's slugs).
- The shell commands in README's code blocks that change nothing are run, as written, through the
  console script's entry point in this process (one also as the installed console script), and must
  exit as documented; the others are listed in SKIPPED, each with its reason.
  A command that is in neither list fails the test, so a new one in README gets looked at.

Every test here has pytest-timeout's limit for fast tests (tests/conftest.py), and the console script a
timeout of its own.
"""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from runner.cli import main

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
COMMAND_SECONDS = 45

# The README commands that are run: the command as README writes it -> the exit status README promises.
RUN = {
    ".venv/bin/cudnn-matrix --help": 0,
    ".venv/bin/cudnn-matrix --version": 0,
    ".venv/bin/cudnn-matrix list": 0,
    ".venv/bin/cudnn-matrix list --json": 0,
    ".venv/bin/cudnn-matrix list -f examples/quick.yaml": 0,
    ".venv/bin/cudnn-matrix report --results tests/fixtures/runs": 0,
    ".venv/bin/cudnn-matrix compare --results tests/fixtures/runs 20261129-012045 20261129-012103": 0,
    ".venv/bin/cudnn-matrix report --results tests/fixtures/runs --format json": 0,
}

# The README commands that are not run, and why.
SKIPPED = {
    "make matrix": "builds images and runs every cell of matrix.yaml (Docker, minutes to hours)",
    "make test": "the whole test suite, this file included; needs Docker, Slurm, sshd and chromium",
    "make matrix MATRIX=examples/quick.yaml": "builds an image and runs a cell (Docker, minutes)",
    ".venv/bin/cudnn-matrix build": "builds images (Docker, network or debootstrap)",
    ".venv/bin/cudnn-matrix run": "builds images and runs cells (Docker), writes results/",
    ".venv/bin/cudnn-matrix run --dry-run": "asks the Docker engine (the default executor) which images exist",
    ".venv/bin/cudnn-matrix doctor": "asks the Docker engine, which a checkout's fast tests do not have",
    ".venv/bin/cudnn-matrix report": "needs a run under results/, which a fresh checkout does not have",
    ".venv/bin/cudnn-matrix publish": "writes site/ in the checkout",
    ".venv/bin/cudnn-matrix reproduce RUN": "RUN stands for a run id; builds images from its locks (Docker, tests/test_docker_reproduce.py)",
}


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced code block."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.M | re.S)


def readme_commands() -> list[str]:
    """The commands of README's sh blocks, one a line, without their trailing comments."""
    commands = []
    for language, body in code_blocks(README.read_text()):
        if language not in ("sh", "bash", "shell", "console"):
            continue
        for line in body.splitlines():
            command = " ".join(shlex.split(line, comments=True))
            if command:
                commands.append(command)
    return commands


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation but - and _ removed, spaces to -."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").strip().lower()
    return "".join(c for c in text if c.isalnum() or c in "-_ ").replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (outside code blocks), with GitHub's -1, -2 for repeats."""
    found, seen, fenced = set(), {}, False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        heading = re.match(r"#{1,6} +(.*?) *#* *$", line)
        if heading and not fenced:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[str]:
    """The targets of a Markdown file's links and images, outside code blocks and inline code."""
    prose = "\n".join(body for body in re.split(r"^```.*?^```", path.read_text(), flags=re.M | re.S))
    prose = re.sub(r"`[^`\n]*`", "", prose)
    return [target.split()[0] for target in re.findall(r"\]\(([^)]+)\)", prose)]


def test_readme_is_a_front_door():
    lines = len(README.read_text().splitlines())
    assert lines < 200, f"README.md has {lines} lines: move the detail to a page in docs/"


def test_the_docs_pages_exist_and_say_what_they_cover():
    pages = PAGES[1:]
    assert len(pages) >= 10
    readme = README.read_text()
    for page in pages:
        lines = page.read_text().splitlines()
        assert lines[0].startswith("# "), f"{page.name}: the first line is its title"
        assert lines[1] == "" and lines[2].strip(), f"{page.name}: a line saying what it covers follows the title"
        assert f"(docs/{page.name})" in readme, f"README.md does not link to docs/{page.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_relative_links_reach_a_file_and_a_heading(page):
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, file: ...
            continue
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            broken.append(f"{target}: no {destination.relative_to(REPO) if destination.is_relative_to(REPO) else destination}")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: no heading #{anchor} in {destination.relative_to(REPO)}")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


def test_slugs_follow_github():
    assert slug("Without Docker: the venv and local executors") == "without-docker-the-venv-and-local-executors"
    assert slug("Input pipeline (bench/pipeline_overhead.py)") == "input-pipeline-benchpipeline_overheadpy"
    assert slug("The GPU check: the seed's table, within a lease") == "the-gpu-check-the-seeds-table-within-a-lease"
    assert slug("`matrix.yaml` reference") == "matrixyaml-reference"


def test_every_readme_command_is_run_or_skipped_with_a_reason():
    commands = readme_commands()
    unlisted = [command for command in commands if command not in RUN and command not in SKIPPED]
    assert not unlisted, f"README commands neither run nor skipped in tests/test_readme.py: {unlisted}"
    stale = [command for command in [*RUN, *SKIPPED] if command not in commands]
    assert not stale, f"tests/test_readme.py lists commands README no longer shows: {stale}"


def snapshot() -> list[str]:
    """What a command could leave in the checkout: git's view (ignored files included) and the run folders."""
    seen = []
    if (REPO / ".git").exists():
        status = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=REPO, capture_output=True, text=True,
                                timeout=COMMAND_SECONDS)
        seen.append(status.stdout)
    for folder in ("results", "data", "site"):
        if (REPO / folder).is_dir():
            seen += sorted(f"{folder}/{name}" for name in os.listdir(REPO / folder))
    return seen


@pytest.mark.parametrize("command", list(RUN))
def test_readme_command_runs(command, monkeypatch, capsys):
    """In this process, through the console script's own entry point (runner.cli:main): a process per command
    would add most of a second of start-up each and prove nothing the console script test below does not."""
    words = shlex.split(command)
    assert words[0] == ".venv/bin/cudnn-matrix", "README commands use the Makefile's venv"
    monkeypatch.chdir(REPO)
    before = snapshot()
    try:
        code = main(words[1:])
    except SystemExit as exit:  # argparse's --help and --version
        code = exit.code or 0
    out, err = capsys.readouterr()
    assert code == RUN[command], f"{command}: exit {code}\n{out[-2000:]}\n{err[-2000:]}"
    assert "Traceback" not in err, err
    assert out.strip(), f"{command} printed nothing"
    if "--json" in words:
        assert all("id" in cell for cell in json.loads(out))
    assert snapshot() == before, f"{command} changed the checkout"


@pytest.mark.executors  # the console script as a process, as a user starts it
def test_the_console_script_runs_a_readme_command():
    """The first README command, by the console script this interpreter's venv has, as `make` installs it."""
    command = next(iter(RUN))
    words = shlex.split(command)
    environment = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([str(Path(sys.executable).with_name("cudnn-matrix")), *words[1:]], cwd=REPO, capture_output=True, text=True,
                          timeout=COMMAND_SECONDS, env=environment)
    assert done.returncode == RUN[command], f"{command}: exit {done.returncode}\n{done.stderr[-2000:]}"
    assert "Traceback" not in done.stderr and "usage:" in done.stdout
