import json
import shutil

import numpy as np
import pytest

from wordlstm.errors import UserError
from wordlstm.modeldir import (
    FORMAT_VERSION,
    load_core_weights,
    load_vectors_checked,
    read_config,
)
from wordlstm.vectors import Vectors, load_vectors, save_vectors


def test_model_dir_is_complete_and_json(model_dir):
    for name in ("model.keras", "vectors.bin", "config.json", "history.json", "prior.npy"):
        assert (model_dir / name).is_file()
    assert not (model_dir / "checkpoint").exists()
    config = json.loads((model_dir / "config.json").read_text())
    assert config["format_version"] == FORMAT_VERSION
    assert config["model"]["window"] == 6 and config["versions"]["keras"]
    assert config["training"]["holdout"] == {"fraction": 0.05, "lines": False, "seed": 1}
    assert len(json.loads((model_dir / "history.json").read_text())["epochs"]) == 2


def _copy(model_dir, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    return d


def test_older_format_version_is_refused(model_dir, tmp_path):
    d = _copy(model_dir, tmp_path)
    config = json.loads((d / "config.json").read_text())
    config["format_version"] = 0
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="version 0"):
        read_config(d)


def test_not_a_model_dir(tmp_path):
    with pytest.raises(UserError, match="no such model"):
        read_config(tmp_path / "nothing")
    with pytest.raises(UserError, match="not a wordlstm model directory"):
        read_config(tmp_path)  # an existing directory without config.json
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UserError, match="not a wordlstm model"):
        read_config(tmp_path)


def test_vectors_that_do_not_match_the_model_are_refused(model_dir, tmp_path):
    d = _copy(model_dir, tmp_path)
    v = load_vectors(d / "vectors.bin")
    config = read_config(d)
    # Same shape, other words: caught by the file's digest, and by the vocabulary hash.
    save_vectors(Vectors(v.words[::-1], v.matrix), d / "vectors.bin")
    with pytest.raises(UserError, match="do not belong together"):
        load_vectors_checked(d, config)
    _rehash(d)
    with pytest.raises(UserError, match="do not match"):
        load_vectors_checked(d, read_config(d))
    # Other dimensions.
    save_vectors(Vectors(v.words, v.matrix[:, :8]), d / "vectors.bin")
    _rehash(d)
    with pytest.raises(UserError, match="do not match"):
        load_vectors_checked(d, read_config(d))


