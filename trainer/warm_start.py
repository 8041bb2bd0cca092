"""Daily training with growing vocabularies: day N+1's model takes over day N's trained state.

Day N+1's preprocessing builds its own vocabularies, so a token's id changes from one day to the next.
:func:`warm_start` matches embedding rows **by token**, through the two days' vocabulary files (day N's
copied into its model dir by :func:`record_tables` at training time, so the previous data may be gone):

    vocabulary features   row of token t in day N+1  <-  row of t in day N, for every t in both;
                          tokens new on day N+1 keep their fresh initial rows; day N's tokens absent
                          on day N+1 are dropped; the OOV buckets (ids ≥ vocabulary size) are carried
                          bucket by bucket when both days have as many (same hash of the token)
    hash features         row b <- row b (a bucket is the same set of tokens every day) when both days
                          have the same hash_buckets; otherwise every row starts fresh
    bucketize features    row b <- row b (the quantile boundaries move a little from day to day)

Towers (every other variable: kernels, biases, batch-norm statistics) are copied as they are, through a
checkpoint of the towers (so into sharded / mirrored variables too); their shapes must match (the same
``model`` section). The optimiser's state carries over too: Adam's step
count, and its m and v slots, of the towers as they are and of the embedding rows remapped exactly as
the rows are (new rows: zero slots). Under a tf.distribute strategy, whose slots are per shard /
replica, the weights are carried and the optimiser starts afresh (said in the report).

The report (logged, and ``<model_dir>/warm_start.json``) gives per table: rows carried, new, dropped.
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf

from transforms.errors import UserError
from transforms.schema import FeatureConfig, transformed_name

log = logging.getLogger("trainer")
TABLES_FILE = "tables.json"
VOCABULARIES = "vocabularies"
REPORT_FILE = "warm_start.json"


def record_tables(spec, data, model_dir) -> Path:
    """Writes ``<model_dir>/tables.json`` (rows and transform of every table) and copies the vocabulary
    files into ``<model_dir>/vocabularies/``: what the next day's warm start needs of this one."""
    model_dir = Path(model_dir)
    (model_dir / VOCABULARIES).mkdir(parents=True, exist_ok=True)
    sizes = data.cardinalities()
    tables = {}
    for f in spec.features:
        if not f.is_embedded:
            continue
        entry = {"rows": sizes[f.name], "transform": f.transform, "dim": f.embedding_dim or spec.model.embedding_dim}
        if f.transform == "vocabulary":
            entry.update(vocabulary_size=data.tft_output.vocabulary_size_by_name(f.name),
                         num_oov_buckets=f.num_oov_buckets)
            shutil.copyfile(data.tft_output.vocabulary_file_by_name(f.name), model_dir / VOCABULARIES / f.name)
        elif f.transform == "hash":
            entry.update(hash_buckets=f.hash_buckets)
        tables[f.name] = entry
    path = model_dir / TABLES_FILE
    path.write_text(json.dumps({"estimator": spec.model.name, "tables": tables}, indent=2))
    return path


def read_vocabulary(path) -> list[bytes]:
    with tf.io.gfile.GFile(str(path), "rb") as f:
        return [line.rstrip(b"\r\n") for line in f]


def row_mapping(feature: FeatureConfig, previous: dict, previous_dir: Path, data) -> tuple[np.ndarray, np.ndarray, dict]:
    """(new rows, old rows) to copy, and the counts {carried, new, dropped, rows_before, rows_after}."""
    rows_after = data.cardinalities()[feature.name]
    rows_before = previous["rows"]
    if feature.transform == "vocabulary" and previous.get("transform") == "vocabulary":
        old_tokens = read_vocabulary(previous_dir / VOCABULARIES / feature.name)
        new_tokens = read_vocabulary(data.tft_output.vocabulary_file_by_name(feature.name))
        old_index = {t: i for i, t in enumerate(old_tokens)}
        pairs = [(i, old_index[t]) for i, t in enumerate(new_tokens) if t in old_index]
        carried_tokens = len(pairs)
        if previous["num_oov_buckets"] == feature.num_oov_buckets:
            pairs += [(len(new_tokens) + b, len(old_tokens) + b) for b in range(feature.num_oov_buckets)]
        new, old = (np.array(x, dtype=np.int64) for x in zip(*pairs)) if pairs else (np.zeros(0, np.int64),) * 2
        counts = {"carried": carried_tokens, "new": len(new_tokens) - carried_tokens,
                  "dropped": len(old_tokens) - carried_tokens, "oov_buckets_carried": len(pairs) - carried_tokens}
    elif feature.transform == previous.get("transform") and rows_before == rows_after:
        new = old = np.arange(rows_after, dtype=np.int64)  # hash buckets / bucketize: by index
        counts = {"carried": rows_after, "new": 0, "dropped": 0}
    else:
        new = old = np.zeros(0, np.int64)
        counts = {"carried": 0, "new": rows_after, "dropped": rows_before,
                  "note": f"{previous.get('transform')} with {rows_before} rows -> {feature.transform} with "
                          f"{rows_after} rows: started fresh"}
    return new, old, {**counts, "rows_before": rows_before, "rows_after": rows_after}


