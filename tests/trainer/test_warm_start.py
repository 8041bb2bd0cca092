"""Daily training: day 1 trains; day 2 is preprocessed with its own vocabulary (ids that are new, ids
that vanished, every shared token renumbered) and warm-starts from day 1. By token, every row of a token
both days know equals day 1's trained row, every new token has the fresh row a cold start gives it; the
optimizer's state moved with the rows; the export of day 2 serves old and new ids."""
import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from ctrcvr import workflow
from ctrcvr.config import config_from_dict
from ctrcvr.serving.check import serve_check
from ctrcvr.serving.client import to_raw_examples
from pipeline.config import PreprocessSections
from pipeline.inputs import resolve_inputs
from pipeline.job import run_preprocess
from trainer.train import build_model, train
from trainer.warm_start import read_vocabulary
from transforms.schema import Schema

DAY1_USERS, DAY2_USERS = range(0, 30), range(10, 40)   # u0-u9 vanish, u30-u39 are new on day 2


def _write_day(path, users, seed, n=600):
    rng = np.random.default_rng(seed)
    # day 2 draws the shared users with other frequencies, so their vocabulary ids change
    weights = np.linspace(1, 3, len(users)) if seed % 2 else np.linspace(3, 1, len(users))
    picked = rng.choice(list(users), n, p=weights / weights.sum())
    clicks = (rng.random(n) < 0.2 + 0.02 * (picked % 10)).astype(int)
    pd.DataFrame({"exposure_id": [f"{path.stem}-{k}" for k in range(n)], "user_id": [f"u{u}" for u in picked],
                  "item_id": [f"i{x}" for x in rng.integers(0, 15, n)], "tag": [f"t{x}" for x in rng.integers(0, 20, n)],
                  "click": clicks,
                  "conversion": clicks * (rng.random(n) < 0.3)}).to_csv(path, index=False)
    return path


def _config(tmp, day, preprocess=None, **train):
    files = [str(_write_day(tmp / f"day{day}.csv", DAY1_USERS if day == 1 else DAY2_USERS, day))]
    return config_from_dict({
        "data": {"source": "csv", "train_files": files, "eval_files": files, "split": {"by": "files"}},
        "features": [{"name": "user_id", "kind": "categorical"}, {"name": "item_id", "kind": "categorical"},
                     {"name": "tag", "kind": "categorical", "transform": "hash", "hash_buckets": 8}],
        "labels": {"ground_truth": [], "keys": ["exposure_id"]}, "preprocess": {"num_shards": 1, **(preprocess or {})},
        "model": {"name": "esmm", "embedding_dim": 4, "tower": {"units": [8]}},
        "train": {"epochs": 2, "batch_size": 64, "shuffle_buffer": 0, "learning_rate": 0.05, **train},
        "export": {"warmup_examples": 4}})


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("warm_start")
    out = {}
    for day, train_settings in ((1, {}), (2, {"learning_rate": 1e-9, "steps_per_epoch": 1, "epochs": 1})):
        config = _config(tmp, day, **train_settings)
        run_preprocess(PreprocessSections.of(config), resolve_inputs(config.data), tmp / f"xf{day}")
        out[day] = {"config": config, "spec": workflow.trainer_spec(config), "data": tmp / f"xf{day}",
                    "model_dir": tmp / f"model{day}", "csv": tmp / f"day{day}.csv"}
    day1 = out[1]
    out[1]["model"] = train(day1["spec"], day1["data"], day1["model_dir"])
    out[2]["model"] = workflow.train(out[2]["config"], out[2]["data"], out[2]["model_dir"],
                                     warm_start_from=day1["model_dir"])
    out["root"] = tmp / "serving"
    return out


def _rows(model, data_dir):
    """{token: its row of the user table} of a model trained on ``data_dir``."""
    tokens = read_vocabulary(f"{data_dir}/transform_fn/assets/user_id")
    table = model.embeddings["shared"].tables["user_id"].embeddings.numpy()
    return {t.decode(): table[i] for i, t in enumerate(tokens)}, table


