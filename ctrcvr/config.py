"""Typed, validated configuration for every stage, loaded from YAML.

A config file may name a parent with ``extends: other.yaml`` (deep-merged, lists
replaced); command-line overrides ``--set train.batch_size=2048`` are applied last.
Unknown keys and wrong types raise :class:`ConfigError` naming the key, the file
and, for typos, the closest valid key.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator,
                      model_validator)


class ConfigError(ValueError):
    """A config file or override is invalid; the message names key and source."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------- simulate
class SimulateConfig(_Section):
    """The causal simulator: exposures -> clicks -> conversions, plus surveys."""

    n_users: int = Field(2000, gt=0)
    n_items: int = Field(1000, gt=0)
    n_exposures: int = Field(300_000, gt=0)
    n_days: int = Field(7, gt=0)
    latent_dim: int = Field(4, gt=0)
    ctr: float = Field(0.04, gt=0, lt=1, description="target mean click rate")
    cvr: float = Field(0.02, gt=0, lt=1, description="target mean conversion rate among clicks")
    selection_bias: float = Field(
        1.0, ge=0, description="strength of the confounder shared by click and conversion (0 = none)")
    hidden_confounding: float = Field(
        0.0, ge=0, description="strength of a per-exposure confounder no feature reveals")
    position_selectivity: float = Field(
        0.0, ge=0, le=2, description="how much more the confounder drives clicks deep in the list than at "
        "the top: its click coefficient is selection_bias * (1 + k (depth - 1/2)), depth = log(position) / "
        "log(20) in [0, 1] (0 = the same at every position)")
    survey_share: float = Field(0.5, ge=0, le=1, description="share of clicked exposures that get a survey")
    response_rate: float = Field(0.02, gt=0, lt=1, description="target mean survey response rate")
    response_satisfaction_slope: float = Field(
        1.0, ge=0, description="log-odds of responding per satisfaction point (0 = responses at random)")
    chunk_rows: int = Field(100_000, gt=0)
    formats: list[Literal["csv", "parquet"]] = ["csv", "parquet"]


# --------------------------------------------------------------------------- data
class SplitConfig(_Section):
    """How rows are assigned to train / eval, deterministically."""

    by: Literal["hash", "day", "files"] = "hash"
    key: Union[str, list[str]] = Field(
        "exposure_id", description="hash: the column whose value decides the split, or a list of columns "
        "hashed together (e.g. [user_id, item_id]: split per rating, not per user)")
    eval_fraction: float = Field(0.2, gt=0, lt=1)
    day_column: str = "day"
    eval_days: list[int] = []

    @field_validator("key")
    @classmethod
    def _some_key(cls, value):
        if isinstance(value, list) and not value:
            raise ValueError("name at least one key column")
        return value


class AliccpRawConfig(_Section):
    """The raw Ali-CCP release: skeleton rows join their common (user-side) features on the md5."""

    common_features: list[str] = Field([], description="common_features_*.csv globs joined to every skeleton file")
    join_buckets: int = Field(16, gt=0, description="hash buckets of the keyed join (parallelism, memory/bucket)")


class RatingsConfig(_Section):
    """Explicit ratings: ``user,item,rating`` triplets, or a dense users x items matrix (0 = missing)."""

    format: Literal["triplets", "matrix"] = "triplets"
    delimiter: Optional[str] = Field(None, description="triplets: field separator; None = tab, comma or spaces")
    header: bool = Field(False, description="triplets: the first line names the columns")
    columns: list[str] = Field(["user_id", "item_id", "rating"], min_length=3, max_length=3)
    unobserved: Union[Literal["all"], int] = Field(
        0, description="unobserved (user, item) rows (observed = 0, label 0, rating 0) added to the rows of "
        "train_files, never to test_files, so a propensity model sees every pair D (seed 002): 0 = none; k = k "
        "random unrated items of the same user per rating; 'all' = the complete users x items matrix. Drawn "
        "deterministically from the config seed; counted as generated, not read, in the report")

    @field_validator("unobserved")
    @classmethod
    def _check_unobserved(cls, value):
        if isinstance(value, int) and value < 0:
            raise ValueError("must be 0 (none), a positive count per rating, or 'all'")
        return value

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data):
        if isinstance(data, dict) and "keep_missing" in data:
            raise ValueError("keep_missing was replaced by unobserved: all (emit every unrated cell)")
        return data