def warm_start(model, estimator, spec, data, previous_dir) -> dict:
    """Copies the previous model's trained state into ``model`` (built and compiled, untrained)."""
    previous_dir = Path(previous_dir)
    previous = _read_tables(previous_dir)
    if previous.get("estimator") not in (None, spec.model.name):
        raise UserError(f"the previous model is {previous['estimator']!r}, this one {spec.model.name!r}: warm "
                        "start continues the same estimator", key="--warm-start")
    old_model = _previous_model(estimator, spec, data, previous, previous_dir)
    slots_carried = _slots_available(model)
    report: dict = {"from": str(previous_dir), "tables": {}, "optimizer": "carried (Adam m, v remapped with the rows)"
                    if slots_carried else "reset: under tf.distribute the slots are per shard / replica"}
    features = {f.name: f for f in spec.features}
    for group, embedding in model.embeddings.items():
        for name, table in embedding.tables.items():
            new_rows, old_rows, counts = row_mapping(features[name], previous["tables"][name], previous_dir, data)
            old_table = old_model.embeddings[group].tables[name].embeddings
            _copy_rows(table.embeddings, old_table, new_rows, old_rows)
            if slots_carried:
                for slot in model.optimizer.get_slot_names():
                    _copy_rows(model.optimizer.get_slot(table.embeddings, slot),
                               old_model.optimizer.get_slot(old_table, slot), new_rows, old_rows, fresh_zero=True)
            report["tables"][f"{embedding.name}/{name}" if len(model.embeddings) > 1 else name] = counts
    towers = _copy_towers(model, old_model)
    id_tables = {}
    for tower, layer in model.towers.items():  # tables a backbone keeps per id (mf's b_u, b_i): by token too
        old_ids = _id_tables(old_model.towers[tower])
        for key, (name, table) in _id_tables(layer).items():
            new_rows, old_rows, counts = row_mapping(features[name], previous["tables"][name], previous_dir, data)
            _copy_rows(table, old_ids[key][1], new_rows, old_rows)
            if slots_carried:
                for slot in model.optimizer.get_slot_names():
                    _copy_rows(model.optimizer.get_slot(table, slot), old_model.optimizer.get_slot(old_ids[key][1], slot),
                               new_rows, old_rows, fresh_zero=True)
            id_tables[key] = {"feature": name, **counts}
    if slots_carried:
        for tower, layer in model.towers.items():
            skip = {id(t) for _, t in _id_tables(layer).values()}
            for new_var, old_var in zip(layer.trainable_variables, old_model.towers[tower].trainable_variables):
                if id(new_var) in skip:
                    continue
                for slot in model.optimizer.get_slot_names():
                    model.optimizer.get_slot(new_var, slot).assign(old_model.optimizer.get_slot(old_var, slot))
        model.optimizer.iterations.assign(old_model.optimizer.iterations)
    report["tower_variables_carried"] = towers
    if id_tables:
        report["tower_id_tables"] = id_tables
    for name, c in report["tables"].items():
        log.info("warm start %s: %d carried, %d new, %d dropped (%d -> %d rows)%s", name, c["carried"], c["new"],
                 c["dropped"], c["rows_before"], c["rows_after"], f"; {c['note']}" if "note" in c else "")
    log.info("warm start from %s: %d tower variables carried; optimizer %s", previous_dir, towers, report["optimizer"])
    return report


def _id_tables(layer) -> dict[str, tuple[str, tf.Variable]]:
    """{key: (feature, table)}: the tables with a row per id of a feature that a backbone holds itself (the
    ``mf`` backbone's user and item biases), remapped by token like the embedding tables, not copied as
    they are."""
    from trainer.model.mf import MfBackbone
    if not isinstance(layer, MfBackbone) or not layer.score.biases:
        return {}
    return {f"{layer.name}/b_u": (layer.user, layer.score.user_bias.embeddings),
            f"{layer.name}/b_i": (layer.item, layer.score.item_bias.embeddings)}


