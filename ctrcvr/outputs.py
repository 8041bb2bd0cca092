"""Output directories that never overwrite what a user wrote without being asked."""
from __future__ import annotations

import shutil
from pathlib import Path


def prepare_output_dir(path, overwrite: bool = False) -> Path:
    """Creates ``path``; refuses a non-empty one unless ``overwrite``, which empties it first."""
    path = Path(path)
    if path.exists() and any(path.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{path} is not empty; choose another directory or pass --overwrite")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path
