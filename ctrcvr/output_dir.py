"""The one output-directory guard: nothing a user wrote is overwritten without being asked.

Every command that writes a directory (simulate, preprocess, train, run, compare, ...) passes it
through :func:`prepare_output_dir` before a stage writes into it; the stages themselves never guard.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Union


def prepare_output_dir(path, overwrite: bool = False) -> Union[Path, str]:
    """Creates ``path``; refuses a non-empty one unless ``overwrite``, which empties it first.

    ``path`` is a local directory (returned as a ``Path``) or a Beam filesystem URI such as
    ``gs://bucket/run`` (checked and emptied the same way, returned as a string).
    """
    if "://" in str(path):
        return _prepare_remote(str(path).rstrip("/"), overwrite)
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a directory; choose a directory")
    if path.exists() and any(path.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{path} is not empty; choose another directory or pass --overwrite")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _prepare_remote(root: str, overwrite: bool) -> str:
    from apache_beam.io.filesystems import FileSystems
    existing = [m.path for r in FileSystems.match([f"{root}/**"]) for m in r.metadata_list]
    if existing and not overwrite:
        raise FileExistsError(f"{root} is not empty; choose another directory or pass --overwrite")
    if existing:
        FileSystems.delete(existing)
    return root
