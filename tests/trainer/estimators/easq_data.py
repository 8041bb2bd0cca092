"""A tiny short-video world simulated and preprocessed once per test module (about 8 s), for the EASQ tests."""
from pathlib import Path

from ctrcvr import workflow
from ctrcvr.config import load_config

REPO = Path(__file__).resolve().parents[3]
TINY = ["simulate_video.n_users=60", "simulate_video.n_items=80", "simulate_video.n_requests=300",
        "simulate_video.n_days=3", "simulate_video.shard_requests=100", "simulate_video.questionnaire_share=0.6",
        "simulate_video.answer_rate=0.6", "data.split.eval_days=[2]", "preprocess.num_shards=1",
        "train.batch_size=500", "train.epochs=1", "model.easq.units=16", "model.easq.expert_units=[8, 1]"]


def tiny_config(*overrides):
    return load_config(REPO / "configs" / "easq.yaml", [*TINY, *overrides])


def prepare(root, *overrides):
    """(config, preprocessed data dir, raw dir) of the tiny world under ``root``."""
    config = tiny_config(*overrides)
    data = workflow.prepare_data(config, Path(root))
    return config, data, Path(root) / "raw"
