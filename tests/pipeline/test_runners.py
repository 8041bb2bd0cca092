"""Runners: Dataflow options assembled from configs/dataflow.yaml (no cloud call), the package that
setup.py ships to workers, and a real local-multiprocess run."""
import tarfile
import tempfile
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import (GoogleCloudOptions, SetupOptions, StandardOptions,
                                                  WorkerOptions)
from apache_beam.runners.portability.stager import Stager

from ctrcvr.config import load_config
from pipeline import runners
from tests.pipeline.helpers import BAD_CONFIG, GOOD_IDS, REPO, read_split, run_job

DATAFLOW = REPO / "configs" / "dataflow.yaml"


def test_dataflow_options_come_from_the_overlay():
    options = runners.pipeline_options(load_config(DATAFLOW).preprocess, job_name="ctrcvr-test")
    cloud, std, workers, setup = (options.view_as(c) for c in (GoogleCloudOptions, StandardOptions, WorkerOptions,
                                                                SetupOptions))
    assert std.runner == "DataflowRunner"
    assert (cloud.project, cloud.region, cloud.job_name) == ("my-gcp-project", "europe-west1", "ctrcvr-test")
    assert cloud.temp_location == "gs://my-bucket/ctrcvr/tmp"
    assert cloud.staging_location == "gs://my-bucket/ctrcvr/staging"
    assert (workers.machine_type, workers.max_num_workers) == ("n2-standard-4", 20)
    assert setup.setup_file == "./setup.py" and not setup.save_main_session
    assert "use_runner_v2" in options.get_all_options()["experiments"]
    assert not runners.is_local(load_config(DATAFLOW).preprocess)


def test_a_container_image_replaces_setup_py_and_missing_settings_are_named():
    image = "europe-docker.pkg.dev/p/ctrcvr/worker:1"
    config = load_config(DATAFLOW, [f"preprocess.dataflow.sdk_container_image={image}",
                                    "preprocess.dataflow.staging_location=null"])
    options = runners.pipeline_options(config.preprocess).get_all_options()
    assert options["sdk_container_image"] == image and options["setup_file"] is None
    assert options["staging_location"] == "gs://my-bucket/ctrcvr/tmp/staging"
    broken = load_config(DATAFLOW, ["preprocess.dataflow.project=null", "preprocess.dataflow.region=null"])
    with pytest.raises(ValueError, match="preprocess.dataflow.project, preprocess.dataflow.region"):
        runners.pipeline_options(broken.preprocess)


def test_setup_py_ships_every_package_the_workers_import():
    """Builds the package exactly as Beam's stager does for --setup_file, and looks inside."""
    with tempfile.TemporaryDirectory() as temp:
        sdist = Stager._build_setup_package(str(REPO / "setup.py"), temp)
        with tarfile.open(sdist) as tar:
            names = {Path(*Path(n).parts[1:]).as_posix() for n in tar.getnames()}
    for module in ("ctrcvr/config.py", "pipeline/job.py", "pipeline/sink.py", "pipeline/sources/aliccp.py",
                   "pipeline/simulators/exposures.py", "transforms/schema.py", "transforms/preprocessing.py",
                   "transforms/vocabulary.py", "trainer/model/layers.py", "setup.py"):
        assert module in names, module
    assert not any(n.startswith("tests/") for n in names)


def test_local_multiprocess_runs_a_tiny_job_end_to_end(tmp_path):
    config = BAD_CONFIG.model_copy(deep=True)
    config.preprocess.runner = "local-multiprocess"
    config.preprocess.num_workers = 2
    assert runners.pipeline_options(config.preprocess).get_all_options()["direct_running_mode"] == "multi_processing"
    report, _ = run_job(config, tmp_path / "out")
    assert report["reconciled"] and report["rows_read"] == 19 and report["rows_written"] == len(GOOD_IDS)
    written = read_split(tmp_path / "out", "train").get("exposure_id", []) + \
        read_split(tmp_path / "out", "eval").get("exposure_id", [])
    assert set(written) == GOOD_IDS