def test_rows_follow_their_tokens(days):
    old, _ = _rows(days[1]["model"], days[1]["data"])
    new, _ = _rows(days[2]["model"], days[2]["data"])
    shared = sorted(set(old) & set(new))
    assert {f"u{u}" for u in range(10, 30)} == set(shared)
    old_ids = {t.decode(): i for i, t in enumerate(read_vocabulary(f"{days[1]['data']}/transform_fn/assets/user_id"))}
    new_ids = {t.decode(): i for i, t in enumerate(read_vocabulary(f"{days[2]['data']}/transform_fn/assets/user_id"))}
    assert sum(old_ids[t] != new_ids[t] for t in shared) > 10  # renumbered: an index copy would be wrong
    for token in shared:
        np.testing.assert_allclose(new[token], old[token], atol=1e-5, err_msg=token)
    tf.keras.utils.set_random_seed(days[2]["spec"].seed)
    _, cold, _ = build_model(days[2]["spec"], days[2]["data"])  # a cold start's fresh rows, same seed
    fresh, _ = _rows(cold, days[2]["data"])
    for token in (f"u{u}" for u in range(30, 40)):
        np.testing.assert_allclose(new[token], fresh[token], atol=1e-5, err_msg=token)
        assert min(np.abs(new[token] - row).max() for row in old.values()) > 1e-3

    report = json.loads((days[2]["model_dir"] / "warm_start.json").read_text())
    assert report["tables"]["tag"]["carried"] == 8  # hash buckets: row b is bucket b on both days
    user = report["tables"]["user_id"]
    assert (user["carried"], user["new"], user["dropped"], user["oov_buckets_carried"]) == (20, 10, 10, 1)
    assert report["optimizer"].startswith("carried") and report["tower_variables_carried"] == 8  # 2 towers × 2 Dense


def test_optimizer_slots_move_with_the_rows(days):
    from trainer.model.keras_fit import make_optimizer
    from trainer.warm_start import warm_start
    estimator, model, data = build_model(days[2]["spec"], days[2]["data"])
    model.compile(optimizer=make_optimizer(days[2]["spec"].train))
    warm_start(model, estimator, days[2]["spec"], data, days[1]["model_dir"])
    previous = tf.train.load_checkpoint(str(days[1]["model_dir"] / "weights" / "final"))
    key = next(k for k in previous.get_variable_to_shape_map()
               if "tables/user_id/embeddings/.OPTIMIZER_SLOT/optimizer/m/" in k)
    old_m = previous.get_tensor(key)
    old_ids = {t: i for i, t in enumerate(read_vocabulary(f"{days[1]['data']}/transform_fn/assets/user_id"))}
    new_ids = {t: i for i, t in enumerate(read_vocabulary(f"{days[2]['data']}/transform_fn/assets/user_id"))}
    new_m = model.optimizer.get_slot(model.embeddings["shared"].tables["user_id"].embeddings, "m").numpy()
    for token, i in new_ids.items():
        expected = old_m[old_ids[token]] if token in old_ids else np.zeros(4)
        np.testing.assert_allclose(new_m[i], expected, atol=1e-7)
    assert int(model.optimizer.iterations) > 0


def test_the_day2_export_serves_old_and_new_ids(days):
    day2 = days[2]
    version = workflow.export(day2["config"], day2["data"], day2["model_dir"], days["root"], model=day2["model"],
                              raw_dir=None)
    assert serve_check(version)["warmup_requests"] >= 1
    rows = pd.DataFrame({"user_id": ["u15", "u35", "u5", "never-seen"], "item_id": ["i1"] * 4, "tag": ["t1"] * 4})
    served = tf.saved_model.load(str(version)).signatures["serving_default"](
        examples=tf.constant(to_raw_examples(rows, Schema.from_config(day2["config"]))))
    pctr = served["pctr"].numpy()
    assert np.all((pctr > 0) & (pctr < 1))
    assert pctr[0] != pctr[1] and pctr[1] != pctr[3]  # old and new ids have rows of their own, not the OOV one
    assert pctr[2] == pytest.approx(pctr[3])           # a vanished id is out of vocabulary on day 2


def test_hash_collisions_are_reported(days):
    report = json.loads((days[1]["data"] / "report.json").read_text())
    buckets = tf.strings.to_hash_bucket_fast([f"t{x}" for x in range(20)], 8).numpy()
    assert report["hash_collisions"]["tag"] == {
        "hash_buckets": 8, "distinct_values": 20, "distinct_buckets": len(set(buckets)),
        "collision_rate": pytest.approx(1 - len(set(buckets)) / 20, abs=1e-6)}


def test_fixed_vocabulary_keeps_the_previous_ids(days, tmp_path):
    config = _config(tmp_path, 2, preprocess={"fixed_vocabulary_from": str(days[1]["data"])})
    run_preprocess(PreprocessSections.of(config), resolve_inputs(config.data), tmp_path / "xf")
    for name in ("user_id", "item_id"):
        assert (read_vocabulary(tmp_path / "xf" / "transform_fn" / "assets" / name)
                == read_vocabulary(days[1]["data"] / "transform_fn" / "assets" / name))
    output = tft.TFTransformOutput(str(tmp_path / "xf"))
    ids = output.transform_features_layer()({"user_id": tf.constant(["u15", "u35"]), "item_id": tf.constant(["i1"] * 2),
                                             "tag": tf.constant(["t1"] * 2)})["user_id_xf"].numpy()
    day1 = read_vocabulary(days[1]["data"] / "transform_fn" / "assets" / "user_id")
    assert ids[0] == day1.index(b"u15") and ids[1] == len(day1)  # u35, new on day 2, is out of vocabulary


