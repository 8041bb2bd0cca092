"""One run's config: the base config switched to an estimator, a seed offset and dotted overrides,
revalidated. Shared by ``compare`` (its variants and sweep points) and ``tune`` (its trials)."""
from __future__ import annotations

from ctrcvr.config import Config, ConfigError, config_from_dict, set_dotted

VARIANT_SECTIONS = ("model.", "train.", "eval.")  # what a variant may set: the data are shared


def variant(config: Config, seed_index: int, name: str, overrides: dict, source: str) -> Config:
    """The config of one run: ``name``, seed + ``seed_index``, the dotted ``overrides`` (under
    ``VARIANT_SECTIONS``), revalidated so that an unknown key or a bad value fails before any training."""
    raw = config.model_dump(mode="json")
    raw["seed"] = config.seed + seed_index
    raw["model"] = config.model.switch_to(name).model_dump(mode="json")  # the keys ``name`` reads
    for dotted, value in overrides.items():
        if not dotted.startswith(VARIANT_SECTIONS) or dotted == "model.name":
            raise ConfigError(f"{source}: cannot set {dotted!r}: a variant sets keys under "
                              f"{', '.join(VARIANT_SECTIONS)} (every run shares the data; the estimator is 'model')")
        set_dotted(raw, dotted, value, source)
    return config_from_dict(raw, source=source)