class SimulateRatingsConfig(_Section):
    """The MNAR ratings world of ``pipeline.simulate_ratings`` (``data.source: simulated_ratings``)."""

    n_users: int = Field(600, gt=0)
    n_items: int = Field(300, gt=1)
    n_groups: int = Field(6, gt=0, description="latent taste groups of users")
    latent_dim: int = Field(4, gt=0)
    density: float = Field(0.05, gt=0, lt=1, description="share of (user, item) pairs observed in the MNAR set")
    group_exposure: float = Field(1.5, ge=0, description="how strongly a group's item affinity drives what it rates")
    self_selection: float = Field(
        0.8, ge=0, description="log-odds of observing per rating point (0 = MAR given exposure)")
    test_items: int = Field(10, gt=0, description="MAR items per test user, drawn uniformly at random")
    test_users: float = Field(0.5, gt=0, le=1, description="share of users in the MAR test set")

    @model_validator(mode="after")
    def _check_test_items(self):
        if self.test_items > self.n_items:
            raise ValueError(f"test_items ({self.test_items}) exceeds n_items ({self.n_items})")
        return self


class DataConfig(_Section):
    """Where the raw rows come from. ``source`` picks the reader; features and labels pick the columns.

    simulated: the simulator's shards under ``--input`` (exposures, or surveys when labels.task is survey);
    csv / parquet / survey / aliccp_processed: files with a header (CSV) whose columns are declared in
    ``features`` and ``labels``; aliccp_raw: the raw Ali-CCP release (see ``aliccp``); ratings: see ``ratings``;
    simulated_ratings: the ratings simulator's MNAR train and MAR test triplets under ``--input``
    (``ctrcvr simulate`` writes them, world in ``simulate_ratings``), read as ``ratings`` triplets.
    ``test_files`` become their own ``test`` split (e.g. the MAR test set of a ratings dataset).
    """

    source: Literal["simulated", "csv", "parquet", "survey", "aliccp_processed", "aliccp_raw",
                    "ratings", "simulated_ratings"] = "simulated"
    train_files: list[str] = []
    eval_files: list[str] = []
    test_files: list[str] = []
    csv_delimiter: str = Field(",", min_length=1, max_length=1)
    split: SplitConfig = SplitConfig()
    aliccp: AliccpRawConfig = AliccpRawConfig()
    ratings: RatingsConfig = RatingsConfig()

    @model_validator(mode="after")
    def _check_ratings(self):
        if self.ratings.unobserved != 0 and self.source not in ("ratings", "simulated_ratings"):
            raise ValueError(f"ratings.unobserved applies to the ratings sources, not to source {self.source!r}")
        if self.source == "simulated_ratings" and self.split.by == "files":
            raise ValueError("source 'simulated_ratings' writes one MNAR file: split it by hash, not by files")
        return self


