import json

import pytest

from wordlstm.errors import UserError
from wordlstm.join import join_segmented
from wordlstm.split import HoldOut, held_out_lines, line_token_counts
from wordlstm.vectors import SegmentedCorpus


def _segmented(path, lines, **segmenter):
    path.write_text("".join(" ".join(line) + "\n" for line in lines), encoding="utf-8")
    (path.parent / (path.name + ".json")).write_text(
        json.dumps({"segmenter": {"unit": "word", **segmenter}}), encoding="utf-8")
    return str(path)


def _novel(tag: str, n: int = 40) -> list[list[str]]:
    return [[f"{tag}{i}", "说", "道", "：", "这", "是", "第", str(i), "段", "话", "，", "很",
             "长", "很", "长", "的", "一", "段", "。"] for i in range(n)]


def test_the_tail_of_a_train_part_file_is_never_in_the_joined_corpus(tmp_path):
    novel = _segmented(tmp_path / "hlm.seg.txt", _novel("宝"))
    other = _segmented(tmp_path / "other.seg.txt", _novel("悟"), to_simplified=True)
    out = str(tmp_path / "base.seg.txt")
    summary = join_segmented([other], [novel], out)
    joined = {" ".join(t) for t in SegmentedCorpus(out, eos=False)}
    mask = held_out_lines(line_token_counts(novel), HoldOut())
    tail = [" ".join(t) for held, t in zip(mask, SegmentedCorpus(novel, eos=False)) if held]
    train = [" ".join(t) for held, t in zip(mask, SegmentedCorpus(novel, eos=False)) if not held]
    assert tail and not joined & set(tail)  # asserted on the written file, not assumed
    assert set(train) <= joined and {" ".join(t) for t in _novel("悟")} <= joined
    assert summary["held_out_lines_checked"] == len(tail)
    assert summary["segmenter"]["to_simplified"] is True  # one source was converted
    assert json.loads((tmp_path / "base.seg.txt.json").read_text())["files"][0]["train_part"]


def test_a_tail_line_quoted_by_another_input_is_refused_and_nothing_written(tmp_path):
    lines = _novel("宝")
    novel = _segmented(tmp_path / "hlm.seg.txt", lines)
    quoting = _segmented(tmp_path / "sequel.seg.txt", _novel("悟") + [lines[-1]])
    out = tmp_path / "base.seg.txt"
    with pytest.raises(UserError, match="held-out line"):
        join_segmented([quoting], [novel], str(out))
    assert not out.exists()


def test_sources_must_be_segmented_alike(tmp_path):
    words = _segmented(tmp_path / "a.seg.txt", _novel("宝"))
    chars = _segmented(tmp_path / "b.seg.txt", _novel("悟"), unit="char")
    with pytest.raises(UserError, match="--unit char"):
        join_segmented([chars], [words], str(tmp_path / "out.seg.txt"))
    with pytest.raises(UserError, match="twice"):
        join_segmented([words], [words], str(tmp_path / "out.seg.txt"))


@pytest.mark.corpus
def test_the_shipped_base_recipe_never_holds_hongloumengs_held_out_tail(tmp_path):
    """models/README.md's commands, on the real files: the joined pretraining text has none
    of 红楼梦's held-out paragraphs, and the shipped base model says it was trained on it."""
    from conftest import SHARED, needs_corpus, run

    hlm = needs_corpus("hongloumeng.txt")
    others = sorted(p for p in (SHARED / "classics").glob("*.txt")
                    if p.stem not in ("rulinwaishi", "jinghuayuan"))
    others += [needs_corpus("sanguoyanyi.txt"), needs_corpus("shuihuzhuan.txt")]
    run("segment", hlm, "-o", tmp_path / "hlm.seg.txt", "-q")
    run("segment", *others, "--to-simplified", "-o", tmp_path / "others.seg.txt", "-q")
    run("join", "--train-part", tmp_path / "hlm.seg.txt", tmp_path / "others.seg.txt",
        "-o", tmp_path / "base.seg.txt", "-q")
    mask = held_out_lines(line_token_counts(tmp_path / "hlm.seg.txt"), HoldOut())
    tail = {"".join(t) for held, t in zip(mask, SegmentedCorpus(tmp_path / "hlm.seg.txt",
                                                                  eos=False)) if held}
    tail = {t for t in tail if len(t) >= 20}
    joined = {"".join(t) for t in SegmentedCorpus(tmp_path / "base.seg.txt", eos=False)}
    assert len(tail) > 50 and not tail & joined
    from wordlstm.dataset import corpus_ids
    from wordlstm.modeldir import load_vectors_of, read_config, resolve_model_dir

    base = resolve_model_dir("base")
    config = read_config(base)
    ids = corpus_ids(str(tmp_path / "base.seg.txt"), load_vectors_of(base).index,
                     config.training.holdout)
    assert config.training.corpus == "base.seg.txt"
    assert (len(ids.train), len(ids.val)) == (config.training.train_tokens,
                                              config.training.val_tokens)
