"""The pipeline stage's config sections: the simulators' worlds, where the raw data come from, and the
Beam job's settings (``simulate``, ``simulate_ratings``, ``data``, ``preprocess``), and
:class:`PreprocessSections`, the view of them (with ``features`` and ``labels``) the job is given."""
from __future__ import annotations

import dataclasses
from typing import Any, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from pipeline.inputs import SOURCES, get_source
from transforms.schema import FeatureConfig, LabelsConfig, Section


class SimulateConfig(Section):
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


class SplitConfig(Section):
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


class AliccpRawConfig(Section):
    """The raw Ali-CCP release: skeleton rows join their common (user-side) features on the md5."""

    common_features: list[str] = Field([], description="common_features_*.csv globs joined to every skeleton file")
    join_buckets: int = Field(16, gt=0, description="hash buckets of the keyed join (parallelism, memory/bucket)")


class RatingsConfig(Section):
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


class SimulateRatingsConfig(Section):
    """The MNAR ratings world of ``pipeline.simulators.ratings`` (``data.source: simulated_ratings``)."""

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


class DataConfig(Section):
    """Where the raw rows come from. ``source`` picks the inputs and their reader (the registry in
    ``pipeline.inputs`` names and describes every source); features and labels pick the columns.
    ``test_files`` become their own ``test`` split (e.g. the MAR test set of a ratings dataset).
    """

    source: str = Field("simulated", description="one of the sources of pipeline.inputs: " + ", ".join(SOURCES))
    train_files: list[str] = []
    eval_files: list[str] = []
    test_files: list[str] = []
    csv_delimiter: str = Field(",", min_length=1, max_length=1)
    split: SplitConfig = SplitConfig()
    aliccp: AliccpRawConfig = AliccpRawConfig()
    ratings: RatingsConfig = RatingsConfig()

    @field_validator("source")
    @classmethod
    def _known_source(cls, value):
        get_source(value)  # UnknownSource (a ValueError) names the known ones
        return value

    @model_validator(mode="after")
    def _check_source(self):
        source = get_source(self.source)
        if self.ratings.unobserved != 0 and not source.ratings:
            ratings = ", ".join(n for n, s in SOURCES.items() if s.ratings)
            raise ValueError(f"ratings.unobserved applies to the ratings sources ({ratings}), not to source "
                             f"{self.source!r}")
        if not source.splits_by_files and self.split.by == "files":
            raise ValueError(f"source {self.source!r} reads one train file, the simulator's: split it by hash, "
                             "not by files")
        return self


class DataflowConfig(Section):
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


class PreprocessConfig(Section):
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
    fixed_vocabulary_from: Optional[str] = Field(
        None, description="daily training: a previous preprocess output whose vocabularies are reused as they "
        "are (same tokens, same ids; today's new tokens go to the OOV buckets) instead of building today's; "
        "null = build them (warm-start training then matches rows by token)")
    beam_options: dict[str, Any] = {}
    dataflow: DataflowConfig = DataflowConfig()


@dataclasses.dataclass(frozen=True)
class PreprocessSections:
    """What the preprocess job reads: the ``data``, ``features``, ``labels`` and ``preprocess`` sections."""

    data: DataConfig
    features: tuple[FeatureConfig, ...]
    labels: LabelsConfig
    preprocess: PreprocessConfig

    @classmethod
    def of(cls, config) -> "PreprocessSections":
        """The sections of anything that has them (the root config)."""
        return cls(config.data, tuple(config.features), config.labels, config.preprocess)
