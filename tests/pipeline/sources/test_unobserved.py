"""Generated unobserved ratings pairs (``data.ratings.unobserved``): exactly the unrated pairs, a pure
function of the files and the seed, only for train files, and counted apart from the rows read."""
from pathlib import Path

import pytest

from ctrcvr.config import config_from_dict, load_config
from pipeline.inputs import reader_for, resolve_inputs
from pipeline.report import format_report
from pipeline.sources.unobserved import UNRATED, UnobservedPairs
from tests.pipeline.helpers import FIXTURES, REPO, read_split, run_job, vocabulary

TRAIN, TEST, MATRIX = FIXTURES / "ratings/train.csv", FIXTURES / "ratings/test.tsv", FIXTURES / "ratings/matrix.ascii"
# train.csv rates (user, item): 0:{0,1} 1:{0,2} 2:{1,2} 3:{0,1} 4:{2,0} 5:{1}; (4,0) and (5,1) are
# lines validation rejects (rating 9, rating x), still pairs the file names, so never generated.
UNRATED_IN_TRAIN = {("0", "2"), ("1", "1"), ("2", "0"), ("3", "2"), ("4", "1"), ("5", "0"), ("5", "2")}


def _generated(data, files, per_rating, seed=42, rows=3):
    pairs = UnobservedPairs(tuple(str(f) for f in files), per_rating, seed)
    chunks = list(reader_for(data, pairs).chunks(pairs, rows))
    rows_out = [(u.decode(), i.decode(), r) for c in chunks for u, i, r in zip(
        c.table.column("user_id").to_pylist(), c.table.column("item_id").to_pylist(),
        c.table.column("rating").to_pylist())]
    assert all(not c.rejects for c in chunks)
    return rows_out, [n for c in chunks for n in c.rows.tolist()]


def _data(**ratings):
    return config_from_dict({"data": {"source": "ratings", "ratings": ratings}}).data


def test_all_is_exactly_the_unrated_pairs_of_the_train_files():
    rows, numbers = _generated(_data(), [TRAIN], None)
    assert {(u, i) for u, i, _ in rows} == UNRATED_IN_TRAIN and len(rows) == len(UNRATED_IN_TRAIN)
    assert {r for _, _, r in rows} == {UNRATED}
    assert numbers == list(range(1, len(rows) + 1)), "generated rows are numbered 1, 2, ... in their input"


def test_k_per_rating_draws_unrated_items_of_the_same_user_deterministically():
    rows, _ = _generated(_data(), [TRAIN], 1, rows=2)
    again, _ = _generated(_data(), [TRAIN], 1, rows=100)
    assert rows == again, "a pure function of files and seed, whatever the chunk size"
    pairs = {(u, i) for u, i, _ in rows}
    assert pairs <= UNRATED_IN_TRAIN
    # users 0-4 rate 2 items and have 1 unrated: min(1 * 2, 1) = 1; user 5 rates 1 of 3: min(1, 2) = 1
    assert sorted(u for u, _ in pairs) == ["0", "1", "2", "3", "4", "5"]
    draws = {frozenset(p for p in _generated(_data(), [TRAIN], 1, seed=s)[0] if p[0] == "5") for s in range(12)}
    assert len(draws) == 2, "user 5's draw depends on the seed"


def test_a_users_draw_does_not_depend_on_the_other_users(tmp_path):
    everything = "".join(f"9,{i},4\n" for i in range(40))  # user 9 rates all 40 items: the same universe
    wide, alone = tmp_path / "wide.csv", tmp_path / "alone.csv"
    wide.write_text("".join(f"{u},{i},4\n" for u in range(6) for i in range(0, 40, 4 + u)) + everything)
    alone.write_text("".join(f"3,{i},4\n" for i in range(0, 40, 7)) + everything)
    of_user_3 = [p for p in _generated(_data(), [wide], 2)[0] if p[0] == "3"]
    assert len(of_user_3) == 2 * len(range(0, 40, 7))
    assert of_user_3 == [p for p in _generated(_data(), [alone], 2)[0] if p[0] == "3"]


