"""``ctrcvr compare``: the run plan, the mean ± std table on hand-made numbers, and a tiny run end to end."""
import math

import pandas as pd
import pytest

from ctrcvr.config import ConfigError, config_from_dict
from ctrcvr.compare import plan_runs, summarise, train_runs, write_outputs
from ctrcvr.tables import mean_std


def test_plan_covers_models_times_seeds_then_the_sweeps():
    config = config_from_dict({"seed": 7, "model": {"ipw": {"tau": 0.01}}, "compare": {
        "models": ["esmm", "multi_ipw"], "seeds": 2,
        "sweeps": [{"model": "multi_ipw", "knob": "tau_percent", "values": [0.5, 0.9], "seeds": 1},
                   {"model": "multi_dr", "knob": "undersample", "values": [1.5], "seeds": 1}]}})
    runs = plan_runs(config)
    assert [(r.label, r.config.model.name, r.config.seed) for r in runs] == [
        ("esmm", "esmm", 7), ("esmm", "esmm", 8), ("multi_ipw", "multi_ipw", 7), ("multi_ipw", "multi_ipw", 8),
        ("multi_ipw tau_percent=0.5", "multi_ipw", 7), ("multi_ipw tau_percent=0.9", "multi_ipw", 7),
        ("multi_dr undersample=1.5", "multi_dr", 7)]
    swept = runs[4].config.model.ipw
    assert swept.tau is None and swept.tau_percent == 0.5, "a τ% point replaces the absolute τ"
    assert runs[6].config.model.undersample_rate == 1.5 and runs[6].sweep == "multi_dr_undersample"
    assert config.model.ipw.tau == 0.01, "the base config is left alone"


def test_plan_fails_early_on_an_invalid_sweep_value():
    config = config_from_dict({"compare": {"sweeps": [{"model": "multi_ipw", "knob": "tau_percent", "values": [1.5]}]}})
    with pytest.raises(ValueError, match="tau_percent"):
        plan_runs(config)
    with pytest.raises(ValueError, match=r"multi_ipw declares no knob 'tau_procent' \(its knobs: tau_percent"):
        plan_runs(config_from_dict({"compare": {"sweeps": [{"model": "multi_ipw", "knob": "tau_procent",
                                                            "values": [0.5]}]}}))
    with pytest.raises(ValueError, match="compare.models is empty"):
        plan_runs(config_from_dict({}))
    with pytest.raises(ValueError, match=r"compare.tau_percent_sweep was replaced by compare.sweeps"):
        config_from_dict({"compare": {"tau_percent_sweep": [0.5]}})


def test_summary_is_mean_and_sample_std_over_seeds():
    runs = pd.DataFrame({"run": ["a", "a", "a", "b"], "auc": [0.6, 0.7, 0.8, 0.5], "bias": [0.1, 0.1, 0.1, -0.2]})
    summary = summarise(runs, ["auc", "bias", "absent"])
    assert list(summary.index) == ["a", "b"] and summary.loc["a", "seeds"] == 3
    assert summary.loc["a", "auc_mean"] == pytest.approx(0.7)
    assert summary.loc["a", "auc_std"] == pytest.approx(math.sqrt(((0.1 ** 2) * 2) / 2))
    assert summary.loc["b", "auc_std"] == 0.0
    table = mean_std(summary, ["auc", "bias"]).splitlines()
    assert table[0] == "| model | seeds | auc | bias |"
    assert table[2] == "| a | 3 | 0.7000 ± 0.1000 | 0.1000 ± 0.0000 |"
    assert table[3] == "| b | 1 | 0.5000 ± 0.0000 | -0.2000 ± 0.0000 |"


