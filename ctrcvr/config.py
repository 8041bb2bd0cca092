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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


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
    key: str = "exposure_id"
    eval_fraction: float = Field(0.2, gt=0, lt=1)
    day_column: str = "day"
    eval_days: list[int] = []


class DataConfig(_Section):
    source: Literal["simulated", "csv", "parquet", "aliccp_processed"] = "simulated"
    train_files: list[str] = []
    eval_files: list[str] = []
    split: SplitConfig = SplitConfig()


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

    @model_validator(mode="after")
    def _check_transform(self):
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


class LabelsConfig(_Section):
    """Label, key and ground-truth columns: passed through untouched, never features."""

    click: str = "click"
    conversion: str = "conversion"
    ground_truth: list[str] = ["gt_ctr", "gt_cvr", "gt_conversion"]
    keys: list[str] = ["user_id"]


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
    num_shards: int = Field(4, gt=0)
    batch_rows: int = Field(20_000, gt=0, description="rows per Arrow record batch")
    conversion_without_click: Literal["reject", "fix"] = "reject"
    max_reject_fraction: float = Field(0.01, ge=0, le=1)
    beam_options: dict[str, Any] = {}
    dataflow: DataflowConfig = DataflowConfig()


# --------------------------------------------------------------------------- model / train
class TowerConfig(_Section):
    units: list[int] = [64, 32]
    activation: str = "relu"
    dropout: float = Field(0.0, ge=0, lt=1)
    batch_norm: bool = False


class ModelConfig(_Section):
    name: str = "esmm"
    embedding_dim: int = Field(8, gt=0)
    tower: TowerConfig = TowerConfig()


class TrainConfig(_Section):
    batch_size: int = Field(1024, gt=0)
    epochs: int = Field(3, gt=0)
    learning_rate: float = Field(1e-3, gt=0)
    shuffle_buffer: int = Field(20_000, ge=0)
    steps_per_epoch: Optional[int] = Field(None, gt=0)
    verbose: int = Field(2, ge=0, le=2)


class EvalConfig(_Section):
    group_by: str = "user_id"
    batch_size: int = Field(8192, gt=0)


class ExportConfig(_Section):
    warmup_examples: int = Field(8, ge=0)


class Config(_Section):
    seed: int = 42
    simulate: SimulateConfig = SimulateConfig()
    data: DataConfig = DataConfig()
    features: list[FeatureConfig] = []
    labels: LabelsConfig = LabelsConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    export: ExportConfig = ExportConfig()

    @model_validator(mode="after")
    def _check_names(self):
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"features declared twice: {', '.join(dupes)}")
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
    value = yaml.safe_load(text) if text else ""
    node: Any = raw
    parts = dotted.strip().split(".")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"--set {dotted}: {'.'.join(parts[:i])} has no item {part!r} (file {path})")
            part = int(part)
        if last:
            node[part] = value
        else:
            if isinstance(node, dict) and part not in node:
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