class FeatureConfig(_Section):
    """One feature, declared once; read by preprocessing_fn and by the model."""

    name: str
    kind: Literal["categorical", "numeric"]
    transform: Optional[Literal["vocabulary", "hash", "zscore", "log1p", "bucketize", "identity"]] = None
    top_k: Optional[int] = Field(None, gt=0)
    frequency_threshold: Optional[int] = Field(None, ge=0)
    num_oov_buckets: int = Field(1, ge=1)
    hash_buckets: Optional[int] = Field(None, gt=0)
    num_buckets: Optional[int] = Field(None, gt=1)
    default: Optional[Union[float, str]] = None
    embedding_dim: Optional[int] = Field(None, gt=0)
    multivalued: bool = Field(False, description="categorical only: a variable-length list of values per row "
                                                 "(the model mean-pools their embeddings)")
    separator: str = Field("|", min_length=1, description="multivalued: separator of the values in a text cell")

    @model_validator(mode="after")
    def _check_transform(self):
        if self.multivalued and self.kind != "categorical":
            raise ValueError("only categorical features can be multivalued")
        allowed = {"categorical": ("vocabulary", "hash"),
                   "numeric": ("zscore", "log1p", "bucketize", "identity")}[self.kind]
        if self.transform is None:
            self.__dict__["transform"] = allowed[0]
        elif self.transform not in allowed:
            raise ValueError(f"transform {self.transform!r} does not apply to a {self.kind} feature "
                             f"(choose one of {', '.join(allowed)})")
        if self.transform == "hash" and not self.hash_buckets:
            raise ValueError("transform 'hash' needs hash_buckets")
        if self.transform == "bucketize" and not self.num_buckets:
            raise ValueError("transform 'bucketize' needs num_buckets")
        return self

    @property
    def is_embedded(self) -> bool:
        """Whether the model looks this feature up in an embedding table."""
        return self.kind == "categorical" or self.transform == "bucketize"


_TASK_LABELS = {  # task -> default label roles and passthrough columns
    "conversion": {"click": "click", "conversion": "conversion",
                   "ground_truth": ["gt_ctr", "gt_cvr", "gt_conversion"]},
    "survey": {"click": "responded", "conversion": "rating", "ground_truth": ["gt_satisfaction", "gt_response_prob"]},
    "ratings": {"click": "observed", "conversion": "label", "ground_truth": ["rating"]},
}


class LabelsConfig(_Section):
    """Label, key and ground-truth columns: passed through untouched, never features.

    Two roles, whatever the task: ``click`` is o, the selection event (click, survey response,
    rating observed), always 0/1; ``conversion`` is r, the outcome seen only when o = 1
    (conversion 0/1; survey rating in ``rating_range``, 0 when not responded; ratings: 1 if the
    rating is above ``rating_threshold``). ``task`` sets the defaults of the other keys.
    """

    task: Literal["conversion", "survey", "ratings"] = "conversion"
    click: str = "click"
    conversion: str = "conversion"
    ground_truth: list[str] = ["gt_ctr", "gt_cvr", "gt_conversion"]
    keys: list[str] = ["user_id"]
    rating_range: tuple[float, float] = (1.0, 5.0)
    rating_threshold: float = Field(3.0, description="ratings: label = 1 if rating > rating_threshold")

    @model_validator(mode="before")
    @classmethod
    def _task_defaults(cls, data):
        if isinstance(data, dict) and data.get("task", "conversion") in _TASK_LABELS:
            return {**_TASK_LABELS[data.get("task", "conversion")], **data}
        return data

    @model_validator(mode="after")
    def _check_range(self):
        if self.rating_range[0] > self.rating_range[1]:
            raise ValueError(f"rating_range {self.rating_range} is empty")
        return self


# --------------------------------------------------------------------------- preprocess
class DataflowConfig(_Section):
    """Google Cloud Dataflow settings, used when ``preprocess.runner`` is ``dataflow``."""

    project: Optional[str] = None
    region: Optional[str] = None
    temp_location: Optional[str] = None
    staging_location: Optional[str] = None
    setup_file: Optional[str] = None
    sdk_container_image: Optional[str] = None
    machine_type: Optional[str] = None
    max_num_workers: Optional[int] = Field(None, gt=0)
    service_account_email: Optional[str] = None
    network: Optional[str] = None
    subnetwork: Optional[str] = None


