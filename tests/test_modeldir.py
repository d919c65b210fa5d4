import json
import shutil

import numpy as np
import pytest

from wordlstm.errors import UserError
from wordlstm.modeldir import (FORMAT_VERSION, load_core_weights, load_vectors_checked, read_config)
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
    # Same shape, other words: caught by the vocabulary hash.
    save_vectors(Vectors(v.words[::-1], v.matrix), d / "vectors.bin")
    with pytest.raises(UserError, match="do not match"):
        load_vectors_checked(d, config)
    # Other dimensions.
    save_vectors(Vectors(v.words, v.matrix[:, :8]), d / "vectors.bin")
    with pytest.raises(UserError, match="do not match"):
        load_vectors_checked(d, config)


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
    # A directory without the files' digests still has its shapes checked.
    config = json.loads((d / "config.json").read_text())
    del config["files"]
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="do not match"):
        Writer.load(d)
    (d / "prior.npy").unlink()
    with pytest.raises(UserError, match="prior.npy is missing"):
        Writer.load(d)
