"""The strict YAML reader: a matrix file's text to plain data, and the one-line errors that name where a value stands.

A matrix is plain data. Tags, anchors and aliases, deep nesting, keys given twice and keys that
are not names are refused while reading; a file too big or not UTF-8 is refused unread. Every
refusal is one UserError line: file, line where YAML knows it, key path, what was expected.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from pathlib import Path
from typing import Any

import yaml

from runner.errors import UserError

MAX_MATRIX_BYTES = 1024 * 1024
MAX_NESTING = 20  # a matrix nests 4 deep; PyYAML recurses once per level and would overflow Python's stack
SHOWN_CHARACTERS = 60  # of a value an error line quotes: the line stays readable whatever was given

_MISSING = object()


class Document:
    """The parsed file plus where each key stands in it, for error lines."""

    def __init__(self, path: Path, lines: dict[tuple, int]):
        self.path = path
        self.lines = lines

    def error(self, key_path: tuple, expected: str, got: Any = _MISSING, found: str | None = None) -> UserError:
        """One line: file:line: key.path: expected X, got Y (found overrides the description of got)."""
        line = self.lines.get(key_path)
        where = f"{self.path}:{line}" if line else str(self.path)
        message = f"{where}: {dotted(key_path) or '(top level)'}: expected {expected}"
        if found is not None:
            message += f", got {found}"
        elif got is not _MISSING:
            message += f", got {describe(got)}"
        return UserError(message)

    def mapping(self, value: Any, key_path: tuple, required: set[str], optional: set[str]) -> dict:
        if not isinstance(value, dict):
            raise self.error(key_path, "a mapping", value)
        allowed = required | optional
        for key in value:
            if not isinstance(key, str) or key not in allowed:
                close = difflib.get_close_matches(key, sorted(allowed), n=1) if isinstance(key, str) else []
                listed = ", ".join(sorted(allowed))
                expected = f"one of {listed}" if len(listed) <= 120 or not close else "a known key"
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.error(key_path + (key,), expected + hint, found=f"unknown key {shown(key)}")
        for key in sorted(required - set(value)):
            raise self.error(key_path + (key,), "this key to be present")
        return value

    def integer(self, value: Any, key_path: tuple, minimum: int, maximum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise self.error(key_path, f"a whole number from {minimum} to {maximum}", value)
        return value

    def boolean(self, value: Any, key_path: tuple) -> bool:
        if not isinstance(value, bool):
            raise self.error(key_path, "true or false", value)
        return value

    def choice(self, value: Any, key_path: tuple, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.error(key_path, f"one of {', '.join(choices)}", value)
        return value

    def named_path(self, text: str, key_path: tuple, base_dir: Path, expected: str) -> tuple[Path, os.stat_result | None]:
        """A path the file names: ~ as a shell expands it, else relative to the file's folder; and what is there now (None: nothing yet)."""
        try:
            path = (base_dir / Path(text).expanduser()).resolve()
            return path, path.stat()
        except FileNotFoundError:
            return path, None
        except (OSError, RuntimeError) as error:  # a symlink loop (RuntimeError before Python 3.13), a name too long, a file on the way
            reason = "a symlink loop" if isinstance(error, RuntimeError) else error.strerror or str(error)
            raise self.error(key_path, expected, found=f"{shown(text)} ({reason})")

    def string(self, value: Any, key_path: tuple, pattern: re.Pattern, what: str) -> str:
        if isinstance(value, float):
            raise self.error(key_path, f"{what} (YAML reads an unquoted 12.10 as 12.1)", value)
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise self.error(key_path, what, value)
        return value


def read_strict_yaml(path: Path) -> tuple[Any, Document]:
    """The file's data, and the Document that words the errors about it."""
    data, lines = _parse_yaml(path, _read_matrix(path))
    return data, Document(path, lines)


