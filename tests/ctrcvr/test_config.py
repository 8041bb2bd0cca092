"""Config loading: validation errors name the key and the file; overrides; presets; round-trip."""
import pytest
import yaml

from ctrcvr.config import ConfigError, config_from_dict, dump_config, load_config


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_default_config_loads_and_declares_features(tmp_path):
    from tests.conftest import DEFAULT_CONFIG
    config = load_config(DEFAULT_CONFIG)
    assert config.model.name == "esmm"
    assert {"user_id", "item_id", "item_price"} <= {f.name for f in config.features}
    assert config.labels.selection == "click"


def test_unknown_key_names_key_file_and_closest_match(tmp_path):
    path = _write(tmp_path, "typo.yaml", {"train": {"batch_sise": 64}})
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "train.batch_sise" in message and str(path) in message and "'batch_size'" in message


def test_wrong_type_names_the_key(tmp_path):
    path = _write(tmp_path, "bad.yaml", {"train": {"epochs": "many"}})
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        load_config(path)


def test_transform_must_fit_the_feature_kind():
    with pytest.raises(ConfigError, match="features.0"):
        config_from_dict({"features": [{"name": "price", "kind": "numeric", "transform": "vocabulary"}]})


def test_label_cannot_be_a_feature():
    with pytest.raises(ConfigError, match="click"):
        config_from_dict({"features": [{"name": "click", "kind": "categorical"}]})


def test_calibration_slices_must_be_declared_features():
    config_from_dict({"features": [{"name": "position", "kind": "categorical"}],
                      "eval": {"calibration_slices": ["position"]}})
    with pytest.raises(ConfigError, match="calibration_slices names undeclared features: hour"):
        config_from_dict({"features": [{"name": "position", "kind": "categorical"}],
                          "eval": {"calibration_slices": ["hour"]}})


def test_overrides_apply_typed_values_and_reject_malformed(tmp_path):
    path = _write(tmp_path, "c.yaml", {"features": [{"name": "a", "kind": "categorical"}]})
    config = load_config(path, ["train.batch_size=2048", "model.tower.units=[8, 4]", "features.0.top_k=10"])
    assert config.train.batch_size == 2048
    assert config.model.tower.units == [8, 4]
    assert config.features[0].top_k == 10
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(path, ["train.batch_size"])
    with pytest.raises(ConfigError, match="unknown key 'train.bach_size'"):
        load_config(path, ["train.bach_size=3"])


def test_extends_merges_parent_and_child(tmp_path):
    _write(tmp_path, "base.yaml", {"seed": 7, "train": {"epochs": 5, "batch_size": 32}})
    child = _write(tmp_path, "child.yaml", {"extends": "base.yaml", "train": {"epochs": 1}})
    config = load_config(child)
    assert (config.seed, config.train.epochs, config.train.batch_size) == (7, 1, 32)


def test_resolved_config_round_trips(tmp_path):
    from tests.conftest import DEFAULT_CONFIG
    config = load_config(DEFAULT_CONFIG, ["train.epochs=9"])
    written = dump_config(config, tmp_path / "resolved.yaml")
    assert load_config(written) == config


def test_ratings_keys_unobserved_split_key_list_and_the_ratings_world():
    config = config_from_dict({"data": {"source": "simulated_ratings", "ratings": {"unobserved": "all"},
                                        "split": {"key": ["user_id", "item_id"]}},
                               "simulate_ratings": {"n_users": 50, "n_items": 20, "test_items": 5}})
    assert config.data.ratings.unobserved == "all" and config.data.split.key == ["user_id", "item_id"]
    assert config_from_dict({"data": {"source": "ratings", "ratings": {"unobserved": 4}}}).data.ratings.unobserved == 4
    for bad, message in (({"data": {"ratings": {"unobserved": -1}}}, "data.ratings.unobserved"),
                         ({"data": {"split": {"key": []}}}, "data.split.key"),
                         ({"simulate_ratings": {"n_items": 5, "test_items": 6}}, "test_items"),
                         ({"eval": {"ranking_ks": [0, 5]}}, "eval.ranking_ks"),
                         ({"data": {"source": "csv", "ratings": {"unobserved": 2}}}, "applies to the ratings sources")):
        with pytest.raises(ConfigError, match=message):
            config_from_dict(bad)


def test_lazy_adam_takes_sparse_embedding_gradients(tmp_path):
    assert config_from_dict({}).train.densify_embedding_gradients  # adam: densified by default
    lazy = config_from_dict({"train": {"optimizer": "lazy_adam"}}).train
    assert lazy.optimizer == "lazy_adam" and not lazy.densify_embedding_gradients
    assert not config_from_dict({"train": {"dense_embedding_gradients": False}}).train.densify_embedding_gradients
    path = _write(tmp_path, "lazy.yaml", {"train": {"optimizer": "lazy_adam", "dense_embedding_gradients": True}})
    with pytest.raises(ConfigError, match=r"train\.dense_embedding_gradients.*lazy_adam") as err:
        load_config(path)
    assert str(path) in str(err.value)
    with pytest.raises(ConfigError, match=r"train\.optimizer"):
        config_from_dict({"train": {"optimizer": "sgd"}})


def test_cache_examples_is_refused_with_cache_records_and_under_parameter_server(tmp_path):
    assert config_from_dict({"train": {"cache_examples": True}}).train.cache_examples
    path = _write(tmp_path, "both.yaml", {"train": {"cache_examples": True, "cache_records": True}})
    with pytest.raises(ConfigError, match=r"train\.cache_examples.*cache_records") as err:
        load_config(path)
    assert str(path) in str(err.value)
    with pytest.raises(ConfigError, match=r"train\.distribution.*cache_examples.*parameter_server"):
        config_from_dict({"train": {"cache_examples": True, "distribution": "parameter_server"}})
    assert config_from_dict({"train": {"cache_examples": True, "distribution": "multi_worker_mirrored"}})


def test_op_threads_are_checked_and_refused_once_tensorflow_runs_with_others():
    from trainer.threads import apply_op_threads
    from transforms.errors import UserError
    with pytest.raises(ConfigError, match=r"train\.intra_op_threads"):
        config_from_dict({"train": {"intra_op_threads": 0}})
    import tensorflow as tf
    tf.constant(1.0) + 1.0  # TensorFlow has started in this (test) process, with its default pools
    apply_op_threads(config_from_dict({}).train)  # nothing asked: nothing to change
    with pytest.raises(UserError, match="already runs") as err:
        apply_op_threads(config_from_dict({"train": {"inter_op_threads": 7}}).train)
    assert err.value.key == "train.inter_op_threads"
