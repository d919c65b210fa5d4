import numpy as np
import pytest

from wordlstm.dry import History
from wordlstm.errors import UserError
from wordlstm.model import core_weights
from wordlstm.modeldir import load, load_keras_model
from wordlstm.sampling import SamplingConfig, _banned_by_ngram, choose

PLAIN = dict(dry_multiplier=0.0, top_p=1.0, min_p=0.0)  # no loop control, no truncation: the model as is


def test_numpy_step_model_matches_keras(model_dir):
    from wordlstm.model import build_core, set_core_weights

    m = load(model_dir)
    # model.keras stores float16 weights (and Keras would compute in float16 with them): the
    # step model is checked against Keras' float32 arithmetic on the same stored weights.
    core = build_core(m.config.model)
    set_core_weights(core, *core_weights(load_keras_model(model_dir)))
    step = m.step
    x = np.random.default_rng(0).integers(0, m.config.model.vocab_size + 1, (8, 7))
    expected = np.asarray(core.predict(m.weights.embedding[x], verbose=0))[:, -1]
    got, _ = step.run(x)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert len(core_weights(core)[0]) == m.config.model.layers


def _writer(model_dir):
    from wordlstm.writer import Writer

    return Writer.load(model_dir)


@pytest.mark.parametrize("context", ["window", "carry"])
def test_same_seed_same_text_and_batch_of_samples(model_dir, context):
    w = _writer(model_dir)
    prompt = [w.vectors.index["老王"]]
    cfg = SamplingConfig(context=context)
    a = w.gen.generate([prompt] * 3, 25, cfg, seed=7)
    b = w.gen.generate([prompt] * 3, 25, cfg, seed=7)
    assert a == b and all(len(o) == 25 for o in a)
    assert len({tuple(o) for o in a}) > 1  # sampled streams differ from each other
    assert w.gen.generate([prompt], 25, cfg, seed=8) != a[:1]


def test_greedy_takes_the_likeliest_word(model_dir):
    w = _writer(model_dir)
    prompt = [w.vectors.index[t] for t in ("老王", "在", "院子")]
    out = w.gen.generate([prompt], 1, SamplingConfig(greedy=True, **PLAIN))[0]
    y, _ = w.gen.model.run(np.array([[w.gen.pad] + prompt]))
    assert out[0] == int(np.argmax(w.gen.decoder.logprobs(y)[0]))


def test_stop_condition_ends_generation(model_dir):
    w = _writer(model_dir)
    prompt = [[w.vectors.index["老王"]]]
    free = w.gen.generate(prompt, 40, SamplingConfig(), seed=1)[0]
    mark = free[7]
    stopped = w.gen.generate(prompt, 40, SamplingConfig(), seed=1,
                             stop=lambda o: o[-1] == mark)[0]
    # The same text, cut right after the first occurrence of the stop word.
    assert stopped == free[: free.index(mark) + 1]


def _draws(logp, cfg, n=4000, history=()):
    rng = np.random.default_rng(0)
    return np.array([choose(np.asarray(logp), History(history), cfg, rng) for _ in range(n)])


def test_temperature_one_samples_the_models_own_distribution():
    p = np.array([0.5, 0.25, 0.15, 0.07, 0.03])
    draws = _draws(np.log(p), SamplingConfig(temperature=1.0, **PLAIN), n=20000)
    freq = np.bincount(draws, minlength=5) / len(draws)
    np.testing.assert_allclose(freq, p, atol=0.012)
    # Temperature 0.5 squares the probabilities (renormalised).
    draws = _draws(np.log(p), SamplingConfig(temperature=0.5, **PLAIN), n=20000)
    q = p ** 2 / (p ** 2).sum()
    np.testing.assert_allclose(np.bincount(draws, minlength=5) / len(draws), q, atol=0.012)


