"""The one error type for input a user can fix: a config, a data file, a request, a command-line value.

Every stage raises :class:`UserError` (or a subclass, e.g. ``ctrcvr.config.ConfigError``) with what was
wrong and, when known, where: the file, the line and the key. ``ctrcvr`` prints it as one line,
``ctrcvr <command>: error: <str(err)>``, and exits 2; anything else is a bug and keeps its traceback.

    raise UserError("expected an integer, got true", file="configs/x.yaml", key="train.epochs")
    # str(err) == "configs/x.yaml: train.epochs: expected an integer, got true"

This module is the ground floor (it imports nothing of the project), so every stage can raise it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union


class UserError(ValueError):
    """Bad input the user can fix. ``message`` says what is wrong (one line); ``file``, ``line``
    (1-based) and ``key`` (a dotted config key, a column, a request field) say where, when known.

    ``str(err)`` is ``file:line: key: message``, leaving out what is not known. A ``ValueError``, so
    code that catches those (pydantic validators, older callers) still does.
    """

    def __init__(self, message: str, *where, file: Union[str, Path, None] = None, line: Optional[int] = None,
                 key: Optional[str] = None):
        if where:  # (file, line, key) positionally: how Beam rebuilds an error it annotates, from ``args``
            file, line, key = (*where, None, None, None)[:3]
        self.message = " ".join(str(message).split()) if "\n" in str(message) else str(message)
        self.file = str(file) if file is not None else None
        self.line = line
        self.key = key
        super().__init__(self.message, self.file, self.line, self.key)

    def __str__(self) -> str:
        where = self.file or ""
        if where and self.line is not None:
            where = f"{where}:{self.line}"
        return ": ".join(part for part in (where, self.key, self.message) if part)

    def located(self, *, file=None, line=None, key=None) -> "UserError":
        """A copy with the location parts that are still unknown filled in (re-raise it ``from`` this),
        e.g. a reader that knows the file around a parser that knows the line."""
        return type(self)(self.message, file=self.file if self.file is not None else file,
                          line=self.line if self.line is not None else line,
                          key=self.key if self.key is not None else key)

    def __reduce__(self):  # picklable (Beam workers send errors back), keyword fields included
        return _rebuild, (type(self), self.message, self.file, self.line, self.key)


def did_you_mean(name: str, known) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known`` to a mistyped ``name``, or ``""``: the hint every
    registry lookup and config check appends to its error."""
    import difflib
    close = difflib.get_close_matches(str(name), list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _rebuild(cls, message, file, line, key):
    return cls(message, file=file, line=line, key=key)


def reject_bool_as_number(annotation, value):
    """``value`` unchanged, unless it holds a bool where ``annotation`` wants a number: YAML ``true`` is
    not 1, though pydantic's lax mode reads it so (``ValueError``, e.g. "expected an integer, got true").
    Containers (``list[int]``, ``tuple[float, float]``, ``dict[str, int]``) are checked item by item."""
    expected = _bool_mismatch(annotation, value)
    if expected:
        raise ValueError(f"expected {expected}, got {str(value).lower() if isinstance(value, bool) else repr(value)}")
    return value


_NUMBER_NAMES = {int: "an integer", float: "a number"}


def _bool_mismatch(annotation, value) -> Optional[str]:
    import types
    import typing
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _bool_mismatch(args[0], value)
    if origin in (Union, types.UnionType):
        arms = [a for a in args if a is not type(None)]
        if isinstance(value, bool):
            if any(a is bool or a is typing.Any or _literal_bool(a) for a in arms):
                return None
            numbers = [_NUMBER_NAMES[a] for a in arms if a in _NUMBER_NAMES]
            return " or ".join(numbers) if numbers else None
        found = [_bool_mismatch(a, value) for a in arms if typing.get_origin(a) in (list, tuple, set, dict)]
        return next((f for f in found if f), None)
    if isinstance(value, bool):
        return _NUMBER_NAMES.get(annotation)
    if origin in (list, set, frozenset) and isinstance(value, (list, tuple, set)) and args:
        return next((f for f in (_bool_mismatch(args[0], v) for v in value) if f), None)
    if origin is tuple and isinstance(value, (list, tuple)) and args:
        items = args if not (len(args) == 2 and args[1] is Ellipsis) else (args[0],) * len(value)
        return next((f for f in (_bool_mismatch(a, v) for a, v in zip(items, value)) if f), None)
    if origin is dict and isinstance(value, dict) and len(args) == 2:
        return next((f for f in (_bool_mismatch(args[1], v) for v in value.values()) if f), None)
    return None


def _literal_bool(annotation) -> bool:
    import typing
    return typing.get_origin(annotation) is typing.Literal and any(
        isinstance(a, bool) for a in typing.get_args(annotation))
