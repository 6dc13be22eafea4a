"""Make docs/site-index.png, site-run.png, site-cell.png and site-across-runs.png, the README's pictures of the site.

They show the tests' constructed runs (tests/site_runs.py: a week on a workstation and a cluster node,
numbers made up), published as `python -m runner publish` does and photographed by headless Chromium.

    .venv/bin/python docs/screenshots.py      (needs chromium: apt-get install chromium)
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent / "tests"))

import site_runs  # noqa: E402  (the tests' constructed runs)
from runner.site import publish  # noqa: E402

SHOTS = {
    "site-index.png": ("index.html", (1280, 620)),
    "site-run.png": ("runs/20261124-090000/index.html", (1280, 800)),  # a run's first screen: its answer
    "site-cell.png": (f"runs/20261125-140000/cells/{site_runs.GPU_IDS['9.8']}.html", (1280, 820)),
    "site-across-runs.png": (f"cells/{site_runs.GPU_IDS['9.8']}.html", (1280, 700)),
}


def main() -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("no chromium: apt-get install chromium")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        os.chdir(work)  # the index names the results folder as given: "results", as `publish` does by default
        site_runs.demo(Path("results"))
        site = publish(Path("results"), Path("site")).site.resolve()
        for name, (page, (width, height)) in SHOTS.items():
            shot = work / name
            subprocess.run([chromium, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", f"--user-data-dir={work / 'profile'}",
                            f"--screenshot={shot}", f"--window-size={width},{height}", (site / page).as_uri()],
                           check=True, capture_output=True, timeout=60)
            with Image.open(shot) as image:  # 256 colours are plenty for text and flat charts, at a third of the size
                image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(DOCS / name, optimize=True)
            print(f"{DOCS / name}: {(DOCS / name).stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
