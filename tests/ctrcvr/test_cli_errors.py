"""The CLI's error contract: a fault the user can fix is ONE line, ``ctrcvr <command>: error: ...``, exit
code 2, and --debug (or --log-level DEBUG) adds its traceback; anything else keeps its traceback.
In process (``cli.main``), plus one real subprocess."""
import errno
import socket
import subprocess
import sys

import pytest
import yaml

from ctrcvr import cli
from tests.rest_client import ENV
from transforms.errors import UserError


def _main(capsys, *argv) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().err


def _error_line(stderr: str, command: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith(f"ctrcvr {command}: error: "), stderr
    return lines[0]


def test_a_config_fault_is_one_line_naming_the_config_given_and_the_override(capsys, tmp_path):
    config = tmp_path / "mine.yaml"
    config.write_text("extends: base.yaml\n")
    (tmp_path / "base.yaml").write_text("seed: 1\n")
    code, err = _main(capsys, "train", "--config", str(config), "--set", "train.epochs=true",
                      "--data-dir", "d", "--model-dir", "m")
    line = _error_line(err, "train")
    assert code == 2 and f"{config}: train.epochs: expected an integer, got true (from --set train.epochs=true)" in line
    code, err = _main(capsys, "evaluate", "--config", str(config), "--set", "train.epochs=[1,",
                      "--data-dir", "d", "--model-dir", "m")
    assert code == 2 and "--set 'train.epochs=[1,'" in _error_line(err, "evaluate") and str(config) in err


def test_debug_and_log_level_debug_add_the_traceback(capsys, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("extends: [a.yaml]\n")
    for flag in ("--debug", "--log-level=DEBUG"):
        code, err = _main(capsys, "simulate", "--config", str(config), "--output-dir", str(tmp_path / "o"), flag)
        assert code == 2 and "Traceback" in err and err.rstrip().splitlines()[-1].startswith("ctrcvr simulate: error: ")
        assert f"{config}:1: extends: expected the file name of one parent config" in err


@pytest.mark.parametrize("error, shown", [
    (UserError("bad value", file="a.csv", line=3, key="price"), "a.csv:3: price: bad value"),
    (FileExistsError("runs/x is not empty: pass --overwrite"), "runs/x is not empty: pass --overwrite"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/data/in.csv"), "/data/in.csv: No such file or directory"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "/data"), "/data: Is a directory"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/etc/hosts/x"), "/etc/hosts/x: Not a directory"),
    (PermissionError(errno.EACCES, "Permission denied", "/root/out"), "/root/out: Permission denied"),
    (yaml.YAMLError("mapping values are not allowed\n here"), "mapping values are not allowed here"),
    (OSError(errno.EADDRINUSE, "Address already in use"), "Address already in use"),
    (ValueError("data.train_files is empty"), "data.train_files is empty (--debug shows where)"),
    (KeyError("model.name: unknown estimator 'x'"), "model.name: unknown estimator 'x' (--debug shows where)"),
], ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None)
def test_every_user_fixable_error_is_one_line_with_exit_2(capsys, monkeypatch, tmp_path, error, shown):
    def fail(_args, _config):
        raise error
    monkeypatch.setattr(cli, "_train", fail)
    code, err = _main(capsys, "train", "--data-dir", _preprocess_output(tmp_path), "--model-dir", "m")
    assert code == 2 and _error_line(err, "train") == f"ctrcvr train: error: {shown}"


def test_an_unexpected_error_keeps_its_traceback(capsys, monkeypatch, tmp_path):
    def fail(_args, _config):
        raise RuntimeError("a bug")
    monkeypatch.setattr(cli, "_train", fail)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["train", "--data-dir", _preprocess_output(tmp_path), "--model-dir", "m"])


def _preprocess_output(root) -> str:
    """A directory with what marks a finished preprocess output (what ``--data-dir`` is checked for)."""
    out = root / "data" / "transformed"
    for part in ("transform_fn", "transformed_metadata"):
        (out / part).mkdir(parents=True)
    (out / "_SUCCESS").write_text("")
    return str(out)


def test_a_data_dir_that_is_no_preprocess_output_is_one_line_before_anything_is_written(capsys, tmp_path):
    real = _preprocess_output(tmp_path)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "transform_fn").mkdir()
    for given, expected in [(tmp_path / "nope", "does not exist"),
                            (tmp_path, f"is not a preprocess output (no transform_fn/ and transformed_metadata/); "
                                       f"did you mean {real}?"),
                            (tmp_path / "half", "is an unfinished preprocess output (no _SUCCESS)")]:
        code, err = _main(capsys, "compare", "--config", "ratings_mf", "--output-dir", str(tmp_path / "out"),
                          "--data-dir", str(given))
        assert code == 2 and _error_line(err, "compare") == f"ctrcvr compare: error: --data-dir: {given} {expected}"
        code, err = _main(capsys, "train", "--data-dir", str(given), "--model-dir", str(tmp_path / "m"))
        assert code == 2 and expected in _error_line(err, "train")
    assert not (tmp_path / "out").exists() and not (tmp_path / "m").exists()


def test_serve_on_a_port_in_use_names_host_and_port_before_loading_models(capsys, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = _main(capsys, "serve", "--model-dir", str(tmp_path), "--port", str(port))
    assert code == 2 and _error_line(err, "serve") == (
        f"ctrcvr serve: error: cannot listen on 127.0.0.1:{port}: the address is already in use "
        "(is a server running there? choose another --port)")


def test_serve_and_serve_check_name_a_directory_without_models(capsys, tmp_path):
    code, err = _main(capsys, "serve", "--model-dir", str(tmp_path / "nope"), "--port", "0")
    assert code == 2 and f"{tmp_path / 'nope'}: no such directory" in _error_line(err, "serve")
    code, err = _main(capsys, "serve-check", str(tmp_path))
    assert code == 2 and f"{tmp_path}: neither a SavedModel version directory" in _error_line(err, "serve-check")


def test_a_real_run_prints_one_line_and_exits_2(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  epochs: 1\n  epochs: 2\n")
    proc = subprocess.run([sys.executable, "-m", "ctrcvr.cli", "train", "--config", str(config), "--data-dir", "d",
                           "--model-dir", "m"], env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == (
        f"ctrcvr train: error: {config}:3: train.epochs: key given twice (first at line 2); give each key once")
