"""Beam runner selection: a thin mapping from the config's ``preprocess`` section to options.

``local`` runs in this process on Beam's FnApiRunner, the engine the DirectRunner switches to,
built directly (the DirectRunner would first consider Prism, which it tries to download, and
walk and translate the pipeline once more); ``local-multiprocess`` runs the same runner over
``num_workers`` worker processes; ``dataflow`` submits to Google Cloud Dataflow, shipping this
package to the workers with ``setup.py`` (or a prebuilt SDK container image).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.config import PreprocessConfig

SETUP_FILE = Path(__file__).resolve().parent.parent / "setup.py"
_DATAFLOW_REQUIRED = ("project", "region", "temp_location")


def pipeline_options(config: PreprocessConfig, job_name: str = "ctrcvr-preprocess") -> PipelineOptions:
    """PipelineOptions for the configured runner; ``beam_options`` entries are passed last."""
    return PipelineOptions.from_dictionary({**_runner_flags(config, job_name), **config.beam_options})


def make_runner(config: PreprocessConfig):
    """The runner object for local runs (an FnApiRunner), or None: the options name it (Dataflow)."""
    if config.runner == "dataflow":
        return None
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    return FnApiRunner()


def _runner_flags(config: PreprocessConfig, job_name: str) -> dict[str, Any]:
    if config.runner == "local":
        return {"runner": "DirectRunner", "direct_running_mode": "in_memory", "direct_num_workers": 1}
    if config.runner == "local-multiprocess":
        return {"runner": "DirectRunner", "direct_running_mode": "multi_processing",
                "direct_num_workers": config.num_workers}
    return _dataflow_flags(config, job_name)


def _dataflow_flags(config: PreprocessConfig, job_name: str) -> dict[str, Any]:
    dataflow = config.dataflow
    missing = [k for k in _DATAFLOW_REQUIRED if not getattr(dataflow, k)]
    if missing:
        raise ValueError("runner 'dataflow' needs preprocess.dataflow." + ", preprocess.dataflow.".join(missing)
                         + " (see configs/dataflow.yaml)")
    flags: dict[str, Any] = {
        "runner": "DataflowRunner", "project": dataflow.project, "region": dataflow.region,
        "temp_location": dataflow.temp_location,
        "staging_location": dataflow.staging_location or dataflow.temp_location.rstrip("/") + "/staging",
        "job_name": job_name, "save_main_session": False,
    }
    if dataflow.sdk_container_image:
        flags["sdk_container_image"] = dataflow.sdk_container_image
    else:
        flags["setup_file"] = dataflow.setup_file or str(SETUP_FILE)
    optional = {"machine_type": dataflow.machine_type, "max_num_workers": dataflow.max_num_workers,
                "service_account_email": dataflow.service_account_email, "network": dataflow.network,
                "subnetwork": dataflow.subnetwork}
    flags.update({k: v for k, v in optional.items() if v})
    return flags


def is_local(config: PreprocessConfig) -> bool:
    return config.runner != "dataflow"
