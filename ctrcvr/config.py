"""The root config: every stage's sections composed, the checks across sections, load / --set / dump.

Each stage owns its sections (``pipeline.config``, ``transforms.schema``, ``trainer.config``); this
module only composes them and keeps the rules that span two stages.

A config file may name a parent with ``extends: other.yaml`` (deep-merged, lists
replaced); command-line overrides ``--set train.batch_size=2048`` are applied last.
Every fault raises :class:`ConfigError` (a ``transforms.errors.UserError``) naming the file that
holds the bad key (the parent for a key a parent sets; the ``--set`` item for an override), the key,
the line when YAML knows it, and for typos the closest valid key. Duplicate keys in a mapping are
errors, not last-wins; ``true`` is not a number.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Optional, Union

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from ctrcvr.compare_config import CompareConfig, CompareVariant, SweepConfig, TuneConfig  # noqa: F401 (re-exported)
from ctrcvr.yaml_files import parse_yaml, read_text
from pipeline.config import DataConfig, PreprocessConfig, SimulateConfig, SimulateRatingsConfig
from pipeline.video_config import SimulateVideoConfig
from trainer.config import EvalConfig, ExportConfig, ModelConfig, TrainConfig
from transforms.errors import UserError, did_you_mean
from transforms.schema import FeatureConfig, LabelsConfig, Section


class ConfigError(UserError):
    """A config file or override is invalid: ``file`` is the file that holds the bad key (a parent
    config for a key it sets), ``key`` the dotted key, ``line`` the YAML line when known."""


class Config(Section):
    seed: int = 42
    simulate: SimulateConfig = SimulateConfig()
    simulate_ratings: SimulateRatingsConfig = SimulateRatingsConfig()
    simulate_video: SimulateVideoConfig = SimulateVideoConfig()
    data: DataConfig = DataConfig()
    features: list[FeatureConfig] = []
    labels: LabelsConfig = LabelsConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    export: ExportConfig = ExportConfig()
    compare: CompareConfig = CompareConfig()
    tune: TuneConfig = TuneConfig()
    run_models: list[str] = Field(
        [], description="`ctrcvr run` also trains and evaluates these estimators beside model.name (which "
        "alone is exported) and prints them side by side (the default config names a few); estimators that "
        "need the simulator's ground truth are skipped, with a warning, on data without it")

    @model_validator(mode="after")
    def _check_names(self):
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"features declared twice: {', '.join(dupes)}")
        unknown = sorted(set(self.eval.calibration_slices) - set(names))
        if unknown:
            raise ValueError(f"eval.calibration_slices names undeclared features: {', '.join(unknown)}")
        passthrough = {self.labels.selection, self.labels.outcome, *self.labels.ground_truth,
                       *(name for name, _ in self.labels.spec.columns)}
        clash = sorted(passthrough & set(names))
        if clash:
            raise ValueError(f"label / ground-truth columns cannot be features: {', '.join(clash)}")
        return self

    @model_validator(mode="after")
    def _check_online(self):
        from trainer.estimators.registry import ESTIMATORS
        online = [n for n, s in ESTIMATORS.items() if s.online]
        if self.train.mode == "online" and self.model.name not in online:
            raise ValueError(f"train.mode online: {self.model.name!r} has no online loop (estimators with one: "
                             f"{', '.join(online)})")
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
    if path.is_dir():
        raise ConfigError("is a directory: give a config file (or the name of a shipped config)", file=path)
    shipped = packaged_configs()
    stem = path.name.removesuffix(".yaml") if path.parent == Path(".") else None
    if stem in shipped:
        return shipped[stem]
    hint = did_you_mean(stem or path, shipped)
    raise ConfigError(f"config file not found: {path}{hint}; give a file path or one of the shipped configs: "
                      f"{', '.join(shipped)} (ctrcvr configs lists them)")


def load_config(path: Union[str, Path], overrides: tuple[str, ...] | list[str] = ()) -> Config:
    """Reads a YAML config (a path, or a shipped config's name; following ``extends``), applies
    ``key=value`` overrides, validates."""
    path = resolve_config_path(path)
    raw, origins = _read_with_parents(path, seen=())
    for item in overrides:
        _apply_override(raw, item, path, origins)
    return _validate(raw, source=str(path), origins=origins)


def config_from_dict(raw: dict, source: str = "<dict>") -> Config:
    """Validates an in-memory config (tests, notebooks)."""
    return _validate(raw, source=source)


def dump_config(config: Config, path: Union[str, Path]) -> Path:
    """Writes the fully resolved config, every default spelled out."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return path


# Where each key of a raw config came from: key path (strings) -> (the file that set it, its line), or the
# --set item that set it.
_Origins = dict[tuple[str, ...], Union[tuple[Path, Optional[int]], str]]


def _read_with_parents(path: Path, seen: tuple[Path, ...]) -> tuple[dict, _Origins]:
    """The merged raw config of ``path`` and its ``extends`` chain, and where each key came from."""
    raw, lines = parse_yaml(read_text(path, ConfigError), file=path, error=ConfigError)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"the top level must be a mapping of keys (key: value), not a {type(raw).__name__}",
                          file=path)
    parent = raw.pop("extends", None)
    origins: _Origins = {}
    if parent is not None:
        where = {"file": path, "line": lines.get(("extends",)), "key": "extends"}
        if not isinstance(parent, str) or not parent.strip():
            raise ConfigError(f"expected the file name of one parent config (extends: default.yaml), "
                              f"got {parent!r}", **where)
        parent_path = path.parent / parent
        if not parent_path.is_file():
            raise ConfigError(f"parent config not found: {parent_path}", **where)
        if parent_path.resolve() in (*seen, path.resolve()):
            raise ConfigError(f"{parent} is already in the extends chain (a cycle)", **where)
        base, origins = _read_with_parents(parent_path, seen + (path.resolve(),))
    for leaf in _leaf_paths(raw):
        _record(origins, leaf, (path, lines.get(leaf)))
    return (_deep_merge(base, raw) if parent is not None else raw), origins


