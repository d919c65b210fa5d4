import numpy as np

from wordlstm.split import HoldOut
from wordlstm.vectors import EOS, Vectors
from wordlstm.vocab import extend_vocabulary


def _base() -> Vectors:
    words = [EOS, "说", "道", "宝", "玉", "们"]
    rng = np.random.default_rng(0)
    return Vectors(words, rng.normal(size=(len(words), 8)).astype(np.float32))


def test_new_words_join_after_the_old_ones_which_keep_ids_and_vectors(tmp_path):
    p = tmp_path / "novel.seg.txt"
    body = "宝玉 说道 ： 宝玉 们 说 。\n" * 30
    p.write_text(body + "黛玉 说 。\n" * 3, encoding="utf-8")  # the tail: held out
    base = _base()
    grown = extend_vocabulary(base, str(p), HoldOut(0.05))
    n = len(base.words)
    assert grown.vectors.words[:n] == base.words
    np.testing.assert_array_equal(grown.vectors.matrix[:n], base.matrix)
    # new: "宝玉" and "说道" (30 times each); "：" and "。" are new characters
    assert grown.new_words == ["宝玉", "说道"] and grown.new_chars == ["。", "："]
    i = grown.vectors.words.index("宝玉")
    np.testing.assert_allclose(grown.vectors.matrix[i], base.matrix[[3, 4]].mean(axis=0),
                               rtol=1e-6)
    # 黛/玉 appear only in the held-out tail: nothing of it is read
    assert "黛玉" not in grown.vectors.words and "黛" not in grown.vectors.words


def test_rare_words_stay_spelled_and_the_unknown_share_is_measured(tmp_path):
    p = tmp_path / "novel.seg.txt"
    p.write_text("宝玉 说 。\n" * 2 + "说 道 们\n" * 40, encoding="utf-8")
    grown = extend_vocabulary(_base(), str(p), HoldOut(0.0))
    assert "宝玉" not in grown.vectors.words  # seen twice: below min_count 3
    assert grown.new_chars == ["。"] and 0 < grown.unknown_share < 0.05


def test_base_words_the_novel_never_uses_are_left_out_but_every_character_stays(tmp_path):
    words = [EOS, "说", "道", "宝", "玉", "丞相", "说道"]
    rng = np.random.default_rng(1)
    base = Vectors(words, rng.normal(size=(len(words), 8)).astype(np.float32))
    p = tmp_path / "novel.seg.txt"
    p.write_text("宝玉 说道 ： 宝玉 说 。\n" * 30, encoding="utf-8")
    grown = extend_vocabulary(base, str(p), HoldOut(0.0))
    assert "丞相" not in grown.vectors.words and grown.dropped == 1
    assert grown.vectors.words[:6] == [EOS, "说", "道", "宝", "玉", "说道"]
    i = grown.vectors.words.index("说道")  # kept, with the base's own vector
    np.testing.assert_array_equal(grown.vectors.matrix[i], base.matrix[6])
    assert grown.new_words == ["宝玉"]
