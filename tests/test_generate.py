import numpy as np
import pytest

from wordlstm.generate import (Decoder, Generator, SamplingConfig, StepModel, _banned_by_ngram, choose,
                               make_decoder, prompt_ids, render)
from wordlstm.modeldir import load_inference, load_keras_model, load_log_prior, read_config
from wordlstm.vectors import EOS, load_vectors


def test_numpy_step_model_matches_keras(model_dir):
    model = load_keras_model(model_dir)
    config = read_config(model_dir)
    step = StepModel(load_inference(model_dir, config))
    window = config["model"]["window"]
    x = np.random.default_rng(0).integers(0, config["model"]["vocab_size"] + 1, (8, window))
    expected = np.asarray(model.predict(x.astype("int32"), verbose=0))
    got, _ = step.run(x)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def _generator(model_dir):
    config = read_config(model_dir)
    vectors = load_vectors(model_dir / "vectors.bin")
    return Generator(StepModel(load_inference(model_dir, config)), vectors.words,
                     make_decoder(config, vectors, load_log_prior(model_dir, config)),
                     config["model"]["window"],
                     vectors.index.get(EOS)), vectors


@pytest.mark.parametrize("context", ["window", "carry"])
def test_same_seed_same_text_and_batch_of_samples(model_dir, context):
    gen, vectors = _generator(model_dir)
    prompt = [vectors.index["老王"]]
    cfg = SamplingConfig(context=context)
    a = gen.generate([prompt] * 3, 25, cfg, seed=7)
    b = gen.generate([prompt] * 3, 25, cfg, seed=7)
    assert a == b and all(len(o) == 25 for o in a)
    assert len({tuple(o) for o in a}) > 1  # sampled streams differ from each other
    assert gen.generate([prompt], 25, cfg, seed=8) != a[:1]


def test_greedy_is_nearest_neighbour(model_dir):
    gen, vectors = _generator(model_dir)
    prompt = [vectors.index[w] for w in ("老王", "在", "院子")]
    cfg = SamplingConfig(greedy=True, no_repeat_ngram=0, repetition_penalty=0)
    out = gen.generate([prompt], 1, cfg)[0]
    window = gen.window
    seq = np.array([[gen.pad] * (window - 3) + prompt])
    y, _ = gen.model.run(seq)
    assert out[0] == int(np.argmax(gen.decoder.scores(y)[0]))


def test_stop_condition_ends_generation(model_dir):
    gen, vectors = _generator(model_dir)
    prompt = [[vectors.index["老王"]]]
    free = gen.generate(prompt, 40, SamplingConfig(), seed=1)[0]
    mark = free[7]
    stopped = gen.generate(prompt, 40, SamplingConfig(), seed=1, stop=lambda o: o[-1] == mark)[0]
    # The same text, cut right after the first occurrence of the stop word.
    assert stopped == free[: free.index(mark) + 1]


def test_no_repeat_ngram_blocks_loops():
    history = [1, 2, 3, 1, 2]
    assert _banned_by_ngram(history, 3) == {3}
    assert _banned_by_ngram(history, 2) == {3}
    scores = np.array([0.0, 0.1, 0.2, 0.9, 0.3])
    cfg = SamplingConfig(greedy=True, no_repeat_ngram=3, repetition_penalty=0)
    assert choose(scores, history, cfg, np.random.default_rng(0)) == 4


def test_repetition_penalty_prefers_fresh_words():
    scores = np.array([0.50, 0.45, 0.0])
    cfg = SamplingConfig(greedy=True, no_repeat_ngram=0, repetition_penalty=0.1)
    assert choose(scores, [0], cfg, np.random.default_rng(0)) == 1
    assert choose(scores, [2], cfg, np.random.default_rng(0)) == 0


def test_render_joins_like_written_chinese():
    assert render(["宝玉", "笑道", "：", "hello", "world", "，", EOS, "好"]) == "宝玉笑道：hello world，\n好"
    assert render(["S", "a", "u", "r", "u", "s"], unit="char") == "Saurus"


