"""Split assignment is a pure function of each row: the same key lands in the same split whatever
the chunking, order or run, and known keys stay where they were (guards against a silent change)."""
import numpy as np
import pyarrow as pa

from ctrcvr.config import SplitConfig
from pipeline.splits import assign, eval_mask

KEYS = [str(i) for i in range(2000)]


def _eval(keys, config=SplitConfig(by="hash", key="id", eval_fraction=0.2)):
    return eval_mask(pa.table({"id": pa.array([k.encode() for k in keys], pa.binary())}), config, None)


def test_hash_split_is_deterministic_across_chunkings_and_orders():
    whole = _eval(KEYS)
    chunked = np.concatenate([_eval(KEYS[i:i + 300]) for i in range(0, len(KEYS), 300)])
    order = np.random.default_rng(0).permutation(len(KEYS))
    shuffled = _eval([KEYS[i] for i in order])
    assert np.array_equal(whole, chunked) and np.array_equal(whole[order], shuffled)
    assert abs(whole.mean() - 0.2) < 0.03


def test_hash_split_is_pinned_and_independent_of_the_key_type():
    assert np.flatnonzero(_eval(KEYS[:30])).tolist() == [12, 24, 25, 26, 27]
    ints = eval_mask(pa.table({"id": pa.array(range(30))}), SplitConfig(by="hash", key="id"), None)
    assert np.array_equal(ints, _eval(KEYS[:30]))


def test_day_files_and_test_splits():
    table = pa.table({"day": pa.array([0, 5, 6, 6])})
    assert eval_mask(table, SplitConfig(by="day", eval_days=[6]), None).tolist() == [False, False, True, True]
    assert eval_mask(table, SplitConfig(by="files"), "eval").all()
    assert not eval_mask(table, SplitConfig(by="files"), "train").any()
    masks = assign(table, SplitConfig(by="day", eval_days=[6]), "test")
    assert list(masks) == ["test"] and masks["test"].all()
