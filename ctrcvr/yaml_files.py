"""Reading YAML config text strictly: UTF-8, safe tags only, no key given twice in one mapping, and
every fault a :class:`~transforms.errors.UserError` naming the file and line.

PyYAML's ``safe_load`` keeps the last of two equal keys and reports syntax errors over several lines
with a ``<unicode string>`` position; :func:`parse_yaml` refuses the first and puts the second on one
line. It also returns the line of every key, so a validation error can point at it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import yaml

from transforms.errors import UserError

KeyLines = dict[tuple[str, ...], int]  # key path (strings, list items by index) -> its 1-based line


def read_text(path: Path, error=UserError) -> str:
    """A file's UTF-8 text; a directory, an unreadable or a non-UTF-8 file is an ``error`` naming it."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise error("is a directory, not a config file", file=path) from None
    except OSError as err:
        raise error(f"cannot read the file: {err.strerror or err}", file=path) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise error(f"not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); save the file as UTF-8",
                    file=path, line=line) from None


def parse_yaml(text: str, file, override: Optional[str] = None, key: Optional[str] = None,
               error=UserError) -> tuple[object, KeyLines]:
    """YAML text -> (data, the line of each key). A syntax error or a duplicate key is an ``error``
    naming ``file`` and the line, or, for the value of a ``--set`` item (``override``), the item."""
    loader = _UniqueKeyLoader(text)
    try:
        return loader.get_single_data(), loader.key_lines
    except _DuplicateKey as err:
        if override:
            raise error(f"--set {override!r}: the value gives key {err.key!r} twice", file=file, key=key) from None
        raise error(f"key given twice (first at line {err.first_line}); give each key once", file=file,
                    line=err.line, key=err.key) from None
    except yaml.YAMLError as err:
        problem = " ".join(str(getattr(err, "problem", None) or err).split())
        context = getattr(err, "context", None)
        detail = f"{problem} ({context})" if context else problem
        if override:
            raise error(f"--set {override!r}: the value is not valid YAML: {detail}", file=file, key=key) from None
        mark = getattr(err, "problem_mark", None)
        raise error(f"not valid YAML: {detail}", file=file, line=mark.line + 1 if mark else None) from None
    finally:
        loader.dispose()


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping and notes each key's line."""

    def get_single_data(self):
        node = self.get_single_node()
        self.key_lines: KeyLines = {}
        if node is None:
            return None
        _check_keys(node, (), self.key_lines)
        return self.construct_document(node)


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: str, line: int, first_line: int):
        super().__init__(key)
        self.key, self.line, self.first_line = key, line, first_line


def _check_keys(node, path: tuple[str, ...], lines: KeyLines) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may repeat keys on purpose
                continue
            name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            line = key_node.start_mark.line + 1
            if (key_node.tag, name) in seen:
                raise _DuplicateKey(".".join((*path, name)), line, seen[(key_node.tag, name)])
            seen[(key_node.tag, name)] = line
            lines[(*path, name)] = line
            _check_keys(value_node, (*path, name), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, str(i))] = item.start_mark.line + 1
            _check_keys(item, (*path, str(i)), lines)