def _on_backbone(config, backbone, **sections):
    model = type(config.model)(**{**config.model.model_dump(), "backbone": backbone, **sections})
    return config.model_copy(update={"model": model})


def test_warm_start_on_a_dcn_backbone(days, tmp_path):
    """The same two days (same preprocess outputs) on DCN-v2 towers (tfrs Cross layers over the fields, then the
    MLP): rows follow their tokens as on the MLP towers, the cross layers carry over, day 2's export serves."""
    configs = {d: _on_backbone(days[d]["config"], "dcn", dcn={"cross_layers": 2}) for d in (1, 2)}
    day1 = workflow.train(configs[1], days[1]["data"], tmp_path / "dcn1")
    day2 = workflow.train(configs[2], days[2]["data"], tmp_path / "dcn2", warm_start_from=tmp_path / "dcn1")
    assert type(day2.towers["ctr"]).__name__ == "DcnBackbone"

    old, _ = _rows(day1, days[1]["data"])
    new, _ = _rows(day2, days[2]["data"])
    for token in (f"u{u}" for u in range(10, 30)):  # on both days, renumbered on day 2
        np.testing.assert_allclose(new[token], old[token], atol=1e-5, err_msg=token)
    tf.keras.utils.set_random_seed(days[2]["spec"].seed)
    _, cold, _ = build_model(workflow.trainer_spec(configs[2]), days[2]["data"])
    fresh, _ = _rows(cold, days[2]["data"])
    for token in (f"u{u}" for u in range(30, 40)):  # new on day 2: the cold start's row
        np.testing.assert_allclose(new[token], fresh[token], atol=1e-5, err_msg=token)

    for tower in ("ctr", "cvr"):  # every DCN variable (cross kernels and biases, the MLP, the head) carried
        before, after = day1.towers[tower].variables, day2.towers[tower].variables  # in build order (names
        assert [v.shape for v in before] == [v.shape for v in after]            # carry Keras' counters)
        assert sum(f"{tower}_cross" in v.name for v in after) == 4  # 2 Cross layers × (kernel, bias)
        for old_v, new_v in zip(before, after):
            np.testing.assert_allclose(new_v.numpy(), old_v.numpy(), atol=1e-5, err_msg=f"{tower}: {new_v.name}")
    report = json.loads((tmp_path / "dcn2" / "warm_start.json").read_text())
    user = report["tables"]["user_id"]
    assert (user["carried"], user["new"], user["dropped"], user["oov_buckets_carried"]) == (20, 10, 10, 1)
    assert report["tower_variables_carried"] == sum(len(day1.towers[t].variables) for t in ("ctr", "cvr"))

    version = workflow.export(configs[2], days[2]["data"], tmp_path / "dcn2", tmp_path / "serving", model=day2)
    assert serve_check(version)["warmup_requests"] >= 1


def test_warm_start_on_an_mf_backbone_moves_the_id_biases_with_their_tokens(days, tmp_path):
    """On the mf backbone each tower holds a bias per user and per item (b_u, b_i, tables of the vocabulary's
    size): the warm start remaps them by token like the embedding rows (new ids: the fresh zero bias), instead
    of copying them by index with the rest of the tower."""
    configs = {d: _on_backbone(days[d]["config"], "mf") for d in (1, 2)}
    day1 = workflow.train(configs[1], days[1]["data"], tmp_path / "mf1")
    day2 = workflow.train(configs[2], days[2]["data"], tmp_path / "mf2", warm_start_from=tmp_path / "mf1")
    old, _ = _rows(day1, days[1]["data"])
    new, _ = _rows(day2, days[2]["data"])
    for token in (f"u{u}" for u in range(10, 30)):
        np.testing.assert_allclose(new[token], old[token], atol=1e-5, err_msg=token)
    old_ids = {t.decode(): i for i, t in enumerate(read_vocabulary(f"{days[1]['data']}/transform_fn/assets/user_id"))}
    new_ids = {t.decode(): i for i, t in enumerate(read_vocabulary(f"{days[2]['data']}/transform_fn/assets/user_id"))}
    for tower in ("ctr", "cvr"):
        before = day1.towers[tower].score.user_bias.embeddings.numpy()[:, 0]
        after = day2.towers[tower].score.user_bias.embeddings.numpy()[:, 0]
        assert np.abs(before).max() > 1e-3  # trained on day 1
        for token, i in new_ids.items():
            expected = before[old_ids[token]] if token in old_ids else 0.0
            assert after[i] == pytest.approx(expected, abs=1e-5), (tower, token)
    report = json.loads((tmp_path / "mf2" / "warm_start.json").read_text())
    b_u = report["tower_id_tables"]["ctr_mf/b_u"]
    assert (b_u["feature"], b_u["carried"], b_u["new"], b_u["dropped"]) == ("user_id", 20, 10, 10)