def test_inference_weights_cached_by_content(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WORDLSTM_CACHE", str(tmp_path / "cache"))
    first = load_core_weights(model_dir)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    import wordlstm.modeldir as md

    monkeypatch.setattr(md, "load_keras_model", lambda *a, **k: pytest.fail("cache not used"))
    second = load_core_weights(model_dir)
    np.testing.assert_array_equal(first[1], second[1])
    for a, b in zip(first[0], second[0]):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_missing_or_mismatched_prior_is_refused(model_dir, tmp_path):
    from wordlstm.writer import Writer

    d = _copy(model_dir, tmp_path)
    assert Writer.load(d, decode="cosine").gen.decoder.__class__.__name__ == "CosineDecoder"
    np.save(d / "prior.npy", np.zeros(3, np.float32))
    with pytest.raises(UserError, match="do not belong together"):  # not the saved file
        Writer.load(d)
    # With the digests made to match, the prior's shape is still checked.
    _rehash(d)
    with pytest.raises(UserError, match="do not match"):
        Writer.load(d)
    (d / "prior.npy").unlink()
    with pytest.raises(UserError, match="prior.npy is missing"):
        Writer.load(d)


# --- issue 20, item 7: the files' digests are required ---------------------------------------

def _rewrite_config(d, change):
    config = json.loads((d / "config.json").read_text())
    change(config)
    (d / "config.json").write_text(json.dumps(config))


def _rehash(d):
    """Record the directory's present files in its config.json (as save_model_dir does)."""
    from wordlstm.modeldir import FILES, file_hash

    _rewrite_config(d, lambda c: c.update(files={n: file_hash(d / n) for n in FILES
                                                 if (d / n).is_file()}))


@pytest.mark.parametrize("change", [lambda c: c.pop("files"), lambda c: c.update(files={}),
                                    lambda c: c["files"].pop("vectors.bin"),
                                    lambda c: c["files"].pop("prior.npy"),
                                    lambda c: c["files"].pop("ngram.npz")])
def test_a_missing_digest_record_is_refused(model_dir, tmp_path, change):
    from wordlstm.modeldir import load, load_vectors_of

    d = _copy(model_dir, tmp_path)
    v = load_vectors(d / "vectors.bin")
    save_vectors(Vectors(v.words, v.matrix * 1.5), d / "vectors.bin")  # another model's
    _rewrite_config(d, change)
    with pytest.raises(UserError, match="files"):
        load(d)
    with pytest.raises(UserError, match="files"):
        load_vectors_of(d)  # `neighbors` reads the vectors only: checked the same way


# --- issue 20, item 6: a model dir replaced while it is read ---------------------------------

def _other_model(model_dir, tmp_path, name="b"):
    """A model of the same shapes as `model_dir` whose every file differs: vectors, weights,
    prior, n-gram and config (training.tag)."""
    from wordlstm.modeldir import load_keras_model
    from wordlstm.ngram import WordNgram

    d = tmp_path / name
    shutil.copytree(model_dir, d)
    v = load_vectors(d / "vectors.bin")
    save_vectors(Vectors(v.words, v.matrix * 1.5), d / "vectors.bin")
    core = load_keras_model(d)
    core.set_weights([w * 1.5 for w in core.get_weights()])
    (d / "model.keras").unlink()
    core.save(d / "model.keras")
    np.save(d / "prior.npy", np.load(d / "prior.npy") + 1.0)
    WordNgram.fit(np.arange(len(v)).repeat(3).astype(np.int64), len(v)).save(d / "ngram.npz")
    _rewrite_config(d, lambda c: c["training"].update(tag=name))
    _rehash(d)
    return d


def _signature(loaded):
    """What each of a load's parts says it came from."""
    return {"config": loaded.config.training.extra.get("tag", "a"),
            "vectors": float(loaded.vectors.matrix[0, 0]),
            "weights": float(loaded.weights.dense_kernel.ravel()[0]),
            "prior": float(loaded.log_prior[0]),
            "ngram": int(loaded.ngram[1].unigram.sum())}


@pytest.fixture(scope="module")
def two_models(model_dir, tmp_path_factory):
    from wordlstm.modeldir import load

    tmp = tmp_path_factory.mktemp("two")
    a = tmp / "a"
    shutil.copytree(model_dir, a)
    b = _other_model(model_dir, tmp)
    signatures = {"a": _signature(load(a)), "b": _signature(load(b))}
    assert all(signatures["a"][k] != signatures["b"][k] for k in signatures["a"])
    return a, b, signatures


def test_a_model_dir_swapped_while_loading_never_mixes_models(two_models, tmp_path):
    import threading
    import time

    from wordlstm.modeldir import load, replace_dir

    a, b, signatures = two_models
    out = tmp_path / "m"
    shutil.copytree(a, out)
    stop = threading.Event()

    def swap():
        i = 0
        while not stop.is_set():
            new = tmp_path / f".new{i}"
            shutil.copytree(b if i % 2 == 0 else a, new)
            replace_dir(new, out)
            i += 1

    swapper = threading.Thread(target=swap)
    swapper.start()
    results = {"a": 0, "b": 0, "error": 0}
    mixed = []
    try:
        deadline = time.time() + 8
        while time.time() < deadline and len(mixed) < 3:
            try:
                loaded = load(out)
                s = _signature(loaded)
            except UserError:
                results["error"] += 1
                continue
            name = s["config"]
            if s != signatures[name]:
                mixed.append(s)
            results[name] += 1
    finally:
        stop.set()
        swapper.join()
    print(results)
    assert not mixed, (mixed, signatures, results)
    assert results["a"] + results["b"] > 10, results
    assert results["error"] <= (results["a"] + results["b"]) // 10, results


def test_lazily_read_files_are_the_ones_checked_at_load(two_models, tmp_path):
    """The n-gram, the training lines and the user dictionary are used after `load`: they are
    the bytes load checked, not whatever the directory holds by then."""
    from wordlstm.modeldir import load, replace_dir

    a, b, signatures = two_models
    out = tmp_path / "m"
    for d, words in ((a, "老王 100 nr\n"), (b, "小李 100 nr\n")):
        shutil.copytree(d, tmp_path / d.name)
        d = tmp_path / d.name
        (d / "user_dict.txt").write_text(words, encoding="utf-8")
        np.save(d / "lines.npy", np.arange(3 if words.startswith("老") else 5, dtype=np.uint64))
        _rewrite_config(d, lambda c: c["segmenter"].update(user_dict="user_dict.txt"))
        _rehash(d)
    shutil.copytree(tmp_path / "a", out)
    loaded = load(out)
    new = tmp_path / ".new"
    shutil.copytree(tmp_path / "b", new)
    replace_dir(new, out)  # the directory now holds model b
    assert loaded.ngram[1].unigram.sum() == signatures["a"]["ngram"]
    assert len(loaded.line_hashes()) == 3
    user_dict = loaded.segmenter_config().user_dict
    with open(user_dict, encoding="utf-8") as f:
        assert f.read() == "老王 100 nr\n"


# --- issue 20, the fuzzer's findings (bench/fuzz.py): each a clear one-line error ------------

def _nested(c):
    c["training"]["deep"] = "@DEEP@"


FUZZ_FINDINGS = {
    "nesting deeper than the JSON parser recurses": (_nested, "not valid JSON"),
    "an integer of 5,000 digits": (lambda c: c["model"].update(window="@BIG@"),
                                   "not valid JSON"),
    "decoder.ngram.weight null": (lambda c: c["decoder"].update(ngram={"order": 3,
                                                                       "weight": None}),
                                  "decoder.ngram.weight"),
    "decoder.ngram without its weight": (lambda c: c["decoder"].update(ngram={"order": 3}),
                                         "missing"),
    "decoder.ngram.weight a string": (lambda c: c["decoder"].update(
        ngram={"order": 3, "weight": "x\ny"}), "decoder.ngram.weight"),
    "decoder.ngram.order infinite": (lambda c: c["decoder"].update(
        ngram={"order": float("inf"), "weight": 0.1}), "decoder.ngram.order"),
    "a 5,000-character value quoted": (lambda c: c["model"].update(dim="x" * 5000),
                                       "model.dim"),
    "a format version with a line break": (lambda c: c.update(format_version="x\ny"),
                                           "format version"),
    "an unknown segmenter setting": (lambda c: c["segmenter"].update(eser_dict=None),
                                     "eser_dict"),
}


@pytest.mark.parametrize("finding", sorted(FUZZ_FINDINGS))
def test_fuzzed_config_is_one_clear_line(model_dir, tmp_path, finding):
    from wordlstm.modeldir import load

    change, words = FUZZ_FINDINGS[finding]
    d = _copy(model_dir, tmp_path)
    config = json.loads((d / "config.json").read_text())
    change(config)
    text = json.dumps(config).replace('"@DEEP@"', "[" * 100_000 + "]" * 100_000)
    (d / "config.json").write_text(text.replace('"@BIG@"', "1" * 5000))
    for read in (read_config, load):
        with pytest.raises(UserError, match=words) as err:
            read(d)
        message = str(err.value)
        assert "\n" not in message and len(message) < 1000, message


# --- issue 21, item 1: config.json parsed once into typed settings --------------------------

def _without_nulls(value):
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


@pytest.mark.parametrize("name", ["default", "base", "dinos", "tang"])
def test_shipped_config_json_parses_into_typed_settings_and_back(name):
    """The shipped models load unchanged; their config.json re-typed gives the same record
    back (keys written as null are left out: they mean "not recorded" either way)."""
    from wordlstm.model import ModelConfig
    from wordlstm.modeldir import DecoderConfig, ModelDirConfig, resolve_model_dir
    from wordlstm.split import HoldOut

    d = resolve_model_dir(name)
    raw = json.loads((d / "config.json").read_text(encoding="utf-8"))
    config = read_config(d)
    assert isinstance(config.model, ModelConfig) and isinstance(config.decoder, DecoderConfig)
    assert isinstance(config.training.holdout, HoldOut)
    assert config.model.to_json() == raw["model"]
    assert config.training.holdout.to_json() == raw["training"]["holdout"]
    assert _without_nulls(config.to_json()) == _without_nulls(raw)
    assert config.to_json()["segmenter"] == raw["segmenter"]
    assert ModelDirConfig.from_json(config.to_json()) == config


def test_config_json_keys_refused_or_kept_by_the_stated_rule(model_dir, tmp_path):
    """Unknown keys: refused where they would change what the model computes, kept (and
    written back) in the records and at the top level."""
    from wordlstm.modeldir import ModelDirConfig

    d = _copy(model_dir, tmp_path)
    for section in ("model", "decoder", "segmenter"):
        _rewrite_config(d, lambda c, section=section: c[section].update(depth=3))
        with pytest.raises(UserError, match=f"{section}.*depth"):
            read_config(d)
        _rewrite_config(d, lambda c, section=section: c[section].pop("depth"))
    _rewrite_config(d, lambda c: (c["training"].update(gpu="H200"), c.update(note="kept")))
    config = read_config(d)
    assert config.training.extra["gpu"] == "H200" and config.extra == {"note": "kept"}
    again = config.to_json()
    assert again["training"]["gpu"] == "H200" and again["note"] == "kept"
    assert ModelDirConfig.from_json(again) == config


def test_each_model_bound_is_stated_once(model_dir, tmp_path):
    """`units` has one bound (model.BOUNDS), for training's settings and config.json alike."""
    from wordlstm.model import BOUNDS, ModelConfig

    top = BOUNDS["units"][1]
    assert ModelConfig(units=top).units == top
    with pytest.raises(UserError, match="units"):
        ModelConfig(units=top + 1)
    d = _copy(model_dir, tmp_path)
    _rewrite_config(d, lambda c: c["model"].update(units=top + 1))
    with pytest.raises(UserError, match=r"model\.units \(--units\) must be an integer in \[1, "):
        read_config(d)
