"""Broken configs: each is one ConfigError (a UserError), one line, naming the file that holds the fault
(the parent for a key a parent sets, the --set item for an override), the key and, where YAML knows it,
the line; never a traceback of yaml or pydantic, never a silent reading."""
import pickle

import pytest
from pydantic import ValidationError

from ctrcvr.config import ConfigError, load_config
from transforms.errors import UserError

FEATURES = "features:\n  - {name: a, kind: categorical}\n"

BROKEN = [  # (id, {file: text}, --set items, (file, line, key), parts of the message)
    ("extends-a-list", {"c.yaml": "extends: [a.yaml]\n"}, [], ("c.yaml", 1, "extends"),
     ["expected the file name of one parent config", "['a.yaml']"]),
    ("extends-a-number", {"c.yaml": "seed: 1\nextends: 5\n"}, [], ("c.yaml", 2, "extends"), ["got 5"]),
    ("extends-missing", {"c.yaml": "extends: nope.yaml\n"}, [], ("c.yaml", 1, "extends"),
     ["parent config not found", "nope.yaml"]),
    ("extends-a-cycle", {"c.yaml": "extends: c.yaml\n"}, [], ("c.yaml", 1, "extends"), ["cycle"]),
    ("typo-in-parent", {"base.yaml": "seed: 1\ntrain:\n  batch_sise: 3\n", "c.yaml": "extends: base.yaml\n"}, [],
     ("base.yaml", 3, None), ["unknown key 'train.batch_sise' (did you mean 'batch_size'?)", "extended by", "c.yaml"]),
    ("bad-value-in-grandparent", {"g.yaml": "train: {epochs: many}\n", "p.yaml": "extends: g.yaml\n",
                                  "c.yaml": "extends: p.yaml\nseed: 3\n"}, [],
     ("g.yaml", 1, "train.epochs"), ["valid integer", "'many'", "extended by"]),
    ("child-overrides-parent-key", {"base.yaml": "train: {epochs: 2}\n", "c.yaml": "extends: base.yaml\ntrain:\n  epochs: x\n"},
     [], ("c.yaml", 3, "train.epochs"), ["valid integer"]),
    ("set-unparsable", {"c.yaml": FEATURES}, ["train.epochs=[1,"], ("c.yaml", None, "train.epochs"),
     ["--set 'train.epochs=[1,'", "not valid YAML"]),
    ("set-unclosed-mapping", {"c.yaml": FEATURES}, ["model.tower={units: [8"], ("c.yaml", None, "model.tower"),
     ["--set 'model.tower={units: [8'", "not valid YAML"]),
    ("set-python-tag", {"c.yaml": FEATURES}, ["seed=!!python/object:os.system x"], ("c.yaml", None, "seed"),
     ["not valid YAML"]),
    ("set-bad-value", {"c.yaml": FEATURES}, ["train.epochs=abc"], ("c.yaml", None, "train.epochs"),
     ["valid integer", "(from --set train.epochs=abc)"]),
    ("set-no-equals", {"c.yaml": FEATURES}, ["train.epochs"], ("c.yaml", None, None), ["KEY=VALUE"]),
    ("set-no-key", {"c.yaml": FEATURES}, ["=3"], ("c.yaml", None, None), ["no key before '='"]),
    ("set-typo", {"c.yaml": FEATURES}, ["train.bach_size=3"], ("c.yaml", None, None),
     ["unknown key 'train.bach_size' (did you mean 'batch_size'?)", "--set train.bach_size=3"]),
    ("set-list-index", {"c.yaml": FEATURES}, ["features.3.top_k=2"], ("c.yaml", None, "features.3.top_k"),
     ["--set 'features.3.top_k=2'", "features has no item '3'"]),
    ("set-duplicate-key", {"c.yaml": FEATURES}, ["train={epochs: 1, epochs: 2}"], ("c.yaml", None, "train"),
     ["gives key 'epochs' twice"]),
    ("set-true-as-int", {"c.yaml": FEATURES}, ["train.epochs=true"], ("c.yaml", None, "train.epochs"),
     ["expected an integer, got true", "--set train.epochs=true"]),
    ("true-as-int", {"c.yaml": "train:\n  epochs: true\n"}, [], ("c.yaml", 2, "train.epochs"),
     ["expected an integer, got true"]),
    ("false-as-float", {"c.yaml": "train:\n  learning_rate: false\n"}, [], ("c.yaml", 2, "train.learning_rate"),
     ["expected a number, got false"]),
    ("true-in-int-list", {"c.yaml": "model:\n  tower: {units: [8, true]}\n"}, [], ("c.yaml", 2, "model.tower.units"),
     ["expected an integer"]),
    ("duplicate-key", {"c.yaml": "train:\n  epochs: 1\n  epochs: 2\n"}, [], ("c.yaml", 3, "train.epochs"),
     ["key given twice (first at line 2)"]),
    ("duplicate-section", {"c.yaml": "train: {epochs: 1}\nseed: 2\ntrain: {batch_size: 8}\n"}, [],
     ("c.yaml", 3, "train"), ["key given twice (first at line 1)"]),
    ("duplicate-in-list-item", {"c.yaml": "features:\n  - {name: a, kind: categorical, name: b}\n"}, [],
     ("c.yaml", 2, "features.0.name"), ["key given twice"]),
    ("not-utf8", {"c.yaml": b"seed: 1\n# caf\xe9\n"}, [], ("c.yaml", 2, None), ["not UTF-8", "0xe9"]),
    ("yaml-syntax", {"c.yaml": "train:\n  epochs: [1,\n"}, [], ("c.yaml", 3, None), ["not valid YAML"]),
    ("yaml-tabs", {"c.yaml": "train:\n\tepochs: 1\n"}, [], ("c.yaml", 2, None), ["not valid YAML"]),
    ("top-level-a-list", {"c.yaml": "- seed\n"}, [], ("c.yaml", None, None), ["top level must be a mapping"]),
    ("duplicate-features", {"c.yaml": "features:\n" + "".join(
        f"  - {{name: f{i}, kind: categorical}}\n" for i in range(40)) + "  - {name: f7, kind: numeric}\n"}, [],
     ("c.yaml", None, None), ["features declared twice: f7"]),
    ("two-problems", {"c.yaml": "train:\n  epochs: x\n  batch_size: y\n"}, [], ("c.yaml", None, None),
     ["2 problems", "line 2: train.epochs", "line 3: train.batch_size"]),
]