class PreprocessConfig(_Section):
    runner: Literal["local", "local-multiprocess", "dataflow"] = "local"
    num_workers: int = Field(2, gt=0, description="workers for local-multiprocess")
    num_shards: int = Field(4, gt=0, description="TFRecord files per split (per bundle on distributed runners)")
    batch_rows: int = Field(65_536, gt=0, description="rows per Arrow record batch")
    compression_level: int = Field(1, ge=1, le=9, description="gzip level of the TFRecord shards (1 = fastest; "
                                   "1-3 use ISA-L's deflate, about 4x faster than zlib's level 1 at a similar "
                                   "size, 4-9 zlib's)")
    read_once: bool = Field(
        True, description="file sources on local runners: read and validate the input once, keeping the validated "
        "rows for the second pass in temporary Arrow files (about 170 bytes a row, deleted at the end); false: read "
        "and validate twice (as on Dataflow)")
    conversion_without_click: Literal["reject", "fix"] = "reject"
    rating_without_response: Literal["reject", "fix"] = Field(
        "reject", description="survey: a rating on a non-response row is rejected, or dropped (fix)")
    max_reject_fraction: float = Field(0.01, ge=0, le=1)
    beam_options: dict[str, Any] = {}
    dataflow: DataflowConfig = DataflowConfig()


# --------------------------------------------------------------------------- model / train
class TowerConfig(_Section):
    units: list[int] = [64, 32]
    activation: str = "relu"
    dropout: float = Field(0.0, ge=0, lt=1)
    batch_norm: bool = False


class IpwConfig(_Section):
    """How inverse-propensity weights 1/p̂ are formed; shared by every propensity-weighted estimator.

    Applied in this order: detach, floor τ (absolute ``tau`` or relative ``tau_percent``, seed 003
    §5.3), percentile clipping (seed 000 §4), then the upper bound ``max_weight``.
    """

    tau: Optional[float] = Field(None, gt=0, lt=1, description="absolute floor on p̂ (weights ≤ 1/tau)")
    tau_percent: Optional[float] = Field(
        None, ge=0, le=1, description="floor as a fraction of the batch's propensity range: "
        "tau = p_min + tau_percent (p_mean - p_min); 0.9 means τ% = 90 %")
    clip_percentiles: Optional[tuple[float, float]] = Field(
        None, description="clip weights to [1/p̂_hi, 1/p̂_lo] of the batch's predicted propensities, e.g. [25, 75]")
    max_weight: Optional[float] = Field(None, ge=1, description="upper bound on any weight")
    detach_propensity: bool = Field(
        True, description="stop-gradient on p̂ inside the weighted loss: the CVR loss then never moves the "
        "CTR tower (it is trained by its own loss only)")

    @model_validator(mode="after")
    def _check(self):
        if self.tau is not None and self.tau_percent is not None:
            raise ValueError("give either tau (absolute floor) or tau_percent (relative floor), not both")
        if self.clip_percentiles is not None:
            lo, hi = self.clip_percentiles
            if not 0 <= lo < hi <= 100:
                raise ValueError(f"clip_percentiles must be [low, high] with 0 <= low < high <= 100, got {[lo, hi]}")
        return self


class BmseConfig(_Section):
    """Balancing regulariser BMSE(φ, p̂) of IPS-V2 / DR-V2 (seed 002 §3.3, §4).

    φ, read from the shared representation: ``"1"`` the constant 1; ``"K"`` user ⊙ item embedding;
    ``"2K"`` [user embedding : item embedding]; ``"R"`` the predicted CVR r̂. The user and item
    embeddings are those of ``user_feature`` / ``item_feature`` in the shared embedding Φ.
    """

    phi: Literal["1", "K", "2K", "R"] = "1"
    weight: float = Field(1.0, ge=0, description="λ in L = L_IPS/DR + λ·BMSE")
    user_feature: str = "user_id"
    item_feature: str = "item_id"

    @field_validator("phi", mode="before")
    @classmethod
    def _phi_as_text(cls, value):
        return str(value) if isinstance(value, int) else value


