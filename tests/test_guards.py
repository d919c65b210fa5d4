import numpy as np

from wordlstm.guards import Guards, script, token_scripts, training_counts
from wordlstm.sampling import SamplingConfig

WORDS = ["</s>", "，", "宝玉", "笑道", "第", "三", "回", "е", "Kat", "黛玉", "罕"]


def _prior(counts):
    counts = np.asarray(counts, np.float64) + 1
    return np.log(counts / counts.sum()), int(np.sum(counts) - len(counts))


def test_scripts_of_letters():
    assert script("宝") == "han" and script("е") == "cyrillic" and script("K") == "latin"
    assert script("Ｋ") == "latin" and script("，") is None and script("3") is None
    assert token_scripts("</s>") == set() and token_scripts("贾е") == {"han", "cyrillic"}


def test_counts_are_recovered_from_the_shipped_prior():
    prior, n = _prior([5, 0, 2, 40])
    np.testing.assert_array_equal(training_counts(prior, n), [5, 0, 2, 40])
    assert training_counts(None, n) is None


def test_rare_and_other_script_words_are_blocked_unless_the_prompt_has_them():
    prior, n = _prior([50, 90, 30, 30, 10, 10, 10, 1, 2, 30, 1])
    g = Guards(WORDS, prior, n)
    assert g.main == "han"
    ix = {w: i for i, w in enumerate(WORDS)}
    blocked = set(g.blocked([ix["宝玉"]], min_count=3).tolist())
    assert blocked == {ix["е"], ix["Kat"], ix["罕"]}
    assert ix["罕"] not in g.blocked([ix["罕"]], min_count=3)  # the prompt has it
    assert ix["Kat"] not in g.blocked([ix["Kat"]], min_count=0)  # the prompt has Latin
    assert ix["е"] in g.blocked([ix["Kat"]], min_count=0)  # ... not Cyrillic
    assert g.blocked([ix["宝玉"]], min_count=0, scripts=False).size == 0


def test_a_latin_vocabulary_keeps_its_letters():
    g = Guards(["</s>", "a", "b", "saurus", "д"])
    assert g.main == "latin" and g.blocked([], min_count=0).tolist() == [4]


def test_no_chapter_heading_at_a_paragraph_start():
    g = Guards(WORDS)
    ix = {w: i for i, w in enumerate(WORDS)}
    assert ix["第"] in g.heading_ban([ix["宝玉"], ix["，"], ix["</s>"]])
    assert ix["回"] in g.heading_ban([ix["</s>"], ix["第"], ix["三"]])
    assert g.heading_ban([ix["宝玉"], ix["第"], ix["三"]]) is None  # 第三回 inside a sentence
    assert g.heading_ban([ix["宝玉"], ix["笑道"]]) is None


def _writer(model_dir):
    from wordlstm.writer import Writer

    return Writer.load(model_dir)


def test_generation_never_writes_a_blocked_word(model_dir):
    w = _writer(model_dir)
    words = w.vectors.words
    prompt = [w.vectors.index["老王"]]
    free = w.gen.generate([prompt] * 4, 30, SamplingConfig(min_count=0, other_scripts=True,
                                                             top_p=1.0), seed=3)
    common = {t for out in free for t in out}
    banned = sorted(common - set(prompt))[:3]
    w.gen.guards.rare = lambda n: set(banned)  # as if these were seen once in training
    out = w.gen.generate([prompt] * 4, 30, SamplingConfig(top_p=1.0), seed=3)
    assert not {t for o in out for t in o} & set(banned), [words[i] for i in banned]


def test_quotes_stay_whole():
    words = ["</s>", "，", "宝玉", "笑道", "：", "“", "”", "好"]
    ix = {w: i for i, w in enumerate(words)}
    g = Guards(words)
    inside = [ix["宝玉"], ix["笑道"], ix["："], ix["“"], ix["好"]]
    ban = set(g.quote_ban(inside).tolist())
    assert {ix["</s>"], ix["“"]} <= ban and ix["”"] not in ban  # no end, no second opening
    closed = inside + [ix["”"]]
    assert set(g.quote_ban(closed).tolist()) == {ix["”"]}  # nothing to close
    # A new paragraph starts afresh: an open quote in the previous one does not count.
    assert ix["</s>"] not in g.quote_ban(inside + [ix["</s>"], ix["好"]])


def test_generation_keeps_quotes_whole(model_dir):
    w = _writer(model_dir)
    ix = w.vectors.index
    prompt = [ix[t] for t in ("老王", "说", "：", "“")]
    out = w.gen.generate([prompt] * 8, 40, SamplingConfig(top_p=1.0, temperature=1.5,
                                                          min_p=0.0, quotes=True), seed=5)
    for o in out:
        text = prompt + o
        depth = 0
        for t in text:
            word = w.vectors.words[t]
            depth += word.count("“") - word.count("”")
            assert depth in (0, 1), [w.vectors.words[i] for i in text]
            if t == w.eos:
                assert depth == 0
                break
