"""The root config: every stage's sections composed, the checks across sections, load / --set / dump.

Each stage owns its sections (``pipeline.config``, ``transforms.schema``, ``trainer.config``); this
module only composes them and keeps the rules that span two stages.

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
from pydantic import BaseModel, Field, ValidationError, field_serializer, field_validator, model_validator

from pipeline.config import DataConfig, PreprocessConfig, SimulateConfig, SimulateRatingsConfig
from pipeline.inputs import get_source
from trainer.config import EvalConfig, ExportConfig, ModelConfig, TrainConfig
from transforms.schema import FeatureConfig, LabelsConfig, Section


class ConfigError(ValueError):
    """A config file or override is invalid; the message names key and source."""


class CompareVariant(Section):
    """One ``compare.models`` entry with config overrides, e.g.
    ``{label: "C-IPS K=1", model: c_ips, set: {model.c_ips.n_clusters: 1}}``; ``set`` takes dotted keys
    under ``model.``, ``train.`` or ``eval.`` (the data are the same for every run)."""

    label: Optional[str] = Field(None, description="its name in tables (default: the model name)")
    model: str
    set: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self.label or self.model


class CompareConfig(Section):
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


class Config(Section):
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
            # the defaults are conversion estimators, and the oracle needs the data's ground truth
            truth = self.labels.task in get_source(self.data.source).ground_truth_for
            self.__dict__["run_models"] = list(DEFAULT_RUN_MODELS) if truth and self.labels.task == "conversion" else []
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
        passthrough = {self.labels.selection, self.labels.outcome, *self.labels.ground_truth}
        clash = sorted(passthrough & set(names))
        if clash:
            raise ValueError(f"label / ground-truth columns cannot be features: {', '.join(clash)}")
        return self


# --------------------------------------------------------------------------- loading
def packaged_configs_dir() -> Path:
    """The shipped configs: ``ctrcvr/configs/`` in an installed wheel, ``configs/`` in a checkout."""
    installed = Path(__file__).parent / "configs"
    return installed if installed.is_dir() else Path(__file__).resolve().parents[1] / "configs"


def packaged_configs() -> dict[str, Path]:
    """Shipped config name (file name without ``.yaml``) -> its file."""
    folder = packaged_configs_dir()
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def resolve_config_path(name_or_path: Union[str, Path]) -> Path:
    """A config file path as given, or else a shipped config by name (``default``, ``compare.yaml``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = packaged_configs()
    stem = path.name.removesuffix(".yaml") if path.parent == Path(".") else None
    if stem in shipped:
        return shipped[stem]
    close = difflib.get_close_matches(str(stem or path), shipped, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"config file not found: {path}{hint}; give a file path or one of the shipped configs: "
                      f"{', '.join(shipped)} (ctrcvr configs lists them)")


def load_config(path: Union[str, Path], overrides: tuple[str, ...] | list[str] = ()) -> Config:
    """Reads a YAML config (a path, or a shipped config's name; following ``extends``), applies
    ``key=value`` overrides, validates."""
    path = resolve_config_path(path)
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