def _read_matrix(path: Path) -> str:
    """The file's text, reading at most one byte past the limit: a huge file (or a pipe that never ends) is refused unread."""
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_MATRIX_BYTES + 1)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read the matrix file: {getattr(error, 'strerror', None) or error}")
    if len(raw) > MAX_MATRIX_BYTES:
        raise UserError(f"{path}: over {MAX_MATRIX_BYTES} bytes; a matrix file is expected to be under {MAX_MATRIX_BYTES} bytes")
    return text


def _parse_yaml(path: Path, text: str) -> tuple[Any, dict[tuple, int]]:
    try:
        # First, so that the recursive parser below never sees deep nesting.
        _refuse_tags_aliases_and_deep_nesting(path, text)
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            lines: dict[tuple, int] = {}
            if node is not None:
                _record_lines(path, node, (), lines)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.reader.ReaderError as error:  # a character YAML does not take, such as NUL: it has no mark
        line = text.count("\n", 0, error.position) + 1
        raise UserError(f"{path}:{line}: not valid YAML: the character U+{error.character:04X} is not allowed (YAML takes printable characters only)")
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UserError(f"{where}: not valid YAML: {error.problem or error.context}")
    except (yaml.YAMLError, ValueError, TypeError) as error:
        raise UserError(f"{path}: not valid YAML: {str(error).splitlines()[0]}")
    return data, lines


_OPENING = (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken, yaml.FlowMappingStartToken, yaml.FlowSequenceStartToken)
_CLOSING = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def _refuse_tags_aliases_and_deep_nesting(path: Path, text: str) -> None:
    """A matrix is plain data: tags (!!python/..., !!int), anchors/aliases (alias bombs) and deep nesting are refused.

    The scanner is iterative, so nesting is counted here on its tokens before the recursive parser runs.
    """
    depth = 0
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, yaml.TagToken):
            raise UserError(f"{path}:{token.start_mark.line + 1}: YAML tags such as {''.join(token.value)} are not allowed: write the plain value")
        if isinstance(token, (yaml.AnchorToken, yaml.AliasToken)):
            raise UserError(f"{path}:{token.start_mark.line + 1}: YAML anchors and aliases (&{token.value}, *{token.value}) are not allowed: write the value out")
        depth += isinstance(token, _OPENING) - isinstance(token, _CLOSING)
        if depth > MAX_NESTING:
            raise UserError(f"{path}:{token.start_mark.line + 1}: nested more than {MAX_NESTING} levels deep; a matrix nests 4")


def _record_lines(path: Path, node: yaml.Node, key_path: tuple, lines: dict[tuple, int]) -> None:
    """Map each key path to its 1-based line, and refuse keys given twice (YAML keeps the last silently)."""
    lines[key_path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                got = shown(key_node.value) if isinstance(key_node, yaml.ScalarNode) else f"a {key_node.id}"
                raise UserError(f"{path}:{key_node.start_mark.line + 1}: {dotted(key_path) or '(top level)'}: expected keys that are plain names, got {got}")
            if key in seen:
                raise UserError(f"{path}:{key_node.start_mark.line + 1}: {dotted(key_path + (key,))}: given twice")
            seen.add(key)
            _record_lines(path, value_node, key_path + (key,), lines)
            lines[key_path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(path, item, key_path + (index,), lines)


def dotted(key_path: tuple) -> str:
    text = ""
    for part in key_path:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part if part.bit_length() <= 64 else shown(part)}]"
        else:
            plain = isinstance(part, str) and part.isprintable() and len(part) <= SHOWN_CHARACTERS
            name = part if plain else shown(part)  # a key with a newline must not break the line, nor a long one fill it
            text += f".{name}" if text else name
    return text



def shown(value: Any, limit: int = SHOWN_CHARACTERS) -> str:
    """A value as an error line quotes it: its repr, cut to limit characters; a number too long to print, by its size."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"a number of about {int(value.bit_length() * math.log10(2)) + 1} digits"  # str() refuses past 4300 digits
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int) and value.bit_length() > 200:
        return shown(value)
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {shown(value)}"
    return f"a {'list' if isinstance(value, list) else 'mapping' if isinstance(value, dict) else type(value).__name__}"