def _leaf_paths(raw, prefix: tuple[str, ...] = ()):
    """Key paths of the values a raw config sets; lists are leaves (a child's list replaces the parent's)."""
    if isinstance(raw, dict) and (raw or not prefix):
        for key, value in raw.items():
            yield from _leaf_paths(value, (*prefix, str(key)))
    else:
        yield prefix


def _record(origins: _Origins, path: tuple[str, ...], source) -> None:
    """``path`` now comes from ``source``: what its ancestors or descendants were recorded as is stale."""
    for known in [k for k in origins if k[:len(path)] == path or path[:len(k)] == k]:
        del origins[known]
    origins[path] = source


def _deep_merge(base: dict, top: dict) -> dict:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _apply_override(raw: dict, item: str, path: Path, origins: Optional[_Origins] = None) -> None:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.batch_size=2048", file=path)
    dotted, text = (part.strip() for part in item.split("=", 1))
    if not dotted:
        raise ConfigError(f"--set {item!r}: no key before '=' (expected KEY=VALUE, e.g. train.epochs=5)", file=path)
    value = parse_yaml(text, file=path, override=item, key=dotted, error=ConfigError)[0] if text else ""
    try:
        set_dotted(raw, dotted, value, source=f"--set {item!r}")
    except ConfigError as err:
        raise ConfigError(err.message, file=path, key=dotted) from None
    if origins is not None:
        _record(origins, tuple(dotted.split(".")), f"--set {item}")


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
        elif not isinstance(node, dict):
            raise ConfigError(f"{source}: {'.'.join(parts[:i])} is a {type(node).__name__}, it has no key "
                              f"{part!r}")
        if i == len(parts) - 1:
            node[part] = value
        else:
            if isinstance(node, dict) and not isinstance(node.get(part), (dict, list)):
                node[part] = {}
            node = node[part]


def _validate(raw: dict, source: str, origins: Optional[_Origins] = None) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        problems = list(dict.fromkeys(_describe(e) for e in err.errors()))
    located = [(*_origin(loc, source, origins or {}), key, message) for loc, key, message in problems]
    if len(located) == 1:
        file, line, note, key, message = located[0]
        raise ConfigError(message + note, file=file, line=line, key=key) from None
    # several problems: still one line, each naming its file or line when known
    parts = []
    for file, line, note, key, message in located:
        where = file if file != source else ""
        where = f"{where}:{line}" if where and line else where or (f"line {line}" if line else "")
        parts.append(": ".join(p for p in (where, key, message + note) if p))
    raise ConfigError(f"{len(parts)} problems: " + "; ".join(parts), file=source) from None


def _origin(loc: tuple, source: str, origins: _Origins) -> tuple[str, Optional[int], str]:
    """(the file to blame for the key at ``loc``, its line, a note on how the key got there)."""
    path = tuple(str(p) for p in loc)
    found = next((origins[path[:i]] for i in range(len(path), 0, -1) if path[:i] in origins), None)
    if found is None:  # a check over a whole section (or the root): blame its one source if it has one
        sources = {v if isinstance(v, str) else v[0] for k, v in origins.items() if k[:len(path)] == path}
        if len(sources) == 1:
            only = sources.pop()
            found = only if isinstance(only, str) else (only, None)
    if found is None:
        return source, None, ""
    if isinstance(found, str):  # a --set item
        return source, None, f" (from {found})"
    file, line = found
    return str(file), line, "" if str(file) == source else f" (extended by {source})"


def _describe(error: dict) -> tuple[tuple, Optional[str], str]:
    """(location, dotted key or None, what is wrong) of one pydantic error; the value is shown briefly."""
    loc = tuple(error["loc"])
    key = ".".join(str(p) for p in loc) or None
    if error["type"] == "extra_forbidden":
        valid = _fields_at(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)  # the key's own wording below
        hint = f" (did you mean {close[0]!r}?)" if close else f" (valid keys: {', '.join(valid)})"
        return loc, None, f"unknown key {key!r}{hint}"
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if "got " not in message and not isinstance(value, dict):
        shown = repr(value)
        message += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    return loc, key, message


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
