"""The one analyzer + one lookup table give exactly what TFT's own vocabulary functions give: the same
ids (in-vocabulary, OOV hash buckets, empty values, an empty vocabulary), the same vocabulary
files and sizes, and the same id ranges in the transformed schema."""
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam

from transforms.vocabulary import COMBINED, VocabularySpec, apply_vocabularies

SPECS = [VocabularySpec("a"), VocabularySpec("b", frequency_threshold=2, num_oov_buckets=3),
         VocabularySpec("c", frequency_threshold=10), VocabularySpec("d", top_k=2, num_oov_buckets=2),
         VocabularySpec("tags", num_oov_buckets=2)]
ROWS = [
    {"a": b"x", "b": b"p", "c": b"u", "d": b"k1", "tags": [b"t1", b"t2"]},
    {"a": b"y", "b": b"p", "c": b"u", "d": b"k2", "tags": []},
    {"a": b"x", "b": b"q", "c": b"v", "d": b"k3", "tags": [b"t1", b""]},
    {"a": b"", "b": b"r r", "c": b"u", "d": b"k1", "tags": [b"t3"]},
    {"a": b"3:x", "b": b"", "c": b"w", "d": b"k2", "tags": [b"t1"]},
]
SPEC = {**{s.name: tf.io.FixedLenFeature([], tf.string) for s in SPECS[:4]}, "tags": tf.io.VarLenFeature(tf.string)}


def _ours(inputs):
    return {f"{k}_xf": v for k, v in apply_vocabularies(inputs, SPECS).items()}


def _tfts(inputs):
    return {f"{s.name}_xf": tft.compute_and_apply_vocabulary(
        inputs[s.name], top_k=s.top_k, frequency_threshold=s.frequency_threshold,
        num_oov_buckets=s.num_oov_buckets, vocab_filename=s.name) for s in SPECS}


def _run(fn, tmp):
    metadata = tft.DatasetMetadata.from_feature_spec(SPEC)
    with tft_beam.Context(temp_dir=str(tmp / "tmp")):
        (rows, _), transform_fn = (ROWS, metadata) | tft_beam.AnalyzeAndTransformDataset(fn)
        _ = transform_fn | tft_beam.WriteTransformFn(str(tmp / "out"))
    return rows, tft.TFTransformOutput(str(tmp / "out"))


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    return (_run(_ours, tmp_path_factory.mktemp("ours")), _run(_tfts, tmp_path_factory.mktemp("tfts")))


def test_ids_are_tfts_ids(both):
    (ours, _), (theirs, _) = both
    for name in ("a", "b", "c", "d"):
        assert [r[f"{name}_xf"] for r in ours] == [r[f"{name}_xf"] for r in theirs], name
    assert [list(r["tags_xf"]) for r in ours] == [list(r["tags_xf"]) for r in theirs]
    assert [r["b_xf"] for r in ours][:2] == [0, 0] and all(1 <= r["b_xf"] <= 3 for r in ours[2:])  # p; OOV buckets
    assert [r["c_xf"] for r in ours] == [1] * len(ROWS)  # an empty vocabulary: everything is OOV


def test_vocabulary_files_sizes_and_schema_ranges_are_tfts(both):
    (_, ours), (_, theirs) = both
    for spec in SPECS:
        assert ours.vocabulary_by_name(spec.name) == theirs.vocabulary_by_name(spec.name), spec.name
        assert ours.vocabulary_size_by_name(spec.name) == theirs.vocabulary_size_by_name(spec.name)
        name = f"{spec.name}_xf"
        assert ours.num_buckets_for_transformed_feature(name) == theirs.num_buckets_for_transformed_feature(name)
    assert len(ours.vocabulary_by_name("c")) == 1  # an empty vocabulary holds TFT's dummy token


def test_one_table_serves_every_feature(both):
    (_, ours), (_, theirs) = both
    assert ours.vocabulary_file_by_name(COMBINED) is not None
    assert _tables(ours) == 1 and _tables(theirs) >= len(SPECS)


def _tables(output) -> int:
    """Hash tables the transform SavedModel creates (each is traced at save and at every load)."""
    from tensorflow.core.protobuf import saved_model_pb2
    with open(f"{output.transform_savedmodel_dir}/saved_model.pb", "rb") as f:
        model = saved_model_pb2.SavedModel.FromString(f.read())
    return sum(node.op == "HashTableV2" for meta in model.meta_graphs
               for function in meta.graph_def.library.function for node in function.node_def)


def test_a_feature_cannot_take_the_combined_files_name():
    with pytest.raises(ValueError, match=COMBINED):
        apply_vocabularies({COMBINED: tf.constant([b"x"])}, [VocabularySpec(COMBINED)])