def _tower_state(layer):
    """What the tower checkpoint holds of a tower: the layer, or its variables but the per-id tables."""
    skip = {id(t) for _, t in _id_tables(layer).values()}
    return layer if not skip else [v for v in layer.variables if id(v) not in skip]


def _copy_towers(model, old_model) -> int:
    """Every tower variable (batch-norm statistics too) but the per-id tables (:func:`_id_tables`) through a
    checkpoint of the towers, which restores into sharded or mirrored variables as into plain ones; returns
    how many were copied."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        path = tf.train.Checkpoint(towers={t: _tower_state(x) for t, x in old_model.towers.items()}).write(f"{tmp}/towers")
        try:
            tf.train.Checkpoint(towers={t: _tower_state(x) for t, x in model.towers.items()}).read(
                path).assert_existing_objects_matched()
        except (ValueError, tf.errors.InvalidArgumentError, AssertionError) as err:
            raise UserError(f"the towers differ from the previous model's ({type(err).__name__}: "
                            f"{str(err).splitlines()[0][:200]}): warm start needs the same model section "
                            "(towers, embedding_dim)", key="--warm-start") from None
        return sum(1 for name, _ in tf.train.list_variables(path) if name.endswith("VARIABLE_VALUE"))


def write_report(report: dict, model_dir) -> Path:
    path = Path(model_dir) / REPORT_FILE
    path.write_text(json.dumps(report, indent=2))
    return path


def _read_tables(previous_dir: Path) -> dict:
    path = previous_dir / TABLES_FILE
    if not path.is_file():
        raise UserError(f"not a model dir this version trained (no {TABLES_FILE} beside the weights): warm start "
                        "matches rows through the vocabularies training records there", file=previous_dir,
                        key="--warm-start")
    return json.loads(path.read_text())


def _previous_model(estimator, spec, data, previous: dict, previous_dir: Path):
    """The previous day's model: built with its table sizes, weights and optimiser state loaded."""
    from trainer.model.keras_fit import make_optimizer
    from trainer.model.layers import FeatureEmbedding
    from trainer.model.multitask import MultiTaskModel, build_backbones, group_dims
    from trainer.model_dir import WEIGHTS
    missing = sorted(f.name for f in spec.features if f.is_embedded and f.name not in previous["tables"])
    if missing:
        raise UserError(f"the previous model has no table for {', '.join(missing)}", key="--warm-start")
    sizes = {name: t["rows"] for name, t in previous["tables"].items()}
    # the backbones built as training builds them, on the previous tables' sizes (mf sizes its biases by them
    # and asks its own embedding_dim of the user and item tables)
    dims = group_dims(estimator, spec.features, sizes, spec.pair_features)
    model = MultiTaskModel(
        lambda g: FeatureEmbedding(spec.features, sizes, spec.model.embedding_dim, dims=dims.get(g), name=f"prev_{g}"),
        estimator, spec.labels, spec.train.densify_embedding_gradients,
        backbones=build_backbones(estimator, spec.features, sizes, spec.pair_features), name=f"previous_{estimator.name}")
    model(_zero_ids(next(iter(data.dataset("eval", 2))), spec.features))
    model.compile(optimizer=make_optimizer(spec.train))
    model.optimizer._create_all_weights(model.trainable_variables)
    model.load_weights(str(previous_dir / WEIGHTS)).expect_partial()
    return model


def _zero_ids(batch: dict, features) -> dict:
    """A batch whose ids exist in any table (the previous tables may be smaller than today's ids)."""
    out = dict(batch)
    for f in features:
        if f.is_embedded:
            x = batch[transformed_name(f.name)]
            out[transformed_name(f.name)] = (tf.SparseTensor(x.indices, tf.zeros_like(x.values), x.dense_shape)
                                             if isinstance(x, tf.SparseTensor) else tf.zeros_like(x))
    return out


def _slots_available(model) -> bool:
    if tf.distribute.has_strategy():
        return False
    optimizer = model.optimizer
    optimizer._create_all_weights(model.trainable_variables)
    return bool(optimizer.get_slot_names())


def _copy_rows(target, source, new_rows: np.ndarray, old_rows: np.ndarray, fresh_zero: bool = False) -> None:
    value = np.zeros(target.shape, target.dtype.as_numpy_dtype) if fresh_zero else tf.convert_to_tensor(target).numpy()
    if len(new_rows):
        value[new_rows] = tf.convert_to_tensor(source).numpy()[old_rows]
    target.assign(value)