class SurveyConfig(_Section):
    """survey_ipw / survey_standalone (seed 000 §4): the satisfaction head and the response-rate head.

    The click label column holds ``responded``, the conversion label column the ``rating`` (any value
    where not responded: it is never read there). Weights 1/p̂ are formed by ``model.ipw``
    (e.g. ``clip_percentiles: [25, 75]``, the paper's choice).
    """

    satisfaction_task: Literal["regression", "classification"] = Field(
        "regression", description="'regression': predict the rating in [rating_min, rating_max]; "
        "'classification': predict P(rating > satisfied_threshold)")
    satisfied_threshold: float = Field(3.0, description="classification: satisfied = rating > threshold")
    rating_range: tuple[float, float] = Field(
        (1.0, 5.0), description="regression: the range of the predicted rating; keep equal to labels.rating_range")
    response_negative_keep: Optional[float] = Field(
        None, gt=0, le=1, description="w: train the response head on every response and this kept fraction of "
        "non-responses (rho/(1-rho) gives 1:1 at response rate rho), then calibrate p = p_s w / (p_s w + 1 - p_s); "
        "null trains on every impression")

    @model_validator(mode="after")
    def _check_range(self):
        if self.rating_range[1] <= self.rating_range[0]:
            raise ValueError(f"survey.rating_range {self.rating_range} is empty")
        return self


class CIpsConfig(_Section):
    """c_ips (seed 004, Algorithm 2) and its baselines on (user, item, rating) data; a rating above
    ``labels.rating_threshold`` is a positive."""

    propensity: Literal["cluster", "user", "none"] = Field(
        "cluster", description="'cluster': C-IPS eq. 8 on DEC clusters; 'user': user-level IPS (a logistic "
        "observation model per user-item pair); 'none': plain MF")
    n_clusters: int = Field(6, ge=1, description="K, the number of user clusters")
    rounds: int = Field(3, ge=1, description="M, alternating rounds of Algorithm 2")
    cluster_epochs: int = Field(3, ge=1, description="T, DEC epochs per round (Algorithm 1)")
    rec_epochs: int = Field(4, ge=1, description="recommender epochs per round (eq. 9)")
    hidden_units: list[int] = Field([64], description="phi: MLP on the user's 0/1 interaction vector -> h_u")
    batch_size: int = Field(512, gt=0)
    learning_rate: float = Field(0.005, gt=0)
    l2: float = Field(1e-5, ge=0, description="L2 penalty on the item embeddings and phi's kernels")


class ModelConfig(_Section):
    name: str = "esmm"
    embedding_dim: int = Field(8, gt=0)
    tower: TowerConfig = TowerConfig()
    ipw: IpwConfig = IpwConfig()
    undersample_rate: Optional[float] = Field(
        None, gt=0, description="λ: per batch keep every clicked row and λ·N_clicked unclicked rows in the "
        "DR loss (seed 003 §5.3); null keeps every row")
    imputation_weight: float = Field(1.0, ge=0, description="weight of the imputation model's own loss L_e")
    imputation_target: Literal["label", "error"] = Field(
        "label", description="'label': the imputation tower predicts the conversion r̃ and ê = e(r̃, r̂); "
        "'error': it regresses the error directly, ê = softplus(z) (then ê carries no gradient to r̂)")
    heuristic_eta: float = Field(0.002, gt=0, lt=1, description="heuristic_dr: P(conversion) imputed to every row")
    oversample_k: int = Field(5, ge=1, description="oversampling: how many times each positive counts")
    counterfactual_weight: float = Field(
        1.0, ge=0, description="ESCM2: weight λ_c of the counterfactual IPW / DR CVR regulariser")
    bmse: BmseConfig = BmseConfig()
    survey: SurveyConfig = SurveyConfig()
    c_ips: CIpsConfig = CIpsConfig()


class TrainConfig(_Section):
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
        "val_loss", pattern=r"^val_", description="val_loss, val_<term> of the estimator, or (CVR estimators) "
        "val_ctcvr_logloss: log loss of the served pCTCVR against click·conversion, comparable across estimators")
    dense_embedding_gradients: bool = Field(
        True, description="densify embedding-table gradients before the (legacy, fused) Adam update: "
        "faster for tables that fit in memory; turn off for very large tables")
    input_threads: Optional[int] = Field(
        None, ge=1, description="give the tf.data input pipeline a private pool of this many threads (one "
        "per op): on a 2-core machine 1 stops it competing with the train step (ESMM at the seed-003 size "
        "went from ~14k to ~23k examples/s); null = TensorFlow's shared pool")


