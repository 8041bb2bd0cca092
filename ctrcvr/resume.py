"""Re-running an interrupted ``ctrcvr train`` (or ``run``) resumes it: the model dir is the unit of resume.

A model dir holds ``config.resolved.yaml`` from the start, Keras' ``BackupAndRestore`` checkpoint under
``backup/`` after every epoch, and ``_SUCCESS`` once the final weights are saved. What a command does
with a model dir that already exists (:func:`prepare_model_dir`):

    finished (``_SUCCESS``)                    refused; ``--overwrite`` trains again from scratch
    unfinished, the same resolved config       resumed from the backup's last epoch (logged); with
                                               ``--overwrite`` the backup is deleted, with a warning
    unfinished, another config                 refused, naming the keys that differ; ``--overwrite``
                                               deletes it (and its backup), with a warning
    anything else that is not empty            refused unless ``--overwrite`` (``ctrcvr.output_dir``)
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Optional

import yaml

from ctrcvr.output_dir import SUCCESS, check_outside_inputs, prepare_output_dir
from transforms.errors import UserError

log = logging.getLogger("ctrcvr")
RESOLVED_CONFIG = "config.resolved.yaml"
BACKUP = "backup"
_EPOCH_KEY = "ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE"


def prepare_model_dir(config, model_dir, overwrite: bool = False, inputs: Iterable = ()) -> Optional[int]:
    """Readies ``model_dir`` for training ``config``; returns the number of epochs a resumed training
    has done (None: a fresh start). See the module docstring for the cases."""
    check_outside_inputs(model_dir, inputs)
    path = Path(model_dir)
    saved = _saved_config(path)
    if saved is None or (path / SUCCESS).exists():
        if (path / SUCCESS).exists() and not overwrite:
            raise UserError("holds a finished training; choose another directory or pass --overwrite to train "
                            "again", file=str(path))
        prepare_output_dir(path, overwrite)
        return None
    done = backup_epochs(path)
    differ = _differences(saved, config.model_dump(mode="json"))
    progress = f"{done} epoch(s) done" if done is not None else "no epoch finished"
    if differ and not overwrite:
        raise UserError(f"holds an unfinished training of another config ({progress}; differs in "
                        f"{', '.join(differ[:5])}{' ...' if len(differ) > 5 else ''}); re-run with that config to "
                        "resume it, or pass --overwrite to delete it and its backup", file=str(path))
    if overwrite:
        log.warning("--overwrite: deleting the unfinished training in %s (%s) and its backup%s", path, progress,
                    "" if differ else "; without --overwrite the same command resumes it")
        prepare_output_dir(path, overwrite=True)
        return None
    log.info("resuming the unfinished training in %s from its backup (%s)", path, progress)
    return done or 0


def backup_epochs(model_dir) -> Optional[int]:
    """How many epochs the ``BackupAndRestore`` backup in ``model_dir`` has finished, or None (no backup)."""
    backup = Path(model_dir) / BACKUP
    if not backup.is_dir():
        return None
    import tensorflow as tf
    for folder in (backup, *sorted(p for p in backup.iterdir() if p.is_dir())):
        latest = tf.train.latest_checkpoint(str(folder))
        if latest:
            return int(tf.train.load_variable(latest, _EPOCH_KEY)) + 1
    return None


def mark_finished(model_dir) -> None:
    (Path(model_dir) / SUCCESS).write_text("")


def _saved_config(path: Path) -> Optional[dict]:
    file = path / RESOLVED_CONFIG
    if not file.is_file():
        return None
    try:
        return yaml.safe_load(file.read_text())
    except yaml.YAMLError:
        return None


def _differences(a, b, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two resolved configs."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [k for key in dict.fromkeys([*a, *b])
                for k in _differences(a.get(key), b.get(key), f"{prefix}{key}.")]
    return [] if a == b else [prefix.rstrip(".")]