def test_prompt_unknown_words_fall_back_to_characters():
    index = {"宝": 0, "玉": 1, "笑": 2}
    ids, unknown, split = prompt_ids(["宝玉", "笑", "xyz"], index)
    assert ids == [0, 1, 2] and unknown == ["xyz"] and split == ["宝玉"]


def _draws(scores, cfg, n=400):
    rng = np.random.default_rng(0)
    return [choose(scores, [], cfg, rng) for _ in range(n)]


def test_top_k_and_top_p_limit_the_candidates():
    scores = np.array([0.50, 0.49, 0.48, 0.10, 0.05])
    free = SamplingConfig(temperature=0.05, top_k=0, no_repeat_ngram=0, repetition_penalty=0)
    assert set(_draws(scores, free)) >= {0, 1, 2}
    k2 = SamplingConfig(temperature=0.05, top_k=2, no_repeat_ngram=0, repetition_penalty=0)
    assert set(_draws(scores, k2)) == {0, 1}
    p = SamplingConfig(temperature=0.05, top_k=0, top_p=0.3, no_repeat_ngram=0, repetition_penalty=0)
    assert set(_draws(scores, p)) == {0}  # the best word alone holds over 30% of the mass


def test_temperature_sharpens_or_flattens():
    scores = np.array([0.50, 0.45, 0.40])
    cold = SamplingConfig(temperature=0.005, top_k=3, no_repeat_ngram=0, repetition_penalty=0)
    hot = SamplingConfig(temperature=1.0, top_k=3, no_repeat_ngram=0, repetition_penalty=0)
    assert _draws(scores, cold).count(0) > 390
    assert 80 < _draws(scores, hot).count(2) < 200  # near uniform over three words


def test_fit_tau_recovers_the_temperature_that_made_the_data():
    from wordlstm.generate import fit_tau

    rng = np.random.default_rng(0)
    vocab, n, tau = 40, 4000, 0.1
    prior = np.log(1.0 / np.arange(1, vocab + 1))
    prior -= np.log(np.exp(prior).sum())
    cos = rng.uniform(-1, 1, (n, vocab))
    z = cos / tau + prior
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    truth = np.array([rng.choice(vocab, p=row) for row in p])
    assert fit_tau(cos, truth, prior) == pytest.approx(tau, rel=0.2)


def test_prior_decoder_adds_log_frequency_to_cosine():
    from wordlstm.generate import SOFTMAX_SCALE, PriorDecoder

    unit = np.eye(3, dtype=np.float32)
    prior = np.log(np.array([0.8, 0.1, 0.1], np.float32))
    y = np.array([[0.0, 1.0, 0.9]], np.float32)  # nearest by cosine: word 1
    assert int(np.argmax(Decoder(unit).scores(y))) == 1
    dec = PriorDecoder(unit, prior, tau=1.0)  # weak evidence: the frequent word wins
    assert int(np.argmax(dec.scores(y))) == 0
    cos = Decoder(unit).cosines(y)
    np.testing.assert_allclose(dec.scores(y), SOFTMAX_SCALE * (cos + prior), rtol=1e-6)
    assert int(np.argmax(PriorDecoder(unit, prior, tau=0.01).scores(y))) == 1  # strong evidence


def test_no_token_follows_itself():
    from wordlstm.generate import SamplingConfig, choose

    scores = np.array([0.9, 0.5, 0.1], np.float32)  # word 0 is best, and is punctuation
    cfg = SamplingConfig(greedy=True)
    assert choose(scores, [2, 0], cfg, None, protect={0}) == 1
    assert choose(scores, [0, 2], cfg, None, protect={0}) == 0
    off = SamplingConfig(greedy=True, no_repeat_ngram=0, repetition_penalty=0)
    assert choose(scores, [2, 0], off, None, protect={0}) == 0
