"""The static results site: what `publish` writes from stored and constructed runs, escaping, incrementality,
runs still being written, and (marked `browser`) the pages as headless Chromium opens them from file://."""

import dataclasses
import html
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from PIL import Image

import site_runs
from conftest import missing_part
from fake_executor import FakeExecutor, fault_workloads
from runner import cli, executors, records, report
from runner.analysis import analyze
from runner.errors import UserError
from runner.site import STATE_FILE, publish, snapshot, views
from runner.site.snapshot import file_name

# Sites of several runs, a chart drawn per run and per cell (a fifth of a second each): `make site-test`, not `make unit-test`.
pytestmark = pytest.mark.site
FIXTURES = Path(__file__).parent / "fixtures" / "runs"
STORED = sorted(path.name for path in FIXTURES.iterdir())  # two schema-2 runs written by cudnn-matrix 0.1
BROWSER_SECONDS = 45  # under the 60 s a fast test gets, so that a hung browser fails with its own message
HOSTILE_RUN = "20261128-000000-<b onmouseover=alert(7)>run"  # a folder name: anything but a slash
HOSTILE_CELL = "cpu-<script>alert(1)</script>-dogs"
TRAVERSING_CELL = "../../../escaped \"quoted\" 'cell' $x^2$"
HOSTILE_GPU_CELL = "gpu-cuda<u>12</u>-cudnn<script>alert(8)</script>-dogs"  # its CUDA and cuDNN head a grid's row and column
LIVE_RUN = "20261128-120000"


def copy_stored(results: Path) -> None:
    for name in STORED:
        shutil.copytree(FIXTURES / name, results / name)


def hostile_run(results: Path) -> Path:
    """Markup everywhere a results file can carry text: ids, reasons, log tails, the manifest, a model name; and a damaged line."""
    rng = site_runs.random.Random(7)
    measured = site_runs.measured(HOSTILE_CELL, "cpu", 2.0, 0, rng)
    model = "<i>model</i> $\\alpha$ </title><script>alert(6)</script>"
    cells = [
        site_runs.record(HOSTILE_CELL, "cpu", measurement=dataclasses.replace(measured.measurement, workload=model)),
        site_runs.record(TRAVERSING_CELL, "cpu", status="failed", reason="<img src=x onerror=alert(2)>",
                         log_tail="epoch 1/4\n</pre><script>alert(3)</script>\n<!-- -->\"'&"),
        site_runs.record(HOSTILE_GPU_CELL, "gpu", status="skipped", reason="no GPU", cuda="<u>12</u>", cudnn="<script>alert(8)</script>"),
    ]
    host = {**site_runs.host(site_runs.WORKSTATION), "cpu_model": "<svg onload=alert(4)>"}
    folder = site_runs.write_run(results, HOSTILE_RUN, host, cells)
    manifest = json.loads((folder / records.MANIFEST_FILE).read_text())
    manifest["matrix_file"] = "\"><script>alert(5)</script>.yaml"
    (folder / records.MANIFEST_FILE).write_text(json.dumps(manifest))
    with open(folder / records.RESULTS_FILE, "a") as results_file:
        results_file.write('{"schema": 3, "cell_id": "damaged"\n')
    return folder