class EvalConfig(_Section):
    group_by: str = "user_id"
    batch_size: int = Field(8192, gt=0)
    calibration_slices: list[str] = Field(
        [], description="CVR family, simulated data: declared features whose values slice the eval split for "
        "cvr_log_bias_sd_by_<feature>, the exposure-weighted sd over slices of log(mean pCVR / mean gt_cvr): "
        "0 when every slice has the same relative bias, larger when the model learnt a spurious effect "
        "of the feature (e.g. [position])")
    ranking_ks: list[int] = Field(
        [1, 3, 5], min_length=1, description="ratings: K of NDCG@K, DCG@K, Recall@K, MAP@K (per user)")
    snips_power: float = Field(
        0.5, gt=0, description="ratings: the SNIPS estimate on the MNAR eval split weights by 1/p̂ with "
        "Rel-MF's popularity propensity p̂(v) = (n(v) / max n)^power, n counted on the train split")

    @field_validator("ranking_ks")
    @classmethod
    def _positive_ks(cls, value):
        if any(k < 1 for k in value):
            raise ValueError(f"every K must be >= 1, got {value}")
        return sorted(set(value))


class ExportConfig(_Section):
    warmup_examples: int = Field(8, ge=0)


class CompareVariant(_Section):
    """One ``compare.models`` entry with config overrides, e.g.
    ``{label: "C-IPS K=1", model: c_ips, set: {model.c_ips.n_clusters: 1}}``; ``set`` takes dotted keys
    under ``model.``, ``train.`` or ``eval.`` (the data are the same for every run)."""

    label: Optional[str] = Field(None, description="its name in tables (default: the model name)")
    model: str
    set: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self.label or self.model


class CompareConfig(_Section):
    """``ctrcvr compare``: estimators × seeds trained on the same preprocessed data, then tabulated."""

    models: list[CompareVariant] = Field(
        ["base", "esmm", "multi_ipw", "multi_dr", "oracle"], validate_default=True,
        description="estimator names, or named variants {label, model, set: {dotted.key: value}}")

    @field_validator("models", mode="before")
    @classmethod
    def _names_are_variants(cls, value):
        return [{"model": v} if isinstance(v, str) else v for v in value] if isinstance(value, list) else value

    @field_serializer("models")
    def _plain_names(self, models: list[CompareVariant]):
        return [m.model if m.label is None and not m.set else m.model_dump() for m in models]

    @model_validator(mode="after")
    def _unique_labels(self):
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"compare.models: two entries are named {', '.join(map(repr, dupes))}; "
                             "give the variants distinct labels")
        return self
    seeds: int = Field(3, ge=1, description="training seeds per model: config.seed, config.seed + 1, ...")
    metrics: list[str] = Field(
        ["cvr_auc_entire_space", "ctcvr_auc", "cvr_bias", "cvr_mae_vs_truth", "cvr_auc_clicked", "ctr_auc",
         "cvr_calibration_error"], description="table columns, in order; the first four are plotted")
    tau_percent_sweep: list[float] = Field([], description="τ% values for a multi_ipw sweep (seed 003 Fig. 6)")
    undersample_sweep: list[float] = Field([], description="λ values for a multi_dr sweep (seed 003 Fig. 6)")
    sweep_seeds: Optional[int] = Field(None, ge=1, description="seeds per sweep point (default: seeds)")


DEFAULT_RUN_MODELS = ("esmm", "multi_ipw", "multi_dr", "oracle")