def test_matrix_all_is_the_zero_cells_of_the_well_formed_lines():
    rows, _ = _generated(_data(format="matrix"), [MATRIX], None)
    # lines 1, 2, 4, 5 (line 3 is truncated): 2 + 3 + 4 + 1 zeros
    assert sorted((u, i) for u, i, _ in rows) == [("0", "1"), ("0", "2"), ("1", "0"), ("1", "1"), ("1", "3"),
                                                  ("3", "0"), ("3", "1"), ("3", "2"), ("3", "3"), ("4", "1")]


def test_resolve_inputs_adds_the_generated_input_for_train_files_only():
    data = config_from_dict({"data": {"source": "ratings", "train_files": [str(TRAIN)], "test_files": [str(TEST)],
                                      "ratings": {"unobserved": 3}}}).data
    inputs = resolve_inputs(data, seed=7)
    assert inputs[:2] == [(str(TRAIN), None), (str(TEST), "test")]
    assert inputs[2] == (UnobservedPairs((str(TRAIN),), 3, 7), None) and inputs[2][0].generated
    with pytest.raises(ValueError, match="seed"):
        resolve_inputs(data)
    assert len(resolve_inputs(_data_with_files(unobserved=0), seed=7)) == 2


def _data_with_files(**ratings):
    return config_from_dict({"data": {"source": "ratings", "train_files": [str(TRAIN)], "test_files": [str(TEST)],
                                      "ratings": ratings}}).data


@pytest.fixture(scope="module")
def generated_run(tmp_path_factory):
    config = load_config(REPO / "configs" / "ratings.yaml", [
        f"data.train_files=[{TRAIN}]", f"data.test_files=[{TEST}]", "data.ratings.unobserved=all",
        "data.split.eval_fraction=0.4", "preprocess.max_reject_fraction=0.5", "preprocess.num_shards=1"])
    out = tmp_path_factory.mktemp("generated") / "out"
    report, failure = run_job(config, out)
    assert failure is None
    return {"out": out, "report": report, "config": config}


def test_generated_rows_are_counted_apart_and_the_report_reconciles(generated_run):
    report = generated_run["report"]
    assert report["rows_read"] == 11 + 4 and report["rows_generated"] == len(UNRATED_IN_TRAIN)
    assert report["rows_rejected"] == 2 and report["reconciled"]
    assert report["rows_read"] + report["rows_generated"] == report["rows_written"] + report["rows_rejected"]
    splits = report["splits"]
    assert splits["train"]["generated"] + splits["eval"]["generated"] == len(UNRATED_IN_TRAIN)
    assert splits["train"]["rows"] + splits["eval"]["rows"] == 9 + len(UNRATED_IN_TRAIN)
    assert splits["test"]["generated"] == 0 and splits["test"]["rows"] == 4
    assert f"rows read 15 + generated {len(UNRATED_IN_TRAIN)} = written" in format_report(report)


def test_generated_rows_are_unobserved_unrated_pairs_and_never_test_rows(generated_run):
    out = generated_run["out"]
    items = vocabulary(out, "item_id")
    unobserved = []
    for split in ("train", "eval"):
        rows = read_split(out, split)
        for user, item, o, label, rating in zip(rows["user_id"], rows["item_id_xf"], rows["observed"],
                                                rows["label"], rows["rating"]):
            if o == 0:
                assert label == 0 and rating == 0.0
                unobserved.append((user, items[item]))
    assert sorted(unobserved) == sorted(UNRATED_IN_TRAIN)
    test = read_split(out, "test")
    assert test["observed"] == [1, 1, 1, 1] and len(test["user_id"]) == 4


def test_the_split_is_per_rating_and_pairs_keep_their_split(generated_run, tmp_path):
    """ratings.yaml splits on (user, item): a user's rows land in both splits, and a second run puts
    every generated pair in the same split."""
    first = {(u, i) for u, i in zip(*(read_split(generated_run["out"], "eval")[c] for c in ("user_id", "item_id_xf")))}
    report, _ = run_job(generated_run["config"], tmp_path / "again")
    again = {(u, i) for u, i in zip(*(read_split(tmp_path / "again", "eval")[c] for c in ("user_id", "item_id_xf")))}
    assert first == again and report["rows_generated"] == len(UNRATED_IN_TRAIN)
    train_users = set(read_split(generated_run["out"], "train")["user_id"])
    assert train_users & {u for u, _ in first}, "some user has rows in train and in eval"
    assert Path(generated_run["out"], "report.json").is_file()