def test_compare_trains_every_run_on_the_same_data_and_writes_table_csv_and_plots(tiny_run, tmp_path):
    config = config_from_dict({**tiny_run["config"].model_dump(mode="json"),
                               "train": {"epochs": 1, "batch_size": 256, "steps_per_epoch": 3},
                               "compare": {"models": ["base", "multi_ipw"], "seeds": 2, "sweeps": [
                                   {"model": "multi_ipw", "knob": "tau_percent", "values": [0.5], "seeds": 1}]}})
    data_dir = tiny_run["dir"] / "data" / "transformed"
    runs = pd.DataFrame(train_runs(plan_runs(config), data_dir, tmp_path))
    assert len(runs) == 5 and runs["cvr_auc_entire_space"].notna().all()
    result = write_outputs(runs, config, tmp_path)
    lines = result["table"].splitlines()
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| base", "| multi_ipw"]
    assert " ± " in lines[2] and "| 2 |" in lines[2]
    for name in ("runs.csv", "summary.md", "summary.csv", "compare.png", "sweep_multi_ipw_tau_percent.png",
                 "sweeps.md"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert pd.read_csv(tmp_path / "summary.csv", index_col="model").loc["multi_ipw", "seeds"] == 2
    resolved = [p.parent.name for p in tmp_path.glob("models/*/seed*/config.resolved.yaml")]
    assert len(resolved) == 5, "every trained model keeps the config it was trained with"


def _with_models(*models, **compare):
    return config_from_dict({"compare": {"models": list(models), "seeds": 2, **compare}})


def test_a_variant_is_a_named_model_with_validated_overrides():
    config = _with_models("esmm", {"label": "C-IPS K=1", "model": "c_ips",
                                   "set": {"model.c_ips.n_clusters": 1, "train.epochs": 7}})
    runs = plan_runs(config)
    assert [(r.label, r.config.model.name, r.config.seed) for r in runs] == [
        ("esmm", "esmm", 42), ("esmm", "esmm", 43), ("C-IPS K=1", "c_ips", 42), ("C-IPS K=1", "c_ips", 43)]
    assert runs[2].config.model.c_ips.n_clusters == 1 and runs[2].config.train.epochs == 7
    assert runs[0].config.model.c_ips.n_clusters == 6 and runs[0].config.train.epochs == 3, "only the variant"
    dumped = config.model_dump(mode="json")["compare"]["models"]
    assert dumped[0] == "esmm" and dumped[1]["label"] == "C-IPS K=1", "plain names stay names in the resolved config"


def test_a_variant_with_an_unknown_key_fails_before_training_naming_entry_and_key():
    config = _with_models("esmm", {"label": "typo", "model": "c_ips", "set": {"model.c_ips.n_cluster": 1}})
    with pytest.raises(ConfigError, match=r"(?s)compare.models\[1\] \('typo'\).*unknown key 'model.c_ips.n_cluster' "
                                          r"\(did you mean 'n_clusters'\?\)"):
        plan_runs(config)
    with pytest.raises(ConfigError, match=r"model.c_ips.n_clusters: Input should be greater than or equal to 1"):
        plan_runs(_with_models({"model": "c_ips", "set": {"model.c_ips.n_clusters": 0}}))


def test_a_variant_cannot_change_the_shared_data_or_name_an_unknown_estimator():
    with pytest.raises(ConfigError, match="cannot set 'data.split.key'"):
        plan_runs(_with_models({"label": "x", "model": "esmm", "set": {"data.split.key": "user_id"}}))
    with pytest.raises(ConfigError, match="cannot set 'model.name'"):
        plan_runs(_with_models({"label": "x", "model": "esmm", "set": {"model.name": "c_ips"}}))
    with pytest.raises(ConfigError, match=r"compare.models\[0\].*unknown estimator 'c_ipz' \(did you mean 'c_ips'\?\)"):
        plan_runs(_with_models("c_ipz"))


def test_variant_entries_reject_unknown_fields_and_duplicate_labels_at_load_time():
    with pytest.raises(ConfigError, match=r"unknown key 'compare.models.0.sett' \(did you mean 'set'\?\)"):
        _with_models({"model": "esmm", "sett": {}})
    with pytest.raises(ConfigError, match="two entries are named 'esmm'"):
        _with_models("esmm", {"model": "esmm", "set": {"train.epochs": 1}})
