"""Output files a command is asked for (-o, --plot): checked before any work is done, and never left half written."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from runner.errors import UserError


def check_writable(path: Path | None, option: str, formats: tuple[str, ...] = ()) -> None:
    """Refuse an output path that cannot be written before any work is done, in one line."""
    if path is None:
        return
    if formats and path.suffix.lower() not in formats:
        raise UserError(f"{option} {path}: expected a file name ending in {', '.join(formats)}")
    folder = path.parent
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder; expected a file name")
    if not folder.is_dir():
        raise UserError(f"{option} {path}: no folder {folder} to write it in")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"{option} {path}: permission denied")
    try:  # what access() cannot tell: a folder such as /proc, or a read-only file system, takes no new file even from root
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as error:
        raise UserError(f"{option} {path}: cannot write it ({error.strerror or error})")


def check_folder(folder: Path, option: str) -> None:
    """A folder an option writes files into (build --save): made if missing, and probed with a file, before any work is done."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".", suffix=".probe"):
            pass
    except OSError as error:
        raise UserError(f"{option} {folder}: cannot write there ({error.strerror or error})")


@contextmanager
def written(path: Path, option: str):
    """A partial file beside path, moved into place once complete: never half a report or chart."""
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield partial
        os.replace(partial, path)
    except OSError as error:
        raise UserError(f"{option} {path}: cannot write it ({error.strerror or error})")
    finally:
        partial.unlink(missing_ok=True)