def test_top_k_and_top_p_limit_the_candidates():
    logp = np.log(np.array([0.4, 0.3, 0.2, 0.07, 0.03]))
    assert set(_draws(logp, SamplingConfig(**PLAIN), n=2000)) == {0, 1, 2, 3, 4}
    assert set(_draws(logp, SamplingConfig(top_k=2, **PLAIN ))) == {0, 1}
    nucleus = SamplingConfig(top_p=0.65, dry_multiplier=0.0)
    assert set(_draws(logp, nucleus)) == {0, 1}  # 0.4 + 0.3 is the smallest set over 0.65


def test_dry_penalises_only_words_that_extend_a_repeat():
    # history: a b c x a b -> "c" would repeat "a b c"; "x" and every other word are free.
    h = History([0, 1, 2, 9, 0, 1])
    cfg = SamplingConfig(dry_multiplier=1.0, dry_base=2.0, dry_allowed=2)
    assert h.dry(cfg) == {2: 1.0}
    h.append(2)  # a b c repeated: now "x" would extend a 3-token repeat, penalty 1.0 * 2
    assert h.dry(cfg) == {9: 2.0}
    assert History([0, 1, 2, 9, 0, 1]).dry(SamplingConfig(dry_multiplier=1.0, dry_allowed=3)) == {}
    # A paragraph end breaks a repeat.
    assert History([0, 1, 2, 5, 0, 1], breakers={1}).dry(cfg) == {}
    logp = np.log(np.array([0.1, 0.1, 0.5, 0.2, 0.1]))
    greedy = SamplingConfig(greedy=True, dry_multiplier=1.0, dry_allowed=2)
    assert choose(logp, History([0, 1, 2, 4, 0, 1]), greedy, None) == 3


def test_no_repeat_ngram_blocks_loops():
    history = [1, 2, 3, 1, 2]
    assert _banned_by_ngram(history, 3) == {3}
    assert _banned_by_ngram(history, 2) == {3}
    logp = np.log(np.array([0.1, 0.1, 0.1, 0.6, 0.1]))
    cfg = SamplingConfig(greedy=True, no_repeat_ngram=3, dry_multiplier=0)
    assert choose(logp, History(history), cfg, np.random.default_rng(0)) == 0


def test_sampling_settings_are_checked():
    for bad in (dict(temperature=float("nan")), dict(temperature=0), dict(top_p=0),
                dict(top_p=2), dict(top_k=-3), dict(no_repeat_ngram=-2),
                dict(dry_multiplier=-1), dict(context="x")):
        with pytest.raises(UserError):
            SamplingConfig(**bad)


def test_paragraph_and_punctuation_biases_shift_only_their_tokens(model_dir):
    w = _writer(model_dir)
    prompt = [w.vectors.index["老王"]]
    eos, comma = w.gen.eos_id, w.vectors.index["，"]
    seen = []
    original = w.gen.decoder.logprobs

    def spy(y):
        out = original(y)
        seen.append(out.copy())
        return out

    w.gen.decoder.logprobs = spy
    draws = {}
    for bias in (0.0, -50.0):
        cfg = SamplingConfig(paragraph_bias=bias, punct_bias=bias, **PLAIN)
        outs = w.gen.generate([prompt] * 8, 30, cfg, seed=3)
        draws[bias] = sum(o.count(eos) + o.count(comma) for o in outs)
    assert draws[0.0] > 0 and draws[-50.0] == 0


def test_reranked_text_is_reproducible_and_made_of_whole_clauses(model_dir):
    from wordlstm.rerank import Reranker

    w = _writer(model_dir)
    prompt = [w.vectors.index["老王"]]
    cfg = SamplingConfig(rerank=4, clause_words=12)
    r = Reranker(w.gen)
    a = r.generate(prompt, 40, cfg, seed=3)
    assert a == r.generate(prompt, 40, cfg, seed=3) and len(a) == 40
    assert a != r.generate(prompt, 40, cfg, seed=4)
    # Every clause but the last ends with a clause mark or within clause_words words.
    run = 0
    for tok in a[:-12]:
        run = 0 if r.ends[tok] else run + 1
        assert run < 12
    mark = next(t for t in a if r.ends[t])
    stopped = r.generate(prompt, 40, cfg, seed=3, stop=lambda o: o[-1] == mark)
    assert stopped == a[:a.index(mark) + 1]