class Config(_Section):
    seed: int = 42
    simulate: SimulateConfig = SimulateConfig()
    simulate_ratings: SimulateRatingsConfig = SimulateRatingsConfig()
    data: DataConfig = DataConfig()
    features: list[FeatureConfig] = []
    labels: LabelsConfig = LabelsConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    export: ExportConfig = ExportConfig()
    compare: CompareConfig = CompareConfig()
    run_models: Optional[list[str]] = Field(
        None, description="`ctrcvr run` also trains and evaluates these estimators beside model.name (which "
        "alone is exported) and prints them side by side. Default: esmm, multi_ipw, multi_dr and oracle on "
        "simulated conversion data (the oracle needs its ground truth), none otherwise")

    @model_validator(mode="after")
    def _default_run_models(self):
        if self.run_models is None:
            simulated = self.data.source == "simulated" and self.labels.task == "conversion"
            self.__dict__["run_models"] = list(DEFAULT_RUN_MODELS) if simulated else []
        return self

    @model_validator(mode="after")
    def _check_names(self):
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"features declared twice: {', '.join(dupes)}")
        unknown = sorted(set(self.eval.calibration_slices) - set(names))
        if unknown:
            raise ValueError(f"eval.calibration_slices names undeclared features: {', '.join(unknown)}")
        passthrough = {self.labels.click, self.labels.conversion, *self.labels.ground_truth}
        clash = sorted(passthrough & set(names))
        if clash:
            raise ValueError(f"label / ground-truth columns cannot be features: {', '.join(clash)}")
        return self


# --------------------------------------------------------------------------- loading
def load_config(path: Union[str, Path], overrides: tuple[str, ...] | list[str] = ()) -> Config:
    """Reads a YAML config (following ``extends``), applies ``key=value`` overrides, validates."""
    path = Path(path)
    raw = _read_with_parents(path, seen=())
    for item in overrides:
        _apply_override(raw, item, path)
    return _validate(raw, source=str(path))


def config_from_dict(raw: dict, source: str = "<dict>") -> Config:
    """Validates an in-memory config (tests, notebooks)."""
    return _validate(raw, source=source)


def dump_config(config: Config, path: Union[str, Path]) -> Path:
    """Writes the fully resolved config, every default spelled out."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return path


def _read_with_parents(path: Path, seen: tuple[Path, ...]) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.resolve() in seen:
        raise ConfigError(f"{path}: 'extends' forms a cycle")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    base = _read_with_parents(path.parent / parent, seen + (path.resolve(),))
    return _deep_merge(base, raw)


def _deep_merge(base: dict, top: dict) -> dict:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _apply_override(raw: dict, item: str, path: Path) -> None:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.batch_size=2048")
    dotted, text = item.split("=", 1)
    set_dotted(raw, dotted.strip(), yaml.safe_load(text) if text else "", source=f"--set {dotted} (file {path})")


def set_dotted(raw: dict, dotted: str, value, source: str) -> None:
    """raw[a][b][c] = value for ``a.b.c`` in a raw (unvalidated) config: missing levels are created
    (validation then names any unknown key), a digit indexes a list."""
    node: Any = raw
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{source}: {'.'.join(parts[:i])} has no item {part!r}")
            part = int(part)
        if i == len(parts) - 1:
            node[part] = value
        else:
            if isinstance(node, dict) and not isinstance(node.get(part), (dict, list)):
                node[part] = {}
            node = node[part]


def _validate(raw: dict, source: str) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        lines = [_describe(e) for e in err.errors()]
        raise ConfigError(f"{source}: invalid config\n  " + "\n  ".join(lines)) from None


def _describe(error: dict) -> str:
    loc = tuple(error["loc"])
    key = ".".join(str(p) for p in loc) or "<top level>"
    if error["type"] == "extra_forbidden":
        valid = _fields_at(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (valid keys: {', '.join(valid)})"
        return f"unknown key {key!r}{hint}"
    return f"{key}: {error['msg']} (got {error.get('input')!r})"


def _fields_at(loc: tuple) -> list[str]:
    model: Any = Config
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        model = next((a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return []
    return list(model.model_fields)
