import numpy as np
import pytest

from wordlstm.errors import UserError
from wordlstm.vectors import (
    EOS,
    SegmentedCorpus,
    Vectors,
    load_vectors,
    resolve_vectors_path,
    save_vectors,
)


def _small():
    rng = np.random.default_rng(0)
    return Vectors(["的", "了", "宝玉", EOS, "hello"], rng.normal(size=(5, 7)).astype(np.float32))


@pytest.mark.parametrize("binary", [True, False])
def test_roundtrip_both_formats(tmp_path, binary):
    v = _small()
    path = save_vectors(v, tmp_path / ("v.bin" if binary else "v.txt"), binary=binary)
    back = load_vectors(path)
    assert back.words == v.words
    np.testing.assert_allclose(back.matrix, v.matrix, rtol=1e-6)


def test_reads_files_written_by_gensim(tmp_path):
    from gensim.models import KeyedVectors

    v = _small()
    kv = KeyedVectors(v.dim)
    kv.add_vectors(v.words, v.matrix)
    kv.save_word2vec_format(str(tmp_path / "g.bin"), binary=True)
    kv.save_word2vec_format(str(tmp_path / "g.vec"), binary=False)
    for name in ("g.bin", "g.vec"):
        back = load_vectors(tmp_path / name)
        assert back.words == v.words
        np.testing.assert_allclose(back.matrix, v.matrix, rtol=1e-6)


def test_prefix_and_directory_resolve(tmp_path):
    save_vectors(_small(), tmp_path / "vectors.bin")
    assert resolve_vectors_path(tmp_path / "vectors") == tmp_path / "vectors.bin"
    assert resolve_vectors_path(tmp_path) == tmp_path / "vectors.bin"
    with pytest.raises(UserError, match="no word vectors"):
        resolve_vectors_path(tmp_path / "other")


@pytest.mark.parametrize("content", [b"hello world\n", b"", b"\x89PNG\r\n\x1a\n\x00\x00",
                                     "3 2\n的 1.0\n".encode()])
def test_not_word2vec_is_a_clear_error(tmp_path, content):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(UserError, match="word2vec"):
        load_vectors(path)


def test_truncated_binary_is_a_clear_error(tmp_path):
    path = save_vectors(_small(), tmp_path / "v.bin")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 10])
    with pytest.raises(UserError, match="truncated"):
        load_vectors(path)


def test_neighbors_are_nearest_by_cosine():
    v = Vectors(["a", "b", "c", "zero"], np.array([[1, 0.1], [1, 0], [0, 1], [0, 0]], np.float32))
    near = v.neighbors("a", 3)
    assert [w for w, _ in near] == ["b", "c", "zero"]
    np.testing.assert_allclose([s for _, s in near], [1 / np.hypot(1, 0.1), 0.1 / np.hypot(1, 0.1), 0],
                               rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(v.normalized()[:3], axis=1), 1, rtol=1e-6)
    assert not v.normalized()[3].any()  # a zero row stays zero
    with pytest.raises(UserError):
        v.neighbors("zzz")


def test_neighbors_normalise_the_matrix_once(monkeypatch):
    """Like gensim's norms: the unit rows are computed on the first lookup and kept, not
    recomputed for every word asked about (a vocabulary's matrix is tens of megabytes)."""
    import wordlstm.vectors as vectors_module

    calls = []
    real = vectors_module.unit_rows
    monkeypatch.setattr(vectors_module, "unit_rows", lambda m: calls.append(1) or real(m))
    v = _small()
    first = v.neighbors("宝玉", 3)
    assert v.neighbors("宝玉", 3) == first and v.neighbors("的", 2)
    assert len(calls) == 1
    v.matrix = v.matrix * 2 + 1  # a new matrix is normalised anew
    v.neighbors("的", 2)
    assert len(calls) == 2
    assert v.neighbors("的", 4) == Vectors(v.words, v.matrix).neighbors("的", 4)


def test_corpus_stream_adds_paragraph_ends(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("a b\n\nc\n", encoding="utf-8")
    assert list(SegmentedCorpus(p)) == [["a", "b", EOS], ["c", EOS]]
    assert list(SegmentedCorpus(p)) == list(SegmentedCorpus(p))  # restartable per epoch


def test_train_word2vec_gives_vocab_with_eos(vectors_file):
    v = load_vectors(vectors_file)
    assert EOS in v and "院子" in v and v.dim == 16


# --- issue 20, item 11: the writer and the reader agree on the longest word -----------------

def test_a_very_long_frequent_token_does_not_make_an_unreadable_file(tmp_path):
    from wordlstm.vectors import MAX_WORD_BYTES, Word2VecSettings, train_word2vec

    long = "长" * 1200  # 3,600 bytes of UTF-8, three times
    corpus = tmp_path / "s.txt"
    corpus.write_text("".join(f"老王 在 {long if i % 20 == 0 else '院子'} 里 说话 。\n"
                              for i in range(60)), encoding="utf-8")
    for spell_rare in (True, False):
        v = train_word2vec(str(corpus), Word2VecSettings(size=8, epochs=1, workers=1,
                                                         min_count=3, spell_rare=spell_rare,
                                                         val_fraction=0.0))
        assert long not in v and all(len(w.encode()) <= MAX_WORD_BYTES for w in v.words)
        back = load_vectors(save_vectors(v, tmp_path / "v.bin"))  # its own file reads back
        assert back.words == v.words
        assert ("长" in back) == spell_rare  # spelled with its characters, or left out


def test_a_word_no_file_can_hold_is_refused_when_writing(tmp_path):
    from wordlstm.vectors import MAX_WORD_BYTES

    for word in ("长" * (MAX_WORD_BYTES // 3 + 1), "a b", "a\nb", ""):
        v = Vectors(["的", word], np.zeros((2, 3), np.float32))
        with pytest.raises(UserError, match=f"{MAX_WORD_BYTES} bytes"):
            save_vectors(v, tmp_path / "v.bin")
        assert not list(tmp_path.iterdir())  # nothing written
    v = Vectors(["的", "长" * (MAX_WORD_BYTES // 3)], np.ones((2, 3), np.float32))
    assert load_vectors(save_vectors(v, tmp_path / "v.bin")).words == v.words  # at the limit
