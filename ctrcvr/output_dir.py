"""The one output-directory guard and the one atomic writer: nothing a user wrote is overwritten without
being asked, no input is ever inside an output, and an output that looks complete is complete.

    prepare_output_dir(path, overwrite, inputs)     refuse or empty ``path``, then create it (in place)
    atomic_output_dir(path, overwrite, inputs)      a context manager: the stage writes into a temporary
                                                    sibling, renamed to ``path`` only when it succeeds
    check_outside_inputs(path, inputs)              an output that is, contains or lies in an input is refused
    is_complete(path) / require_complete(path)      the ``_SUCCESS`` marker every finished stage writes last

Every command that writes a directory passes it, with the command's inputs, through one of these
before a stage writes into it; the stages themselves never guard.

Local directories are atomic by rename: the stage writes ``<parent>/.<name>.partial-<pid>/``; on success
``_SUCCESS`` is written last and the directory is renamed to ``<name>`` (an old one, with
``overwrite``, is deleted only then); on failure it is renamed to ``<name>.failed/`` (kept for
inspection, e.g. its ``rejects/``) and the error says so. Object stores (``gs://``) have no atomic
rename of a directory: the stage writes in place and ``_SUCCESS`` last, and readers check it
(:func:`require_complete`).
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path
from typing import Iterable, Iterator, Union

from transforms.errors import UserError

log = logging.getLogger("ctrcvr")
SUCCESS = "_SUCCESS"
FAILED_SUFFIX = ".failed"
PARTIAL = ".partial-"


def prepare_output_dir(path, overwrite: bool = False, inputs: Iterable = ()) -> Union[Path, str]:
    """Creates ``path``; refuses a non-empty one unless ``overwrite``, which empties it first, and one
    that is, contains or lies inside any of ``inputs`` (always, before anything is deleted).

    ``path`` is a local directory (returned as a ``Path``) or a Beam filesystem URI such as
    ``gs://bucket/run`` (checked and emptied the same way, returned as a string).
    """
    check_outside_inputs(path, inputs)
    if "://" in str(path):
        return _prepare_remote(str(path).rstrip("/"), overwrite)
    path = Path(path)
    _check_writable(path, overwrite)
    if path.exists() and any(path.iterdir()):
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_output_dir(path, overwrite: bool = False, inputs: Iterable = ()) -> Iterator[Union[Path, str]]:
    """Yields the directory a stage writes ``path``'s content into; see the module docstring.

    Refused as :func:`prepare_output_dir` refuses, before anything is written or deleted.
    """
    check_outside_inputs(path, inputs)
    if "://" in str(path):
        root = _prepare_remote(str(path).rstrip("/"), overwrite)
        yield root
        from pipeline.report import write_text
        write_text(f"{root}/{SUCCESS}", "")
        return
    final = Path(path)
    _check_writable(final, overwrite)
    _remove_stale_partials(final)
    partial = final.parent / f".{final.name}{PARTIAL}{os.getpid()}"
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException as err:
        failed = final.with_name(final.name + FAILED_SUFFIX)
        shutil.rmtree(failed, ignore_errors=True)
        partial.rename(failed)
        note = f"nothing was written to {final}; the partial output is in {failed} for inspection"
        log.error("%s", note)
        if isinstance(err, UserError):
            raise _with_note(err, note) from err
        raise
    (partial / SUCCESS).write_text("")
    if final.exists():
        shutil.rmtree(final)
    partial.rename(final)
    stale = final.with_name(final.name + FAILED_SUFFIX)
    if stale.exists():
        log.info("removing %s, left by an earlier failed run", stale)
        shutil.rmtree(stale, ignore_errors=True)


def check_outside_inputs(path, inputs: Iterable) -> None:
    """Refuses an output ``path`` that is, contains or lies inside an input (file or directory)."""
    if "://" in str(path):
        out = str(path).rstrip("/")
        for item in inputs:
            if item is None or "://" not in str(item):
                continue
            src = str(item).rstrip("/")
            if out == src or src.startswith(out + "/") or out.startswith(src + "/"):
                raise UserError(f"the output directory overlaps the input {src}; choose a directory outside it",
                                file=out)
        return
    out = Path(path).expanduser().resolve()
    for item in inputs:
        if item is None or "://" in str(item):
            continue
        src = Path(item).expanduser().resolve()
        if out == src or out in src.parents or src in out.parents:
            how = "is" if out == src else "contains" if out in src.parents else "lies inside"
            raise UserError(f"the output directory {how} the input {item}; writing there could delete it: "
                            "choose a directory outside every input", file=str(path))


def is_complete(path) -> bool:
    """Whether ``path`` holds a finished stage's output (its ``_SUCCESS`` marker)."""
    if "://" in str(path):
        from apache_beam.io.filesystems import FileSystems
        return FileSystems.exists(f"{str(path).rstrip('/')}/{SUCCESS}")
    return (Path(path) / SUCCESS).is_file()


def require_complete(path, what: str = "output") -> None:
    """Refuses to read an object-store ``path`` without ``_SUCCESS`` (a stage that did not finish).
    Local outputs are complete by construction (renamed into place), so they are not checked."""
    if "://" in str(path) and not is_complete(path):
        raise UserError(f"no {SUCCESS} marker: the {what} was not finished; run its stage again", file=str(path))


def _check_writable(path: Path, overwrite: bool) -> None:
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a directory; choose a directory")
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise FileExistsError(f"{path} is not empty; choose another directory or pass --overwrite")


def _remove_stale_partials(final: Path) -> None:
    """Partial outputs of ``final`` whose process is gone (killed mid-write)."""
    if not final.parent.is_dir():
        return
    for partial in final.parent.glob(f".{final.name}{PARTIAL}*"):
        pid = partial.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _with_note(err: UserError, note: str) -> UserError:
    try:
        return type(err)(f"{err.message} ({note})", file=err.file, line=err.line, key=err.key)
    except TypeError:  # a subclass with another constructor
        return UserError(f"{err.message} ({note})", file=err.file, line=err.line, key=err.key)


def _prepare_remote(root: str, overwrite: bool) -> str:
    from apache_beam.io.filesystems import FileSystems
    existing = [m.path for r in FileSystems.match([f"{root}/**"]) for m in r.metadata_list]
    if existing and not overwrite:
        raise FileExistsError(f"{root} is not empty; choose another directory or pass --overwrite")
    if existing:
        FileSystems.delete(existing)
    return root
