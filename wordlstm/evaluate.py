"""Evaluation: held-out cross-entropy in bits per character, and top-k accuracy.

The model reads the held-out stream as generation does (LSTM state carried from word to word;
the stream is cut into a few parallel pieces, each from a zero state, for speed) and every
position is scored with the model's own decoding (decoding.make_decoder).

Bits per character count every held-out character, so models with different vocabularies,
and a character n-gram, are compared on the same text:
- a word in the vocabulary costs -log2((1 - p_oov) * p_model(word | context));
- an unknown character (the only thing the vocabulary cannot spell) costs
  -log2(p_oov * p_unigram(character)), p_oov being the training share of unknown positions;
- a paragraph end (</s>) is one character, the line break.
"""

from __future__ import annotations

import math

import numpy as np

from .dataset import MASKED, CorpusIds, targets_of
from .vectors import EOS

LN2 = math.log(2.0)


def stream_outputs(step_model, ids: np.ndarray, pieces: int = 16,
                   desc: str = "reading the text") -> np.ndarray:
    """Model outputs after each of ids[:-1], carrying state along the stream, [n - 1, out].

    The stream is cut into `pieces` consecutive parts run side by side as one batch; each
    part starts from a zero state after the previous part's last token. Long reads show
    progress as `desc` (progress.step).
    """
    from .progress import step

    n = len(ids) - 1
    if n <= 0:
        return np.zeros((0, step_model.dense_kernel.shape[1]), np.float32)
    pieces = max(1, min(pieces, n // 64 or 1))
    bounds = np.linspace(0, n, pieces + 1).astype(int)
    longest = int(np.diff(bounds).max())
    out = np.zeros((n, step_model.dense_kernel.shape[1]), np.float32)
    state = step_model.zero_state(pieces)
    pad = int(ids[0])
    with step(desc, n, "positions") as advance:
        for t in range(longest):
            pos = bounds[:-1] + t
            live = pos < bounds[1:]
            y, state = step_model.step(np.where(live, ids[np.minimum(pos, n - 1)], pad), state)
            out[pos[live]] = y[live]
            advance(int(live.sum()))
    return out


def target_logprobs(decoder, outputs: np.ndarray, targets: np.ndarray,
                    ks=(1, 5, 10), rows: int = 1024) -> tuple[np.ndarray, dict]:
    """Natural-log probability of each target (NaN where masked) and top-k hit counts."""
    logp = np.full(len(targets), np.nan)
    hits = {k: 0 for k in ks}
    for i in range(0, len(targets), rows):
        t = targets[i:i + rows]
        lp = decoder.logprobs(outputs[i:i + rows])
        ok = t != MASKED
        if not ok.any():
            continue
        rows_ok = np.nonzero(ok)[0]
        true = lp[rows_ok, t[ok]]
        logp[i + rows_ok] = true
        rank = (lp[rows_ok] > true[:, None]).sum(axis=1)
        for k in ks:
            hits[k] += int((rank < k).sum())
    return logp, hits


def char_unigram(char_counts) -> tuple[dict, float]:
    """Add-one smoothed character probabilities of the training text, and the probability of
    a character it never had."""
    total = sum(char_counts.values()) + len(char_counts) + 1
    return {c: (n + 1) / total for c, n in char_counts.items()}, 1 / total


def cross_entropy(logp: np.ndarray, targets: np.ndarray, corpus: CorpusIds,
                  words: list[str]) -> dict:
    """Open-vocabulary bits per character (and per segmented word) of the held-out stream."""
    n_train = max(corpus.train_positions or len(corpus.train) - 1, 1)
    p_oov = min(max(corpus.train_unknown, 0.5) / n_train, 0.5)  # never 0: unseen can happen
    unigram, unseen = char_unigram(corpus.char_counts)
    known = targets != MASKED
    lengths = np.array([1 if w == EOS else len(w) for w in words] + [1], np.int64)
    unk_chars = corpus.val_unknown_chars
    n_unknown = int((~known).sum())
    bits_known = float(-(logp[known]).sum() / LN2 - known.sum() * math.log2(1 - p_oov))
    bits_unknown = n_unknown * -math.log2(p_oov) + sum(
        -math.log2(unigram.get(c, unseen)) for c in unk_chars[:n_unknown])
    chars = int(lengths[np.where(known, targets, len(words))].sum())
    total = bits_known + bits_unknown
    n_words = corpus.val_words or len(targets)
    return {"bits_per_char": total / max(chars, 1),
            "bits_per_word": total / max(n_words, 1),
            "perplexity": 2 ** (total / max(n_words, 1)),
            "bits_per_char_known": bits_known / max(int(lengths[targets[known]].sum()), 1),
            "oov_share": n_unknown / max(len(targets), 1),
            "p_oov": p_oov, "characters": chars, "positions": int(len(targets)),
            "words": int(n_words)}


LONG_RANGE = 100  # tokens into a paragraph: where carried context matters


def positions_in_paragraph(ids: np.ndarray, eos: int) -> np.ndarray:
    """For each target ids[t + 1]: how many tokens of its paragraph come before it."""
    n = len(ids) - 1
    pos = np.zeros(n, np.int64)
    run = 0
    for t in range(n):
        run = 0 if ids[t] == eos else run + 1
        pos[t] = run
    return pos


def range_bits(logp: np.ndarray, targets: np.ndarray, words: list[str], pos: np.ndarray,
               split: int = LONG_RANGE) -> dict:
    """Bits per character of in-vocabulary targets before and from `split` tokens into their
    paragraph (long-range context is what carried state and the cache are for)."""
    lengths = np.array([1 if w == EOS else len(w) for w in words] + [1], np.int64)
    ok = (targets != MASKED) & np.isfinite(logp)
    out = {}
    for name, sel in (("short", ok & (pos < split)), ("long", ok & (pos >= split))):
        chars = int(lengths[targets[sel]].sum())
        out[f"bits_per_char_{name}"] = float(-logp[sel].sum() / LN2 / chars) if chars else None
        out[f"positions_{name}"] = int(sel.sum())
    return out


def evaluate(step_model, decoder, corpus: CorpusIds, words: list[str], pieces: int = 16,
             cache=None, dynamic_lr: float = 0.0, ngram=None) -> dict:
    """Everything `wordlstm evaluate` reports for the held-out stream of `corpus`, with the
    continuous cache mixed in if `cache` (cache.CacheConfig) is given, and the head adapted
    as it reads with `dynamic_lr` (dynamic.dynamic_logprobs; top-k: the plain model's), and
    the word n-gram mixed in last if `ngram` ((ngram.NgramConfig, ngram.WordNgram)) is given."""
    from .cache import cache_probs, mixed_logprobs

    ids = corpus.val
    targets = targets_of(ids[1:], corpus.unk)
    outputs = stream_outputs(step_model, ids, pieces)
    logp, hits = target_logprobs(decoder, outputs, targets)
    plain = None
    if dynamic_lr > 0:
        from .dynamic import dynamic_logprobs
        from .errors import UserError

        if not hasattr(decoder, "log_prior"):
            raise UserError("dynamic evaluation is for the vector head's prior decoding")

        plain = cross_entropy(logp, targets, corpus, words)["bits_per_char"]
        logp, outputs = dynamic_logprobs(step_model, decoder, ids, targets, dynamic_lr)
    if cache is not None and cache.weight > 0:
        if plain is None:
            plain = cross_entropy(logp, targets, corpus, words)["bits_per_char"]
        logp = mixed_logprobs(logp, cache_probs(outputs, targets, cache.size, cache.theta),
                              cache.weight)
    if ngram is not None and ngram[0].weight > 0:
        if plain is None:
            plain = cross_entropy(logp, targets, corpus, words)["bits_per_char"]
        logp = mixed_logprobs(logp, ngram[1].target_probs(ids), ngram[0].weight)
    result = cross_entropy(logp, targets, corpus, words)
    eos = words.index(EOS) if EOS in words else -1
    result.update(range_bits(logp, targets, words, positions_in_paragraph(ids, eos)))
    if plain is not None:
        result["bits_per_char_plain"] = plain  # the model alone: no cache, no adaptation
        if cache is not None and cache.weight > 0:
            result["cache"] = cache.to_json()
        if dynamic_lr > 0:
            result["dynamic_lr"] = dynamic_lr
        if ngram is not None and ngram[0].weight > 0:
            result["ngram"] = ngram[0].to_json()
    n = max(int((targets != MASKED).sum()), 1)
    train_t = corpus.train[1:]
    train_t = train_t[train_t < corpus.unk]
    counts = (corpus.train_word_counts if corpus.train_word_counts is not None
              else np.bincount(train_t, minlength=corpus.unk))
    base = int(np.argmax(counts)) if len(counts) and counts.max() > 0 else 0
    result.update({f"top{k}": v / n for k, v in hits.items()})
    result["baseline_word"] = words[base]
    result["baseline_top1"] = float((targets == base).sum() / n)
    # Words outside the vocabulary are spelled with their characters: the model scores them
    # character by character, and only unknown characters are priced as OOV above.
    result["words_not_in_vocab"] = corpus.val_spelled / max(corpus.val_words, 1)
    return result


def evaluate_file(segmented: str, model_dir=None, whole_file: bool = False,
                  decode: str | None = None, cache: bool = True,
                  dynamic_lr: float | None = None, ngram: bool = True) -> dict:
    """`wordlstm evaluate`: score a segmented file's held-out part (or, `whole_file`, all of
    it) with a model dir (default: the shipped model), decoded its own way or `decode`'s,
    with the model's continuous cache unless `cache` is False, and with dynamic evaluation at
    the model's fitted learning rate (`dynamic_lr`: None) or another (0: off), and with its
    word n-gram unless `ngram` is False."""
    from .dataset import corpus_ids
    from .errors import UserError
    from .modeldir import load
    from .textio import check_segmented

    check_segmented(segmented)
    loaded = load(model_dir, decode)
    corpus = corpus_ids(segmented, loaded.vectors.index, loaded.config.training.holdout,
                        whole=whole_file)
    if len(corpus.val) < 2:
        raise UserError(f"{segmented}: no held-out text to evaluate")
    if whole_file and len(corpus.train) < 2:
        # Scoring another file: unknown characters are priced as the model's training text
        # would price them (how often it had one, and the chance of a character it never
        # saw), never from the file being scored (a file of emoji would score itself cheap).
        training_stats_of(loaded, corpus)
    result = evaluate(loaded.step, loaded.decoder, corpus, loaded.vectors.words,
                      cache=loaded.cache if cache else None,
                      dynamic_lr=loaded.config.decoder.dynamic_rate
                      if dynamic_lr is None else dynamic_lr,
                      ngram=loaded.ngram if ngram else None)
    result["scope"] = "whole file" if whole_file else "held-out part"
    return result


def training_stats_of(loaded, corpus) -> None:
    """Fill `corpus`'s training figures from the model dir: its training targets and unknown
    positions (config.json), each word's count (from prior.npy) and so each character's."""
    from collections import Counter

    from .errors import UserError
    from .guards import training_counts

    training = loaded.config.training
    n = training.train_targets or 0
    counts = training_counts(loaded.log_prior, n) if n > 0 else None
    if counts is None:
        raise UserError(f"{loaded.model_dir}: its config.json does not say how much text it "
                        "was trained on, so another file's unknown characters cannot be priced")
    corpus.train_positions = n
    corpus.train_unknown = training.unknown_tokens or 0
    corpus.train_word_counts = counts
    chars: Counter = Counter()
    for word, c in zip(loaded.vectors.words, counts):
        if c > 0 and word != EOS:
            for ch in word:
                chars[ch] += int(c)
    corpus.char_counts = chars
