"""The trainer stage's config sections: the estimator and its parameters (``model``), training, evaluation
and export (``train``, ``eval``, ``export``). The estimators' parameter groups are in
:mod:`trainer.estimators.params`; no TensorFlow is imported to validate any of them."""
from __future__ import annotations

import dataclasses
from typing import Literal, Optional

from pydantic import Field, ValidationInfo, field_validator

from trainer.estimators.params import EasqGroup, EasqSettings  # noqa: F401
from trainer.estimators.params import (BmseConfig, CIps, CIpsConfig, Counterfactual, HeuristicImputation,  # noqa: F401
                                       Imputation, ImputationWeight, IpwConfig, Oversampling, Survey,
                                       RelMf, SurveyConfig, TowerConfig, Towers, TwoStagePropensity, Undersampling, Weighting,
                                       Balancing)
from trainer.distribute_settings import DistributeConfig, Strategy
from trainer.estimators.registry import DEFAULT_ESTIMATOR
from transforms.schema import FeatureConfig, LabelsConfig, Section


class _Estimator(Section):
    name: str = DEFAULT_ESTIMATOR
    embedding_dim: int = Field(8, gt=0)


class ModelConfig(EasqGroup, RelMf, TwoStagePropensity, CIps, Survey, Balancing, Counterfactual, Oversampling, HeuristicImputation, Imputation,
                  ImputationWeight, Undersampling, Weighting, Towers, _Estimator):
    """``model:``: the estimator's name, the embedding size, and every parameter group of
    :mod:`trainer.estimators.params` (flat YAML keys, as users write them).

    A key of a group the estimator does not read (its ``EstimatorSpec.params``) must keep its default:
    e.g. ``oversample_k: 3`` for an estimator other than oversampling fails with ``model.oversample_k:
    read by oversampling, not by '<name>'``. Defaults pass, so a resolved config (every key spelled out) loads back.
    """

    @field_validator("name")
    @classmethod
    def _registered(cls, name):
        from trainer.estimators.registry import get_estimator
        try:
            get_estimator(name)
        except KeyError as err:
            raise ValueError(err.args[0]) from None
        return name

    @field_validator("*")
    @classmethod
    def _read_by_the_estimator(cls, value, info: ValidationInfo):
        from trainer.estimators.registry import ESTIMATORS, readers_of
        name = info.data.get("name")
        spec = ESTIMATORS.get(name)
        if spec is None or spec.reads(info.field_name):
            return value
        if value != cls.model_fields[info.field_name].get_default(call_default_factory=True):
            raise ValueError(f"read by {', '.join(readers_of(info.field_name))}, not by {name!r} (model.name): "
                             "remove the key or choose an estimator that reads it")
        return value

    def switch_to(self, name: str) -> "ModelConfig":
        """This section for estimator ``name``: the keys it reads kept, the others back to their defaults
        (``compare`` variants and ``run_models`` share one ``model`` section)."""
        from trainer.estimators.registry import get_estimator
        spec = get_estimator(name)
        kept = {k: v for k, v in self.model_dump().items() if k != "name" and spec.reads(k)}
        return ModelConfig(name=name, **kept)


class SelectionConfig(Section):
    """Early stopping and model selection on a named split and metric (seed 002's protocol), evaluated
    after every epoch; the best epoch's weights are kept. Ratings data only."""

    split: Literal["validation", "eval"] = Field(
        "validation", description="validation: the MAR validation slice (eval.validation_fraction of the MAR "
        "test files); eval: the MNAR eval split, where ranking metrics are SNIPS estimates (no MAR data)")
    metric: str = Field("auc", pattern=r"^(auc|logloss|(ndcg|dcg|recall|map)@[1-9][0-9]*)$",
                        description="auc, logloss (lower is better), or ndcg@K / dcg@K / recall@K / map@K")
    patience: Optional[int] = Field(3, ge=1, description="stop after this many epochs without improvement; "
                                    "null: train every epoch, keep the best")

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "logloss"

    @property
    def log_name(self) -> str:
        return f"select_{self.split}_{self.metric}"


class OnlineConfig(Section):
    """``train.mode: online`` (seed 001 Algorithm 1; estimators with an online loop: easq)."""

    export_dir: Optional[str] = Field(
        None, description="export a new TF Serving version under <export_dir>/<model.name>/ every "
        "export_every_days days of the stream; null = no exports while streaming")
    export_every_days: int = Field(1, ge=1, description="the export cadence, in days of the stream")
    warm_start: Optional[str] = Field(
        None, description="a trained model dir (its weights/final) to start from instead of a fresh model; "
        "ignored when the model dir holds a checkpoint to resume")
    max_days: Optional[int] = Field(
        None, ge=1, description="stop after this many days of the stream (a re-run resumes from the checkpoint)")
    checkpoints_to_keep: int = Field(2, ge=1)