def test_the_cache_changes_generation_and_can_be_turned_off(model_dir):
    from wordlstm.cache import CacheConfig

    w = _writer(model_dir)
    prompt = [w.vectors.index[t] for t in ("老王", "在", "院子", "里", "看书", "。")] * 3
    plain = w.gen.generate([prompt] * 2, 30, SamplingConfig(cache=False), seed=2)
    saved = w.gen.cache
    try:
        w.gen.cache = CacheConfig(size=64, theta=10.0, weight=0.0, gap=0)
        assert w.gen.generate([prompt] * 2, 30, SamplingConfig(cache=True), seed=2) == plain
        w.gen.cache = CacheConfig(size=64, theta=10.0, weight=0.9, gap=0)
        cached = w.gen.generate([prompt] * 2, 30, SamplingConfig(cache=True), seed=2)
        assert cached != plain
        assert w.gen.generate([prompt] * 2, 30, SamplingConfig(cache=False), seed=2) == plain
    finally:
        w.gen.cache = saved


def test_typical_and_min_p_truncation():
    from wordlstm.sampling import _typical

    logp = np.log(np.array([0.5, 0.2, 0.15, 0.1, 0.05]))
    # entropy 1.33 nats; surprisals 0.69, 1.61, 1.90, 2.30, 3.00: nearest it 1, 2, then 0
    kept = np.isfinite(_typical(logp, 1.0, 0.3))
    assert kept.tolist() == [False, True, True, False, False]  # the likeliest is not typical
    assert np.isfinite(_typical(logp, 1.0, 0.6)).tolist() == [True, True, True, False, False]
    assert np.isfinite(_typical(logp, 1.0, 0.99)).all()
    rng = np.random.default_rng(0)
    picks = {choose(logp, History([]), SamplingConfig(temperature=1.0, min_p=0.35, top_p=1.0,
                                                      dry_multiplier=0), rng) for _ in range(200)}
    assert picks == {0, 1}  # 0.2 / 0.5 >= 0.35 > 0.15 / 0.5


def test_adapting_to_the_prompt_changes_the_head_per_prompt(model_dir):
    w = _writer(model_dir)
    a = [w.vectors.index[t] for t in ("老王", "在", "院子", "里", "看书", "。")] * 4
    b = [w.vectors.index[t] for t in ("小李", "听", "了", "，")] * 4
    cfg = SamplingConfig(adapt=True, temperature=1.0, min_p=0.0)
    saved = w.gen.dynamic_lr
    try:
        w.gen.dynamic_lr = 0.0
        plain = w.gen.generate([a], 20, cfg, seed=4)
        w.gen.dynamic_lr = 0.5
        adapted = w.gen.generate([a], 20, cfg, seed=4)
        assert adapted != plain
        assert w.gen.generate([a], 20, SamplingConfig(adapt=False, temperature=1.0, min_p=0.0),
                              seed=4) == plain
        # Streams of different prompts in one batch each read through their own head: the
        # same greedy text as each alone.
        g = SamplingConfig(adapt=True, greedy=True)
        both = w.gen.generate([a, b], 15, g)
        assert both == [w.gen.generate([a], 15, g)[0], w.gen.generate([b], 15, g)[0]]
    finally:
        w.gen.dynamic_lr = saved


def test_speech_opens_freely_after_a_colon():
    """DRY's sequence breakers: "宝玉道：“" repeats every few lines in the novel; the colon and
    quote marks stop a repeat, so the opening quote is never penalised for it."""
    from wordlstm.generate import Generator

    words = ["</s>", "宝玉", "道", "：", "“", "好", "”"]
    gen = Generator.__new__(Generator)
    gen.words, gen.breakers, gen._breakers = words, frozenset({0}), {}
    said = [1, 2, 3, 4, 5, 6, 1, 2, 3]  # 宝玉道：“好”宝玉道：
    cfg = SamplingConfig(dry_allowed=1)
    assert History(said, gen.breakers_for("：“”")).dry(cfg) == {}
    assert 4 in History(said, gen.breakers_for("")).dry(cfg)  # without them: penalised
