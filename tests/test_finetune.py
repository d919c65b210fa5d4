"""`train --from base`: fine-tuning a pretrained model on a novel with its own names."""

import json
import shutil

import pytest
from conftest import assert_clear_error, make_text, run

from wordlstm.errors import UserError
from wordlstm.modeldir import load

# The tiny base (conftest's model_dir) never met these people; written in traditional
# characters (劉 張 紅), as a downloaded Big5 novel would be.
NEW_PEOPLE = {"老王": "劉小紅", "小李": "張阿明"}


@pytest.fixture(scope="module")
def novel_from_base(model_dir, tmp_path_factory):
    import opencc

    d = tmp_path_factory.mktemp("finetune")
    text = opencc.OpenCC("s2tw").convert(make_text(paragraphs=200, seed=7))
    for old, new in NEW_PEOPLE.items():
        text = text.replace(opencc.OpenCC("s2tw").convert(old), new)
    (d / "novel.txt").write_bytes(text.encode("big5"))
    (d / "names.txt").write_text("刘小红\n张阿明\n", encoding="utf-8")
    run("segment", d / "novel.txt", "--to-simplified", "--user-dict", d / "names.txt",
        "-o", d / "novel.seg.txt", "-q")
    result = run("train", d / "novel.seg.txt", "--from", model_dir, "-o", d / "mine",
                 "--epochs", "2")
    return d, result


def test_new_names_join_the_vocabulary_after_the_bases_words(novel_from_base, model_dir):
    d, result = novel_from_base
    assert "刘小红" in result.output  # the log names the novel's new words
    base, mine = load(model_dir), load(d / "mine")
    old = set(base.vectors.words)
    kept = [w for w in mine.vectors.words if w in old]
    n = len(kept)
    assert mine.vectors.words[:n] == kept  # the base's words first, in the base's order
    assert [w for w in base.vectors.words if w in set(kept)] == kept
    assert {w for w in old if len(w) == 1} <= set(kept)  # every character stays
    assert {"刘小红", "张阿明"} <= set(mine.vectors.words[n:])
    assert mine.config.training.init_from == str(model_dir)
    assert mine.config.training.carry is True  # the fine-tuning defaults
    assert mine.config.model.units == base.config.model.units
    out = run("continue-text", "刘小红笑道", "--model", d / "mine", "-n", "8", "--seed", "1")
    assert out.output.strip()


def test_a_fine_tuned_model_refuses_the_bases_vectors(novel_from_base, model_dir, tmp_path):
    d, _ = novel_from_base
    mixed = tmp_path / "mixed"
    shutil.copytree(d / "mine", mixed)
    shutil.copy(model_dir / "vectors.bin", mixed / "vectors.bin")
    with pytest.raises(UserError, match="vectors.bin"):
        load(mixed)
    assert_clear_error(run("continue-text", "刘小红", "--model", mixed, ok=False), "vectors")
    # and starting another run from it with the base's vectors is refused too
    assert_clear_error(run("train", d / "novel.seg.txt", "--vectors", model_dir / "vectors.bin",
                           "--init-from", d / "mine", "-o", tmp_path / "again", ok=False),
                       "vocabulary")


def test_from_keeps_the_architecture_and_needs_no_vectors(novel_from_base, model_dir, tmp_path):
    d, _ = novel_from_base
    assert_clear_error(run("train", d / "novel.seg.txt", "--from", model_dir, "--units", "64",
                           "-o", tmp_path / "x", ok=False), "--units")
    assert_clear_error(run("train", d / "novel.seg.txt", "--from", model_dir, "--vectors",
                           model_dir / "vectors.bin", "-o", tmp_path / "x", ok=False), "not both")
    assert_clear_error(run("train", d / "novel.seg.txt", "-o", tmp_path / "x", ok=False),
                       "--vectors", "--from base")
    assert not (tmp_path / "x").exists()


def test_a_traditional_novel_not_converted_is_refused_before_training(model_dir, tmp_path):
    import opencc

    (tmp_path / "trad.txt").write_text(opencc.OpenCC("s2tw").convert(make_text(60)),
                                       encoding="utf-8")
    run("segment", tmp_path / "trad.txt", "-o", tmp_path / "trad.seg.txt", "-q")
    result = run("train", tmp_path / "trad.seg.txt", "--from", model_dir, "-o",
                 tmp_path / "m", ok=False)
    assert_clear_error(result, "--to-simplified")
    assert not (tmp_path / "m").exists()


def test_an_interrupted_fine_tune_resumes_with_the_same_grown_vocabulary(
        novel_from_base, model_dir, tmp_path, monkeypatch):
    from test_train import _interrupt_after

    import wordlstm.train as train_mod

    d, _ = novel_from_base
    args = ("train", d / "novel.seg.txt", "--from", model_dir, "-o", tmp_path / "m",
            "--epochs", "2", "--patience", "0")
    with monkeypatch.context() as m:
        m.setattr(train_mod, "_make_callbacks", _interrupt_after(1))
        result = run(*args, ok=False)
    assert result.exit_code != 0 and "--resume" in result.output
    assert not (tmp_path / "m" / "config.json").exists()
    run(*args, "--resume")
    assert "刘小红" in load(tmp_path / "m").vectors.words
    history = json.loads((tmp_path / "m" / "history.json").read_text())["epochs"]
    assert [e["epoch"] for e in history] == [1, 2]