def live_run(results: Path) -> Path:
    """A run a runner is writing: manifest `running`, one record, and the next one half on disk."""
    rng = site_runs.random.Random(8)
    folder = site_runs.write_run(results, LIVE_RUN, site_runs.host(site_runs.CLUSTER),
                                 [site_runs.measured(site_runs.CPU_ID, "cpu", 9.9, 0, rng)], state="running")
    half = site_runs.measured(site_runs.GPU_IDS["9.8"], "gpu", 0.5, 0, rng, driver="535.183.01", cudnn="9.8.2").to_json()
    with open(folder / records.RESULTS_FILE, "a") as results_file:
        results_file.write(half[: len(half) // 2])
    return folder


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """Every kind of run, published once: the stored schema-2 runs, a week on two GPU hosts, a hostile run, one in progress."""
    base = tmp_path_factory.mktemp("site")
    results = base / "results"
    results.mkdir()
    copy_stored(results)
    site_runs.demo(results)
    hostile_run(results)
    live = live_run(results)
    with records.hold(live):
        done = publish(results, base / "site")
    return done


def pages(site: Path) -> dict[str, str]:
    return {str(path.relative_to(site)): path.read_text() for path in site.rglob("*.html")}


def test_every_stored_run_is_published_including_schema_2(tmp_path):
    copy_stored(tmp_path / "results")

    done = publish(tmp_path / "results", tmp_path / "site")

    assert done.rendered == tuple(STORED) and done.unchanged == ()
    index = (tmp_path / "site" / "index.html").read_text()
    for run_id in STORED:
        assert f'href="runs/{run_id}/index.html"' in index
    run = (tmp_path / "site" / "runs" / STORED[0] / "index.html").read_text()
    assert "cpu-tf2.21-dogs-vs-cats" in run and 'src="chart.svg"' in run
    assert "dogs-vs-cats: no GPU cell was measured, so there is nothing to set against the CPU." in run
    assert "expected a GPU, TensorFlow registered none" in run
    assert "TensorFlow 2.21 was built with cuDNN 9.3" in run  # the excluded cell's reason
    failed = (tmp_path / "site" / "runs" / STORED[0] / "cells" / "gpu-cuda12.5-cudnn9.3-tf2.21-dogs-vs-cats.html").read_text()
    assert "Log tail" in failed and "failed call to cuInit" in failed
    assert "none loaded" in failed  # a GPU cell that loaded no cuDNN says so
    ok = (tmp_path / "site" / "runs" / STORED[0] / "cells" / "cpu-tf2.21-dogs-vs-cats.html").read_text()
    assert "2.21.0 (asked: 2.21)" in ok and "none (CPU cell)" in ok
    assert (tmp_path / "site" / "runs" / STORED[0] / "results.jsonl").read_bytes() == (FIXTURES / STORED[0] / "results.jsonl").read_bytes()


def test_a_run_page_gives_the_report_its_verdicts_with_intervals_and_the_chart(published):
    run = (published.site / "runs" / "20261124-090000" / "index.html").read_text()
    assert "dogs-vs-cats: cuDNN 9.8 vs 9.5 (CUDA 12.6, tf 2.21.0, Keras 3.12.0): +21.2% (+20.6% to +24.0%): faster." in run
    verdicts = run.split("<h2>Verdicts</h2>")[1].split("</table>")[0]
    assert verdicts.count("<tr>") == 1 + 6  # header, then 3 speed-ups, GPU vs CPU, 2 cuDNN steps
    assert '<td class="num">1.21-1.24x</td>' in verdicts and '<span class="verdict verdict-faster">faster</span>' in verdicts
    chart = published.site / "runs" / "20261124-090000" / "chart.svg"
    svg = chart.read_text()
    ElementTree.fromstring(svg)  # a well-formed SVG
    for label in ("timed epoch, seconds", "speed-up, times, log scale", "dogs-vs-cats: epoch time", "13.70x (13.60-13.86) faster"):
        assert label in svg  # matplotlib keeps each text as a comment beside its glyphs


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """A run the size of a real matrix, most of it not measured (site_runs.wide_run), published alone."""
    base = tmp_path_factory.mktemp("wide")
    site_runs.wide_run(base / "results")
    done = publish(base / "results", base / "site")
    return done.site / "runs" / site_runs.WIDE_RUN / "index.html"


def text_of(page: str) -> str:
    """A page's words as a reader sees them: tags dropped, entities read, runs of space as one."""
    words = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    return re.sub(r" ([,.;:)])", r"\1", words)  # "<a>cells</a>, " reads "cells,"


def test_a_run_page_gives_the_answer_before_the_tables_that_back_it(wide):
    page = wide.read_text()
    order = ['id="answer"', "<h2>Verdicts</h2>", 'id="chart"', "<h2>CUDA × cuDNN</h2>", '<h2 id="not-measured">', "<h2>Measured cells</h2>", "<h2>Run</h2>"]
    assert [page.index(mark) for mark in order] == sorted(page.index(mark) for mark in order)
    verdicts = page.split('id="verdicts"')[1].split("</table>")[0]
    assert verdicts.count("<tr>") == 1 + 8 + 1 + 4  # header; 8 speed-ups (the other CPU cell, 7 GPU cells), GPU vs CPU, 4 cuDNN steps
    assert 'class="scroll long"' in page  # more than a screenful of verdicts scrolls in its box, and the chart stays near the top


def test_cells_not_measured_are_one_line_per_reason_not_rows(wide):
    page = wide.read_text()
    table = page.split("<h2>Measured cells</h2>")[1].split("</table>")[0]
    assert "skipped" not in table and "excluded" not in table and table.count("<tr>") == 1 + 9  # header, the 9 measured cells
    folded = page.split('<h2 id="not-measured">')[1].split("<h2")[0]
    assert "<details><summary>8 cells" in folded and f"8 cells skipped {site_runs.DRIVER_TOO_OLD}" in text_of(folded)
    assert text_of(page).count(site_runs.DRIVER_TOO_OLD) == 1  # said once, not once per cell
    assert all(f'href="cells/{file_name(site_runs.gpu_id("12.8", cudnn, tf))}.html"' in folded
               for cudnn in ("9.3", "9.5", "9.8", "9.10") for tf in ("2.20", "2.21"))


def test_not_measured_groups_say_what_the_terminal_says(tmp_path):
    folder = site_runs.wide_run(tmp_path)
    view = views.run_view(snapshot.read(folder), report.MIN_EFFECT)

    groups = views.report_parts(view)["not_measured"]

    terminal = report.render(records.load(folder)).split("Not measured:\n")[1].split("\n\n")[0].splitlines()
    assert ["- " + group["line"] for group in groups] == terminal
    assert [(group["status"], len(group["cells"])) for group in groups] == [("excluded", 1), ("skipped", 8)]


def test_the_terminals_input_bound_throttling_and_synthetic_notes_are_on_the_page(wide, published):
    terminal = report.render(records.load(wide.parents[3] / "results" / site_runs.WIDE_RUN))
    page = text_of(wide.read_text())
    said = [line for heading in (report.INPUT_BOUND_NOTE, report.TELEMETRY_NOTE) for line in terminal.split(heading)[1].split("\n\n")[0].splitlines()[1:]]
    assert len(said) == 2  # one input-bound cell, one throttled cell
    for note in (report.INPUT_BOUND_NOTE, report.TELEMETRY_NOTE, *(line[2:] for line in said)):
        assert note in page, note
    assert "Read with the notes below: input-bound cells, telemetry warnings." in page
    assert "not comparable: this cell ran throttled or on moving clocks" in page  # on its verdict, as the sentences say it
    stored = text_of((published.site / "runs" / STORED[0] / "index.html").read_text())
    assert "Synthetic data (no real data was present) for: dogs-vs-cats." in stored and "Read with the notes below: synthetic data." in stored


def test_a_cuda_by_cudnn_grid_per_framework_build_marks_the_fastest(tmp_path):
    view = views.run_view(snapshot.read(site_runs.wide_run(tmp_path)), report.MIN_EFFECT)

    grids = views.cudnn_grids(view)

    assert [(grid["workload"], grid["build"]) for grid in grids] == [("dogs-vs-cats", "tensorflow 2.21"), ("dogs-vs-cats", "tensorflow 2.20")]
    newest = grids[0]
    assert newest["cudnns"] == ["9.3", "9.5", "9.8", "9.10"]  # by number, not as text
    assert [row["cuda"] for row in newest["rows"]] == ["12.5", "12.6", "12.8"]
    assert newest["fastest"] == site_runs.gpu_id("12.6", "9.8", "2.21")
    assert newest["baseline"]["cell_id"] == site_runs.CPU_ID
    best = newest["rows"][1]["squares"][2]
    speedup = next(pair.comparison for pair in view.analysis.pairs if pair.question == "speed-up" and pair.other.cell_id == best["cell_id"])
    result = next(result for result in view.results if result.cell_id == best["cell_id"])
    assert best["fastest"] and best["seconds"] == f"{result.timed.median:.2f}"
    assert (best["verdict"], best["speedup"]) == ("faster", f"{speedup.ratio:.2f}x faster")
    assert newest["rows"][0]["squares"][2]["status"] == "excluded" and newest["rows"][0]["squares"][3] is None  # a hole, and a cell not in the matrix
    assert newest["rows"][1]["squares"][0]["doubtful"]  # the throttled cell
    assert [square["status"] for square in newest["rows"][2]["squares"]] == ["skipped"] * 4
    assert grids[1]["fastest"] in (site_runs.gpu_id("12.6", "9.3", "2.20"), site_runs.gpu_id("12.6", "9.5", "2.20"))


def test_the_grid_on_the_page_marks_the_fastest_cell(wide):
    grid = wide.read_text().split("<h2>CUDA × cuDNN</h2>")[1].split("</table>")[0]
    fastest = grid.split('<td class="fastest">')[1].split("</td>")[0]
    assert f'href="cells/{site_runs.gpu_id("12.6", "9.8", "2.21")}.html"' in fastest and '<span class="fastest-mark">fastest</span>' in fastest
    assert '<span class="verdict verdict-faster">' in fastest


def test_a_cell_page_shows_what_it_loaded_and_its_epochs(published):
    cell = (published.site / "runs" / "20261125-140000" / "cells" / f"{site_runs.GPU_IDS['9.8']}.html").read_text()
    assert re.search(r"cuDNN loaded</th><td>\s*9\.8\.2", cell)
    assert site_runs.CUDNN_PATH in cell and site_runs.CUDART_PATH in cell
    assert "535.183.01" in cell and "tensorflow 2.21.0 (asked: 2.21)" in cell
    assert cell.count("warm-up, left out of the timing") == 5  # one warm-up epoch in each of 5 repeats
    assert f'href="../../../cells/{site_runs.GPU_IDS["9.8"]}.html"' in cell


def test_across_runs_a_driver_update_that_made_cells_slower_stands_out(published):
    index = (published.site / "index.html").read_text()
    row = index.split('href="runs/20261124-090000/index.html"')[1].split("</tr>")[0]
    assert '<span class="verdict verdict-slower">3 slower</span>' in row  # the three GPU cells, after the driver update
    history = (published.site / "cells" / f"{site_runs.GPU_IDS['9.8']}.html").read_text()
    assert "driver 550.54.15 -&gt; 560.35.03" in history
    assert "cuDNN 9.8.0 -&gt; 9.8.2" in history  # the cluster's upgrade, which made it faster
    assert re.search(r'verdict-slower">0\.\d\dx \(0\.\d\d-0\.\d\d\) slower', history)
    assert re.search(r'verdict-faster">1\.\d\dx \(1\.\d\d-1\.\d\d\) faster', history)
    svg = (published.site / "cells" / f"{site_runs.GPU_IDS['9.8']}.svg").read_text()
    assert "run start (UTC)" in svg and "timed epoch, seconds" in svg
    assert "AMD Ryzen 9 7950X (32 cores) + NVIDIA GeForce RTX 4090" in svg  # one line per host, in the legend
    listing = (published.site / "cells" / "index.html").read_text()
    assert all(f"{file_name(cell)}.html" in listing for cell in [site_runs.CPU_ID, *site_runs.GPU_IDS.values(), HOSTILE_CELL])


def test_a_run_being_written_is_shown_in_progress_and_its_half_line_costs_nothing_else(published):
    assert published.in_progress == (LIVE_RUN,)
    index = (published.site / "index.html").read_text()
    row = index.split(f'href="runs/{LIVE_RUN}/index.html"')[1].split("</tr>")[0]
    assert '<span class="badge state-in-progress">in progress</span>' in row
    run = (published.site / "runs" / LIVE_RUN / "index.html").read_text()
    assert "A runner is writing this run now" in run
    assert "a record not complete yet (still being written, or cut short); publish again later" in run
    assert site_runs.CPU_ID in run


def test_markup_in_results_is_shown_as_text_never_run(published):
    site = published.site
    for name, text in pages(site).items():
        assert text.count("<script") == 1, name  # only the site's own script tag
        assert "alert(" not in text or "&lt;" in text, name
        for raw in ("<script>alert", "<img src=x", "<svg onload", "<b onmouseover", "<i>model</i>", '"><script', "<u>12"):
            assert raw not in text, (name, raw)
    hostile = site / "runs" / file_name(HOSTILE_RUN)
    assert hostile.parent == site / "runs" and (hostile / "index.html").is_file()
    cell = (hostile / "cells" / f"{file_name(HOSTILE_CELL)}.html").read_text()
    assert "<title>cpu-&lt;script&gt;alert(1)&lt;/script&gt;-dogs in run" in cell
    failed = (hostile / "cells" / f"{file_name(TRAVERSING_CELL)}.html").read_text()
    assert "&lt;/pre&gt;&lt;script&gt;alert(3)&lt;/script&gt;" in failed and "&lt;img src=x onerror=alert(2)&gt;" in failed
    assert not any(".." in str(path.relative_to(site)) for path in site.rglob("*"))
    assert sorted(path.name for path in site.parent.iterdir()) == ["results", "site"]  # nothing written outside the site
    for svg in site.rglob("*.svg"):
        assert "<script" not in svg.read_text() and "<i>" not in svg.read_text()
    run = (hostile / "index.html").read_text()
    assert "line 4: not a complete JSON record; the line is left out" in run  # a damaged line, not one being written
    # A GPU record whose CUDA and cuDNN are markup is refused on read (records name versions): never raw on the page.
    assert "<script>alert(8)" not in run and "<u>12</u>" not in run


def test_a_second_publish_renders_nothing_and_a_changed_run_only_itself(tmp_path):
    results, site = tmp_path / "results", tmp_path / "site"
    copy_stored(results)
    publish(results, site)
    run_pages = {path: path.stat().st_mtime_ns for path in (site / "runs").rglob("*")}

    again = publish(results, site)

    assert (again.rendered, again.unchanged, again.charts_drawn) == ((), tuple(STORED), ())
    assert {path: path.stat().st_mtime_ns for path in (site / "runs").rglob("*")} == run_pages

    os.utime(results / STORED[0] / records.RESULTS_FILE)  # touched, not changed: the content hash decides
    assert publish(results, site).rendered == ()

    last = (results / STORED[1] / records.RESULTS_FILE).read_text().splitlines()[-1]
    with open(results / STORED[1] / records.RESULTS_FILE, "a") as results_file:
        results_file.write(last.replace('"repeat": 1', '"repeat": 2') + "\n")  # one more repeat of the CPU cell
    changed = publish(results, site)

    assert changed.rendered == (STORED[1],) and changed.unchanged == (STORED[0],)
    assert changed.charts_drawn == ("cpu-tf2.21-dogs-vs-cats",)  # the only cell whose points moved
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in run_pages.items() if STORED[0] in str(path))
    assert "<td>3</td>" in (site / "runs" / STORED[1] / "index.html").read_text()  # three repeats now


def test_a_running_manifest_that_no_runner_holds_is_shown_stopped_not_in_progress(tmp_path):
    results, site = tmp_path / "results", tmp_path / "site"
    live = live_run(results)  # its runner killed with kill -9: the manifest still says running, nobody holds the lock
    with records.hold(live):
        assert publish(results, site).in_progress == (LIVE_RUN,)

    stopped = publish(results, site)

    assert stopped.rendered == (LIVE_RUN,) and stopped.in_progress == ()
    assert '<span class="badge state-stopped">stopped</span>' in (site / "index.html").read_text()
    run = (site / "runs" / LIVE_RUN / "index.html").read_text()
    assert "no runner holds it: its runner was stopped without a word" in run
    assert "line 2: not a complete JSON record; the line is left out" in run  # the half record will never be completed


def test_a_run_that_ends_or_goes_away_is_rendered_again_or_removed(tmp_path):
    results, site = tmp_path / "results", tmp_path / "site"
    copy_stored(results)
    live = live_run(results)
    with records.hold(live):
        assert publish(results, site).in_progress == (LIVE_RUN,)
    records.finish_run(live, "interrupted")  # the runner stopped: the same records, the manifest says so

    ended = publish(results, site)

    assert ended.rendered == (LIVE_RUN,) and ended.in_progress == ()
    assert '<span class="badge state-interrupted">interrupted</span>' in (site / "index.html").read_text()
    shutil.rmtree(results / STORED[0])
    gone = publish(results, site)
    assert gone.removed == (STORED[0],) and not (site / "runs" / STORED[0]).exists()
    assert STORED[0] not in (site / "index.html").read_text()


def test_a_run_of_a_newer_schema_is_listed_as_unreadable(tmp_path):
    results = tmp_path / "results"
    copy_stored(results)
    newer = results / "20261130-000000"
    newer.mkdir()
    (newer / records.MANIFEST_FILE).write_text(json.dumps({"schema": 99, "runner_version": "9.0.0", "state": "finished"}))
    (newer / records.RESULTS_FILE).write_text(json.dumps({"schema": 99, "cell_id": "x"}) + "\n")

    done = publish(results, tmp_path / "site")

    assert done.unreadable == ("20261130-000000",)
    page = (tmp_path / "site" / "runs" / "20261130-000000" / "index.html").read_text()
    assert "results schema 99 is newer than this runner reads" in page and "cudnn-matrix 9.0.0" in page


def test_publish_refuses_a_folder_it_did_not_make(tmp_path, capsys):
    copy_stored(tmp_path / "results")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.tex").write_text("mine")

    with pytest.raises(UserError, match="a folder that publish did not make"):
        publish(tmp_path / "results", tmp_path / "notes")
    assert cli.main(["publish", "--results", str(tmp_path / "nothing"), "-o", str(tmp_path / "site")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert (tmp_path / "notes" / "thesis.tex").read_text() == "mine"


def test_the_cli_publishes_and_says_where(tmp_path, capsys):
    copy_stored(tmp_path / "results")

    assert cli.main(["publish", "--results", str(tmp_path / "results"), "-o", str(tmp_path / "site")]) == 0

    out, err = capsys.readouterr()
    assert out == f"Site: {tmp_path / 'site' / 'index.html'} ({(tmp_path / 'site' / 'index.html').as_uri()})\n"
    assert "2 run(s) rendered, 0 unchanged, 0 removed" in err
    assert (tmp_path / "site" / STATE_FILE).is_file()


def test_run_ends_by_naming_the_publish_command(tmp_path, monkeypatch, capsys):
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(fault_workloads("mnist") + 'cpu:\n  tensorflow: ["2.21"]\nbuild:\n  ca_certificates: []\n')
    monkeypatch.setitem(executors.REGISTRY, "docker", lambda wanted: FakeExecutor(no_gpu="no GPU here"))

    cli.main(["run", "-f", str(matrix), "-k", "cpu-tf2.21-mnist", "--results", str(tmp_path / "results")])

    out = capsys.readouterr().out
    assert out.splitlines()[-1] == f"Site: python -m runner publish --results {tmp_path / 'results'}"


def test_file_names_made_from_ids_stay_in_their_folder_and_apart():
    assert file_name("gpu-cuda12.6-cudnn9.3-tf2.21-dogs-vs-cats") == "gpu-cuda12.6-cudnn9.3-tf2.21-dogs-vs-cats"
    made = [file_name(text) for text in ("..", ".", "../x", "a/b", "a b", "a_b", "<script>", "", "-x", "é")]
    assert len(set(made)) == len(made)
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) and ".." not in name for name in made)


# --- The site and the terminal say the same verdicts: both render one analysis; these tests read both outputs to check it.
# On the stored runs and the constructed ones: every verdict of a run page's verdicts table is the one the text report
# gives the same pair, in its tables (speed-ups) or its sentences (GPU vs CPU, cuDNN steps), and the page has every
# sentence and every cell not measured, with its reason, that the terminal has.

DEMO_RUNS = ("20261120-090000", "20261121-140000", "20261124-090000", "20261125-140000", "20261127-090000")  # site_runs.demo
WORDS = {"faster": "faster", "slower": "slower", "same within 5%": "same"}  # anything else: no difference shown, or "needs ~N repeats"


def verdict_of(words: str) -> str:
    return WORDS.get(words, "no_difference")


@pytest.fixture(scope="module")
def runs(published, wide):
    """(run id, its published page, its text report, its analysis) for the stored runs, the demo's and the wide one."""
    pages = [(published.site.parent / "results" / run_id, published.site / "runs" / run_id / "index.html")
             for run_id in [*STORED, *DEMO_RUNS]] + [(wide.parents[3] / "results" / site_runs.WIDE_RUN, wide)]
    return [(folder.name, page.read_text(), report.render(records.load(folder)), analyze(records.load(folder))) for folder, page in pages]


def terminal_verdicts(text: str) -> dict[tuple[str, str], str]:
    """(cell, question) -> verdict: speed-ups from the narrow tables, GPU vs CPU from the sentences."""
    found = {}
    for table in re.finditer(r"^(\S+) \(speed-ups against \S+\):\n((?:\|.*\n?)+)", text, re.MULTILINE):
        workload = table.group(1)
        for line in table.group(2).splitlines()[2:]:
            cell, _, _, _, words = (part.strip() for part in line.strip("|").split("|"))
            if words != "-":
                found[(f"{cell}-{workload}", "speed-up")] = verdict_of(words)
    for gpu, words in re.findall(r"the GPU \((\S+)\) is [0-9.]+x the .*?: ([a-z ]+?(?: within 5%)?)(?: \((?:not comparable|needs).*)?\.$", text, re.MULTILINE):
        found[(gpu, "GPU vs CPU")] = verdict_of(words)
    return found


def page_rows(page: str) -> list[tuple[str, str, str, str]]:
    """The verdicts table's rows: (question, cell, baseline, verdict)."""
    table = page.split('id="verdicts"')[1].split("</table>")[0] if "<h2>Verdicts</h2>" in page else ""
    rows = re.findall(r"<tr><td>([^<]+)</td><td class=\"id\"><a [^>]+>([^<]+)</a>.*?verdict-([a-z_]+).*?<td class=\"id\"><a [^>]+>([^<]+)</a>",
                      table, re.DOTALL)
    return [(html.unescape(q), html.unescape(cell), html.unescape(baseline), verdict) for q, cell, verdict, baseline in rows]


def test_every_run_page_gives_the_verdicts_the_text_report_gives(runs):
    checked = 0
    for run_id, page, text, _ in runs:
        said = terminal_verdicts(text)
        rows = page_rows(page)
        for question, cell, _, verdict in rows:
            if question in ("speed-up", "GPU vs CPU"):
                assert said[(cell, question)] == verdict, (run_id, question, cell)
                checked += 1
        assert sorted(key for key in said) == sorted((cell, q) for q, cell, _, _ in rows if q in ("speed-up", "GPU vs CPU")), run_id
        steps = [verdict for question, _, _, verdict in rows if question == "cuDNN step"]
        sentences = [line for line in text.splitlines() if ": cuDNN " in line and " vs " in line]
        assert [verdict_of(re.search(r": ([a-z ]+?(?: within 5%)?)(?: \((?:not comparable|needs).*)?\.$", line).group(1)) for line in sentences] == steps, run_id
        checked += len(steps)
    assert checked == 5 * 6 + 13  # the demo's five runs: 3 speed-ups, GPU vs CPU, 2 cuDNN steps each; the wide run's 8 + 1 + 4


def test_every_run_page_has_the_terminals_sentences_and_not_measured_cells(runs):
    for run_id, page, text, analysis in runs:
        words = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
        for sentence in (line for line in text.splitlines() if line.startswith("dogs-vs-cats: ")):
            assert sentence in html.unescape(page), (run_id, sentence)
        for group in analysis.notes.not_measured:
            assert group.reason in words and all(cell in words for cell in group.cells), (run_id, group)


# In the browser: Debian's chromium, headless, opening the site from disk as a reader does.


@pytest.fixture(scope="module")
def chromium():
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        missing_part("chromium", "CUDNN_MATRIX_REQUIRE_BROWSER", "apt-get install chromium")
    return found


def browse(chromium: str, page: Path, profile: Path, *options: str) -> str:
    """Chromium, headless, on a file:// URL; its stdout (the DOM for --dump-dom)."""
    done = subprocess.run([chromium, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--hide-scrollbars", "--disable-dev-shm-usage",
                           f"--user-data-dir={profile}", *options, page.as_uri()],
                          capture_output=True, text=True, timeout=BROWSER_SECONDS)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.browser
def test_the_index_lists_every_run_in_the_browser(chromium, published, tmp_path):
    dom = browse(chromium, published.index, tmp_path, "--dump-dom")

    for run_id in [*STORED, "20261120-090000", "20261127-090000", LIVE_RUN, HOSTILE_RUN]:
        assert f">{run_id.replace('<', '&lt;').replace('>', '&gt;')}</a>" in dom, run_id
    assert 'title="Sort by this column"' in dom  # site.js ran: the folder's own script loads from file:// under the page's CSP
    assert "<b onmouseover" not in dom


@pytest.mark.browser
def test_a_cell_page_in_the_browser_shows_the_cudnn_loaded(chromium, published, tmp_path):
    page = published.site / "runs" / "20261125-140000" / "cells" / f"{site_runs.GPU_IDS['9.8']}.html"

    dom = browse(chromium, page, tmp_path, "--dump-dom")

    assert re.search(r'<tr class="strong"><th scope="row">cuDNN loaded</th><td>\s*9\.8\.2', dom)
    assert site_runs.CUDNN_PATH in dom


@pytest.mark.browser
def test_hostile_pages_in_the_browser_hold_no_injected_elements(chromium, published, tmp_path):
    hostile = published.site / "runs" / file_name(HOSTILE_RUN)
    for page in (hostile / "index.html", hostile / "cells" / f"{file_name(TRAVERSING_CELL)}.html"):
        dom = browse(chromium, page, tmp_path, "--dump-dom")
        assert len(re.findall(r"<script\b", dom)) == 1 and "<img src=\"x\"" not in dom and "<svg" not in dom
        assert "&lt;script&gt;alert(" in dom


@pytest.mark.browser
@pytest.mark.parametrize("page", ["index.html", f"cells/{site_runs.GPU_IDS['9.8']}.html"])
def test_screenshots_are_pages_with_their_charts_not_blanks(chromium, published, tmp_path, page):
    shot = tmp_path / "shot.png"

    browse(chromium, published.site / page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,900")

    with Image.open(shot) as image:
        assert image.size == (1280, 900)
        pixels = image.convert("RGB")
        colours = pixels.getcolors(maxcolors=1 << 20)
    assert len(colours) > 200  # text, badges, lines: not a blank or an error page
    assert max(count for count, _ in colours) < 0.9 * 1280 * 900
    if page.startswith("cells/"):  # the chart's SVG loaded: the first host's line is Okabe-Ito blue
        blue = sum(count for count, (r, g, b) in colours if abs(r - 0x00) < 20 and abs(g - 0x72) < 20 and abs(b - 0xB2) < 20)
        assert blue > 200


# Measured in the page itself: the site's CSP runs no inline script, but a script file beside the page ('self') it does.
MEASURE_JS = """
window.addEventListener("load", () => {
  const found = {viewport: [window.innerWidth, window.innerHeight], tops: {}, rights: {}};
  for (const id of ["answer", "verdicts", "chart"]) {
    const element = document.getElementById(id);
    if (element) found.tops[id] = element.getBoundingClientRect().top;
  }
  for (const header of document.querySelectorAll("#verdicts thead th")) {
    found.rights[header.textContent.trim()] = header.getBoundingClientRect().right;
  }
  document.body.setAttribute("data-measured", JSON.stringify(found));
});
"""
FOLD = (1280, 800)


def measure(chromium: str, page: Path, profile: Path) -> dict:
    """Where the answer's parts lie on a 1280x800 screen: a copy of the page beside it, with one script file more."""
    script, measured = page.with_name("measure.js"), page.with_name("measured.html")
    script.write_text(MEASURE_JS)
    measured.write_text(page.read_text().replace("</head>", '<script src="measure.js"></script>\n</head>', 1))
    try:
        dom = browse(chromium, measured, profile, "--dump-dom", f"--window-size={FOLD[0]},{FOLD[1]}")
    finally:  # the site the other tests read stays as publish wrote it
        script.unlink()
        measured.unlink()
    found = re.search(r'data-measured="([^"]*)"', dom)
    assert found, "the measuring script did not run"
    return json.loads(html.unescape(found.group(1)))


def first_screen(chromium: str, page: Path, shot: Path) -> Image.Image:
    browse(chromium, page, shot.parent / "profile", f"--screenshot={shot}", f"--window-size={FOLD[0]},{FOLD[1]}")
    return Image.open(shot).convert("RGB")


def pixels_of(image: Image.Image, colour: str) -> int:
    """How many pixels of the first screen are this colour (within a few levels): a badge, a chart marker."""
    wanted = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return sum(count for count, rgb in image.getcolors(maxcolors=1 << 20) if all(abs(a - b) < 6 for a, b in zip(rgb, wanted)))


@pytest.mark.browser
@pytest.mark.parametrize("run_id", ["20261124-090000", site_runs.WIDE_RUN])
def test_the_verdicts_and_the_chart_are_on_the_first_screen_of_a_constructed_run(chromium, published, wide, tmp_path, run_id):
    page = wide if run_id == site_runs.WIDE_RUN else published.site / "runs" / run_id / "index.html"

    found = measure(chromium, page, tmp_path / "profile")

    # Headless Chromium's --dump-dom window keeps room for a toolbar, so the viewport is shorter than the window; the width,
    # which decides the layout, is the screen's, and a top measured unscrolled is the distance from the page's top.
    assert found["viewport"][0] == FOLD[0]
    assert 0 < found["tops"]["verdicts"] < FOLD[1] and 0 < found["tops"]["chart"] < FOLD[1], found
    assert all(found["rights"][column] <= FOLD[0] for column in ("speed-up", "95% interval", "verdict")), found["rights"]
    with first_screen(chromium, page, tmp_path / "shot.png") as screen:  # the page itself, as a reader opens it
        assert screen.size == FOLD
        assert pixels_of(screen, "#dff3ec") > 500  # the green of the "faster" verdicts


@pytest.mark.browser
def test_the_answer_and_the_chart_are_on_the_first_screen_of_a_stored_run(chromium, published, tmp_path):
    page = published.site / "runs" / STORED[0] / "index.html"  # one measured cell: its answer is a sentence, no pair to judge

    found = measure(chromium, page, tmp_path / "profile")

    assert "verdicts" not in found["tops"]
    assert 0 < found["tops"]["answer"] < found["tops"]["chart"] < FOLD[1] * 0.5, found
    with first_screen(chromium, page, tmp_path / "shot.png") as screen:
        assert pixels_of(screen, "#E69F00") > 30  # the chart's CPU marker, Okabe-Ito orange