def _write(tmp_path, files: dict):
    for name, text in files.items():
        (tmp_path / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return tmp_path / "c.yaml"


@pytest.mark.parametrize("files, overrides, where, parts", [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_a_broken_config_is_one_line_naming_file_and_key(tmp_path, files, overrides, where, parts):
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, files), overrides)
    err, message = caught.value, str(caught.value)
    file, line, key = where
    assert (err.file, err.line, err.key) == (str(tmp_path / file), line, key), message
    assert "\n" not in message and message.startswith(f"{tmp_path / file}{':' + str(line) if line else ''}: ")
    assert key is None or f": {key}: " in message
    for part in parts:
        assert part in message, message


def test_a_long_config_is_not_dumped_into_the_error(tmp_path):
    files = next(b[1] for b in BROKEN if b[0] == "duplicate-features")
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, files))
    assert len(str(caught.value)) < len(str(tmp_path)) + 80


def test_merge_keys_may_repeat_a_key_on_purpose(tmp_path):
    path = _write(tmp_path, {"c.yaml": "train:\n  <<: {epochs: 2, batch_size: 8}\n  epochs: 3\n"})
    config = load_config(path)
    assert (config.train.epochs, config.train.batch_size) == (3, 8)


def test_bools_stay_bools_and_numbers_stay_numbers(tmp_path):
    path = _write(tmp_path, {"c.yaml": "features:\n  - {name: a, kind: categorical, multivalued: true}\n"
                                       "train: {epochs: 2, learning_rate: 1}\n"})
    config = load_config(path)
    assert config.features[0].multivalued is True and config.train.epochs == 2 and config.train.learning_rate == 1.0
    with pytest.raises(ValidationError, match="expected an integer, got true"):
        config.train.epochs = True  # assignments are validated too


def test_a_config_directory_is_named(tmp_path):
    with pytest.raises(ConfigError, match="is a directory") as caught:
        load_config(tmp_path)
    assert caught.value.file == str(tmp_path)


def test_user_error_one_line_api_and_pickling():
    err = UserError("expected an integer, got true", file="configs/x.yaml", key="train.epochs")
    assert str(err) == "configs/x.yaml: train.epochs: expected an integer, got true"
    assert str(UserError("bad row", file="a.csv", line=7)) == "a.csv:7: bad row"
    assert str(UserError("two\n  lines")) == "two lines"
    located = UserError("bad value", key="price").located(file="a.csv", line=3, key="ignored")
    assert str(located) == "a.csv:3: price: bad value"
    copy = pickle.loads(pickle.dumps(ConfigError("x", file="f.yaml", line=2, key="k")))
    assert type(copy) is ConfigError and (copy.file, copy.line, copy.key, str(copy)) == ("f.yaml", 2, "k", "f.yaml:2: k: x")
    assert isinstance(err, ValueError)