class TrainConfig(Section):
    mode: Literal["offline", "online"] = Field(
        "offline", description="offline: epochs over the train split; online: stream it once in time order, "
        "test-then-train, checkpoint per day, resume (estimators with an online loop only: easq)")
    online: OnlineConfig = OnlineConfig()
    batch_size: int = Field(1024, gt=0)
    epochs: int = Field(3, gt=0)
    learning_rate: float = Field(1e-3, gt=0)
    shuffle_buffer: int = Field(20_000, ge=0)
    steps_per_epoch: Optional[int] = Field(None, gt=0)
    verbose: int = Field(2, ge=0, le=2)
    early_stopping_patience: Optional[int] = Field(
        None, ge=1, description="stop after this many epochs without improvement of early_stopping_monitor "
        "and restore the best weights; null = off")
    early_stopping_monitor: str = Field(
        "val_loss", pattern=r"^val_", description="val_loss, val_<term> of the estimator, or val_<metric> of the "
        "validation metrics it declares (the CVR family: val_ctcvr_logloss, val_cvr_snips_logloss; see "
        "trainer.model.validation)")
    optimizer: Literal["adam", "lazy_adam"] = Field(
        "adam", description="adam: the legacy (fused) Keras Adam, every table row updated every step; "
        "lazy_adam: Adam on the table rows a batch looked up only (moments and values of the other rows "
        "untouched, as TF Addons' LazyAdam / PyTorch's SparseAdam), plain Adam on dense variables: the "
        "seed-003 ESMM trains 1.2-1.4x faster (trainer/model/optimizers.py, docs/backbones.md)")
    dense_embedding_gradients: Optional[bool] = Field(
        None, description="densify embedding-table gradients before the Adam update: faster with adam for "
        "tables that fit in memory; turn off for very large tables. null: true with adam, false with "
        "lazy_adam (which needs the sparse gradients)")
    deterministic: bool = Field(
        False, description="same seed, same data -> the same weights and metrics: TensorFlow op determinism, "
        "a deterministic input order (interleave and map in order, fixed shuffle seeds). Off, shards are "
        "interleaved in whatever order they are read and float sums may run in another order, so metrics "
        "differ slightly from run to run; on is slower (see docs/reliability.md)")
    select: Optional[SelectionConfig] = Field(
        None, description="early stopping and model selection on a named split + metric, e.g. "
        "{split: validation, metric: auc} (ratings data); null: train.early_stopping_* on the eval split")
    input: Literal["records", "full_matrix"] = Field(
        "records", description="records: the train shards; full_matrix (ratings): every (user, item) pair "
        "streamed in user x item blocks, the train split's observed ratings marked (o = 1, r = label), "
        "instead of writing the unobserved rows through Beam (data.ratings.unobserved: 0)")
    block: tuple[int, int] = Field((256, 128), description="full_matrix: users x items per block (batch = "
                                   "their product); blocks are visited in a shuffled order each epoch")
    input_threads: Optional[int] = Field(
        None, ge=1, description="give the tf.data input pipeline a private pool of this many threads (one "
        "per op): on a 2-core machine 1 stops it competing with the train step (ESMM at the seed-003 size "
        "went from ~14k to ~23k examples/s); null = TensorFlow's shared pool")
    intra_op_threads: Optional[int] = Field(
        None, ge=1, description="threads inside one TensorFlow op (a matmul, a gather); null = TensorFlow's "
        "default (one per core). Process-wide, set when the config is read (trainer/threads.py). On 2 cores "
        "with small towers, 1 (and inter_op_threads 2: two ops side by side, each on one core) trained the "
        "seed-003 ESMM and Multi-DR 4-12 % faster (3-26 % on another CPU; docs/backbones.md)")
    inter_op_threads: Optional[int] = Field(
        None, ge=1, description="TensorFlow ops run side by side; null = TensorFlow's default (one per "
        "core). Process-wide, like intra_op_threads")
    steps_per_execution: int = Field(
        1, ge=1, description="train steps per call of the compiled step (Keras' steps_per_execution): fewer "
        "Python round trips (ESMM at the seed-003 size: +5-8 % examples/s at 8 on 2 cores); the train and "
        "eval splits are then given their size in batches from the preprocess report. Batch-level callbacks "
        "(progress, the non-finite-loss check) see every N-th step")
    cache_records: bool = Field(
        False, description="keep the train split's serialized records in memory after the first epoch: later "
        "epochs skip reading and un-gzipping the shards (the larger part of the input cost: 78k -> 320k "
        "examples/s on one thread at the seed-003 size) and still reshuffle every epoch; for a train split "
        "that fits in RAM (about its gzip size x 3-5)")
    cache_examples: bool = Field(
        False, description="parse the train split into memory once, before the first epoch, and draw every "
        "epoch's batches from it in a new random order (a full permutation of the rows, not a shuffle buffer): "
        "no reading or parsing in the train step's way (seed-003 ESMM on 2 cores: +25-44 % examples/s over "
        "streamed shards, +10-13 % over cache_records). For a train split whose parsed columns fit in half "
        "the RAM (checked before loading); "
        "not under parameter_server")
    distribution: Strategy = Field(
        "none", validate_default=True, description="tf.distribute strategy: none, mirrored (local devices), multi_worker_mirrored "
        "(tables copied on every worker), parameter_server (tables sharded over the PS tasks); the cluster "
        "comes from TF_CONFIG or `ctrcvr train --local-cluster` (docs/distributed.md)")
    distribute: DistributeConfig = DistributeConfig()

    @field_validator("dense_embedding_gradients")
    @classmethod
    def _sparse_for_lazy_adam(cls, value, info: ValidationInfo):
        if value and info.data.get("optimizer") == "lazy_adam":
            raise ValueError("train.optimizer: lazy_adam updates the looked-up rows of sparse gradients: "
                             "leave dense_embedding_gradients unset (or false), or use optimizer: adam")
        return value

    @field_validator("cache_examples")
    @classmethod
    def _one_cache(cls, value, info: ValidationInfo):
        if value and info.data.get("cache_records"):
            raise ValueError("train.cache_examples and train.cache_records are both on: cache_examples keeps the "
                             "parsed rows, the records are then never read again; turn one off")
        return value

    @field_validator("distribution")
    @classmethod
    def _cache_examples_in_process(cls, value, info: ValidationInfo):
        if info.data.get("cache_examples") and value == "parameter_server":
            raise ValueError("train.cache_examples does not run under parameter_server (each worker streams the "
                             "shards); use train.cache_records, which every worker applies to its own input")
        return value

    @property
    def densify_embedding_gradients(self) -> bool:
        """``dense_embedding_gradients`` resolved: unset, true with adam and false with lazy_adam."""
        if self.dense_embedding_gradients is None:
            return self.optimizer == "adam"
        return self.dense_embedding_gradients


