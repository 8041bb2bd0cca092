"""The package as a user installs it: a wheel built from this checkout, installed into a fresh venv
outside it, run from an empty folder, finds its shipped configs by name.

The fresh venv gets the wheel (``--no-deps``) and borrows the already-installed dependencies of the
test environment through a plain path entry, so nothing is downloaded and the checkout is not on
the path: ``ctrcvr`` is imported from the wheel's files.
"""
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY_RUN = ["simulate.n_exposures=3000", "simulate.n_users=100", "simulate.n_items=50", "simulate.chunk_rows=3000",
            "train.epochs=1", "train.batch_size=256", "preprocess.num_shards=1", "run_models=[]",
            "export.warmup_examples=2"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv python, ctrcvr script, environment) of a fresh venv holding only the built wheel."""
    root = tmp_path_factory.mktemp("wheel")
    # no PYTHONPATH: a checkout on it would make pip believe ctrcvr is installed already (its egg-info)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(root / "dist"), str(REPO)], check=True, cwd=root, capture_output=True, env=env)
    wheel = next((root / "dist").glob("ctrcvr-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, env=env)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    str(wheel)], check=True, capture_output=True, env=env)
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True, env=env).strip())
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env.update(TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    return python, venv / "bin" / "ctrcvr", env


def test_the_wheel_ships_the_configs_and_ctrcvr_comes_from_it(installed, tmp_path):
    python, ctrcvr, env = installed
    where = subprocess.check_output([str(python), "-c", "import ctrcvr, ctrcvr.config as c; "
                                     "print(ctrcvr.__file__); print(c.packaged_configs_dir())"],
                                    text=True, cwd=tmp_path, env=env).split()
    assert not where[0].startswith(str(REPO)) and "site-packages" in where[0], where
    assert Path(where[1]).name == "configs" and (Path(where[1]) / "default.yaml").is_file()
    listing = subprocess.run([str(ctrcvr), "configs"], text=True, cwd=tmp_path, env=env, capture_output=True)
    assert listing.returncode == 0, listing.stderr
    names = {line.split()[0] for line in listing.stdout.splitlines() if line and not line.startswith("(")}
    assert {"default", "compare", "aliccp", "c_ips", "survey_ipw", "dataflow"} <= names


def test_run_by_config_name_from_an_empty_folder(installed, tmp_path):
    _, ctrcvr, env = installed
    args = [str(ctrcvr), "run", "--config", "default", "--output-dir", "out", "--log-level", "WARNING"]
    for item in TINY_RUN:
        args += ["--set", item]
    done = subprocess.run(args, text=True, cwd=tmp_path, env=env, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "cvr_auc_clicked" in done.stdout
    assert list((tmp_path / "out" / "serving" / "esmm").glob("*/saved_model.pb"))
    resolved = (tmp_path / "out" / "config.resolved.yaml").read_text()
    assert "n_exposures: 3000" in resolved
    missing = subprocess.run([str(ctrcvr), "run", "--config", "defualt", "--output-dir", "x"], text=True,
                             cwd=tmp_path, env=env, capture_output=True)
    assert missing.returncode == 2 and "did you mean 'default'" in missing.stderr