class EvalConfig(Section):
    group_by: str = "user_id"
    batch_size: int = Field(8192, gt=0)
    calibration_slices: list[str] = Field(
        [], description="CVR family, simulated data: declared features whose values slice the eval split for "
        "cvr_log_bias_sd_by_<feature>, the exposure-weighted sd over slices of log(mean pCVR / mean gt_cvr): "
        "0 when every slice has the same relative bias, larger when the model learnt a spurious effect "
        "of the feature (e.g. [position])")
    ranking_ks: list[int] = Field(
        [1, 3, 5], min_length=1, description="ratings: K of NDCG@K, DCG@K, Recall@K, MAP@K (per user)")
    validation_fraction: float = Field(
        0.05, ge=0, lt=1, description="ratings: the share of the MAR test split (a hash of user and item ids) "
        "held out as the validation split for early stopping and selection; the rest is the test split")
    test: bool = Field(True, description="ratings: evaluate the MAR test split (tune turns it off for trials)")
    rare_items: Optional[float] = Field(
        None, gt=0, le=1, description="ratings: also report mar_rare_<metric> over the test items of this share "
        "of the least popular items (train interactions); 0.5 = seed 004's non-popular half")
    snips_power: float = Field(
        0.5, gt=0, description="ratings: the SNIPS estimate on the MNAR eval split weights by 1/p̂ with "
        "Rel-MF's popularity propensity p̂(v) = (n(v) / max n)^power, n counted on the train split")

    @field_validator("ranking_ks")
    @classmethod
    def _positive_ks(cls, value):
        if any(k < 1 for k in value):
            raise ValueError(f"every K must be >= 1, got {value}")
        return sorted(set(value))


class ExportConfig(Section):
    warmup_examples: int = Field(8, ge=0)


@dataclasses.dataclass(frozen=True)
class TrainerSpec:
    """What the trainer stage reads, and nothing else: the feature and label declarations, its own
    sections and the seed. ``pair_features`` names the user and item features of (user, item) data,
    read only by the estimators and evaluations that work on pairs (the ratings task)."""

    features: tuple[FeatureConfig, ...]
    labels: LabelsConfig
    model: ModelConfig
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)
    seed: int = 42
    pair_features: Optional[tuple[str, str]] = None

    def with_model(self, model: ModelConfig) -> "TrainerSpec":
        return dataclasses.replace(self, model=model)
