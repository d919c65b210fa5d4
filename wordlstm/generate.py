"""Generation: predicted vector -> cosine nearest neighbour, word by word, in numpy.

The LSTM runs as a plain numpy step function on weights taken from the Keras model, so
generation needs no deep-learning framework at all, gives identical results whichever backend
trained the model, and avoids `model.predict`'s per-call overhead (~63 ms a word on CPU).

Two context modes: `window` re-reads the last `window` words from a zero state for every new
word, exactly as the model was trained; `carry` keeps (h, c) from word to word, one step a
word, and so sees more context than it was trained with. Decoding scores every vocabulary
word by cosine with one matrix product against pre-normalised vectors, then picks greedily
or samples (temperature over the top-k / top-p candidates), with an n-gram block and a
repetition penalty against loops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UserError
from .vectors import EOS


def _sigmoid(x):
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # overflow-free, same values as keras' sigmoid


class StepModel:
    """The trained network as numpy: `step(ids, state) -> (vectors, state)` for a batch."""

    def __init__(self, weights):
        self.embedding = np.ascontiguousarray(weights.embedding, dtype=np.float32)
        self.layers = [(np.asarray(k, np.float32), np.asarray(r, np.float32),
                        np.asarray(b, np.float32)) for k, r, b in weights.lstm]
        self.dense_kernel = np.asarray(weights.dense_kernel, np.float32)
        self.dense_bias = np.asarray(weights.dense_bias, np.float32)
        self.units = [r.shape[0] for _, r, _ in self.layers]

    def zero_state(self, batch: int):
        return [(np.zeros((batch, u), np.float32), np.zeros((batch, u), np.float32))
                for u in self.units]

    def step(self, ids: np.ndarray, state):
        """One time step for a batch of word ids (keras gate order: i, f, c, o)."""
        x = self.embedding[ids]
        new_state = []
        for (kernel, recurrent, bias), (h, c) in zip(self.layers, state):
            z = x @ kernel + h @ recurrent + bias
            i, f, g, o = np.split(z, 4, axis=1)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
            new_state.append((h, c))
            x = h
        return x @ self.dense_kernel + self.dense_bias, new_state

    def run(self, windows: np.ndarray):
        """Predict from whole windows [B, T] starting at a zero state (what training saw)."""
        state = self.zero_state(len(windows))
        y = None
        for t in range(windows.shape[1]):
            y, state = self.step(windows[:, t], state)
        return y, state


@dataclass
class SamplingConfig:
    """How the next word is chosen from the cosine scores."""

    greedy: bool = False
    temperature: float = 0.03  # cosine scores are close together: see bench/RESULTS.md
    top_k: int = 10
    top_p: float = 1.0
    no_repeat_ngram: int = 3
    repetition_penalty: float = 0.1
    penalty_window: int = 20
    context: str = "carry"  # measured: same top-1 as re-reading windows, ~5x faster


class Decoder:
    """Cosine scores of predicted vectors against the vocabulary: plain nearest neighbour."""

    cosine = True

    def __init__(self, unit_vectors: np.ndarray):
        self.unit_t = np.ascontiguousarray(unit_vectors.T)  # [dim, vocab]: one GEMM per step

    def cosines(self, y: np.ndarray) -> np.ndarray:
        y = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-8)
        return y.astype(np.float32) @ self.unit_t

    scores = cosines


SOFTMAX_SCALE = 0.03  # = the default temperature: --temperature 0.03 samples the model's own p


class PriorDecoder(Decoder):
    """Cosine evidence combined with how often each word occurs (Bayes' rule):
    log p(w | context) = cos(prediction, w) / tau + log p(w) + const.

    Plain nearest neighbour treats 的 and a name seen twice as equally likely a priori, so it
    almost never predicts the frequent words that make up most of the text; adding the log
    frequency fixes that (bench/RESULTS.md: several times the top-1 accuracy). `tau` is fitted
    on training windows after training (`fit_tau`). Scores are log-probabilities times
    SOFTMAX_SCALE, the scale the sampling settings are tuned for.
    """

    def __init__(self, unit_vectors: np.ndarray, log_prior: np.ndarray, tau: float):
        super().__init__(unit_vectors)
        self.log_prior = np.asarray(log_prior, np.float32)
        self.tau = float(tau)

    def scores(self, y: np.ndarray) -> np.ndarray:
        return SOFTMAX_SCALE * (self.cosines(y) / self.tau + self.log_prior)


def log_prior(target_ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """log p(w) of each word among the training targets, add-one smoothed."""
    counts = np.bincount(target_ids[target_ids < vocab_size], minlength=vocab_size)
    counts = counts.astype(np.float64) + 1.0
    return np.log(counts / counts.sum()).astype(np.float32)


def fit_tau(cosines: np.ndarray, truth: np.ndarray, log_prior_: np.ndarray,
            bounds=(0.005, 1.0), steps: int = 14, rows: int = 2048) -> float:
    """The tau that maximises the likelihood of the true words under
    softmax(cos / tau + log p(w)): golden-section search on log tau (the likelihood is
    unimodal in it), in row chunks so memory stays at `rows` x vocabulary."""
    idx = np.arange(len(truth))

    def nll(log_tau: float) -> float:
        total = 0.0
        for i in range(0, len(truth), rows):
            z = cosines[i:i + rows] * np.float32(np.exp(-log_tau)) + log_prior_
            zmax = z.max(axis=1)
            lse = np.log(np.exp(z - zmax[:, None]).sum(axis=1)) + zmax
            total += float((lse - z[idx[i:i + rows] - i, truth[i:i + rows]]).sum())
        return total / max(len(truth), 1)

    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(steps):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(b)
    return float(np.exp(a if fa < fb else b))


class SoftmaxDecoder:
    """For the softmax head: log-probabilities times SOFTMAX_SCALE, on the cosine scale that
    the sampling settings (temperature, repetition penalty) are tuned for."""

    cosine = False

    def scores(self, logits: np.ndarray) -> np.ndarray:
        z = logits - logits.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return (SOFTMAX_SCALE * logp).astype(np.float32)


def _banned_by_ngram(history: list[int], n: int) -> set[int]:
    """Words that would complete an n-gram already present in `history`."""
    if n <= 0 or len(history) < n - 1:
        return set()
    if n == 1:
        return set(history)
    prefix = tuple(history[len(history) - n + 1:])
    banned = set()
    for i in range(len(history) - n + 1):
        if tuple(history[i:i + n - 1]) == prefix:
            banned.add(history[i + n - 1])
    return banned


def choose(scores: np.ndarray, history: list[int], cfg: SamplingConfig, rng, protect=(),
           allowed: np.ndarray | None = None) -> int:
    """Pick one word id from one row of cosine scores, only among `allowed` ids if given.

    The repetition rules give way when they would rule out every allowed word. Protected
    words (punctuation, </s>) are exempt from them, except that no token follows itself.
    """
    s = scores.copy()
    if allowed is not None:
        s = np.full_like(scores, -np.inf)
        s[allowed] = scores[allowed]
    fallback = s.copy()
    if cfg.repetition_penalty:
        recent = [w for w in history[-cfg.penalty_window:] if w not in protect]
        if recent:
            s[np.array(recent)] -= cfg.repetition_penalty
    banned = [w for w in _banned_by_ngram(history, cfg.no_repeat_ngram) if w not in protect]
    if cfg.no_repeat_ngram and history:
        banned.append(history[-1])  # never the same token twice in a row, punctuation included
    if banned:
        s[np.array(banned)] = -np.inf
    if not np.isfinite(s).any():
        s = fallback
    if cfg.greedy:
        return int(np.argmax(s))
    finite = int(np.isfinite(s).sum())
    k = min(cfg.top_k if cfg.top_k > 0 else finite, finite)
    top = np.argpartition(-s, k - 1)[:k]
    top = top[np.argsort(-s[top])]
    logits = (s[top] - s[top[0]]) / max(cfg.temperature, 1e-6)
    p = np.exp(logits)
    p /= p.sum()
    if cfg.top_p < 1.0:
        keep = int(np.searchsorted(np.cumsum(p), cfg.top_p)) + 1
        top, p = top[:keep], p[:keep] / p[:keep].sum()
    return int(top[rng.choice(len(top), p=p)])


class Generator:
    """Continue prompts word by word with a StepModel and a Decoder."""

    def __init__(self, step_model: StepModel, words: list[str], decoder, window: int,
                 eos_id: int | None = None):
        self.model = step_model
        self.words = words
        self.window = window
        self.eos_id = eos_id
        self.unk = len(words)
        self.decoder = decoder
        self.pad = eos_id if eos_id is not None else self.unk
        # Exempt from the repetition rules: paragraph ends and punctuation, which text must
        # repeat (a poem's ，and 。), unlike words.
        self.protect = {i for i, w in enumerate(words) if is_punctuation(w)}
        if eos_id is not None:
            self.protect.add(eos_id)

    def generate(self, prompts: list[list[int]], length: int, cfg: SamplingConfig,
                 seed: int | None = None, on_step=None, stop=None, constrain=None) -> list[list[int]]:
        """Generate up to `length` ids after each prompt, all prompts as one batch.

        `on_step(i, ids)` sees each step's choices; `stop(out)` ends a stream early;
        `constrain(b, out)` may return the ids allowed next in stream b (None: any).
        """
        if cfg.context not in ("window", "carry"):
            raise UserError(f"unknown context mode {cfg.context!r}; choose window or carry")
        rng = np.random.default_rng(seed)
        batch = len(prompts)
        # Pad short prompts on the left with paragraph ends: the model then reads the prompt
        # as the start of a paragraph, which is what it has seen in training.
        ctx = [[self.pad] * max(0, self.window - len(p)) + list(p) for p in prompts]
        history = [list(p) for p in prompts]
        out: list[list[int]] = [[] for _ in range(batch)]
        done = [False] * batch
        protect = self.protect
        state = None
        if cfg.context == "carry":
            seq = np.array([c[-self.window:] for c in ctx], dtype=np.int64)
            y, state = self.model.run(seq)
        for step in range(length):
            if cfg.context == "window":
                seq = np.array([c[-self.window:] for c in ctx], dtype=np.int64)
                y, _ = self.model.run(seq)
            scores = self.decoder.scores(y)
            nxt = np.empty(batch, dtype=np.int64)
            for b in range(batch):
                allowed = constrain(b, out[b]) if constrain is not None else None
                nxt[b] = choose(scores[b], history[b], cfg, rng, protect, allowed)
                if not done[b]:
                    out[b].append(int(nxt[b]))
                    history[b].append(int(nxt[b]))
                    ctx[b].append(int(nxt[b]))
                    if stop is not None and stop(out[b]):
                        done[b] = True
            if on_step is not None:
                on_step(step, nxt)
            if all(done):
                break
            if cfg.context == "carry":
                y, state = self.model.step(nxt, state)
        return out


def make_decoder(config: dict, vectors, log_prior_: np.ndarray | None = None,
                 kind: str | None = None):
    """How a model's outputs become scores over its vocabulary, from its config.json.

    `kind` overrides the decoding the model was trained with ("cosine" or "prior"), to
    compare them; "prior" needs the model's `log_prior_` (prior.npy).
    """
    if config["model"].get("head", "vector") == "softmax":
        return SoftmaxDecoder()
    unit = vectors.target_space(config["model"].get("target", "raw"))
    decoding = dict(config.get("decoder") or {"kind": "cosine"})
    kind = kind or decoding["kind"]
    if kind == "cosine":
        return Decoder(unit)
    if kind != "prior" or log_prior_ is None or "tau" not in decoding:
        raise UserError(f"this model has no {kind!r} decoding (it was trained with "
                        f"{decoding['kind']!r})")
    return PriorDecoder(unit, log_prior_, decoding["tau"])


def render(tokens: list[str], unit: str = "word") -> str:
    """Join tokens as Chinese is written: no spaces, except between two Latin words.

    Character-unit models (`segment --unit char`) join everything directly.
    """
    parts: list[str] = []
    for tok in tokens:
        if tok == EOS:
            parts.append("\n")
            continue
        if unit == "word" and parts and parts[-1] and tok and parts[-1][-1].isascii() \
                and parts[-1][-1].isalnum() and tok[0].isascii() and tok[0].isalnum():
            parts.append(" ")
        parts.append(tok)
    return "".join(parts)


def prompt_ids(tokens: list[str], index: dict) -> tuple[list[int], list[str], list[str]]:
    """Map prompt tokens to ids; unknown words fall back to their known characters.

    Returns (ids, unknown words, words that were replaced by some of their characters).
    """
    ids, unknown, split = [], [], []
    for tok in tokens:
        if tok in index:
            ids.append(index[tok])
            continue
        chars = [index[c] for c in tok if c in index]
        if chars and len(tok) > 1:
            ids.extend(chars)
            split.append(tok)
        else:
            unknown.append(tok)
    return ids, unknown, split


CLAUSE_ENDS = set("，。？！；：、,.?!;:")


def is_punctuation(token: str) -> bool:
    import unicodedata

    return bool(token) and all(unicodedata.category(c).startswith("P") for c in token)


def acrostic_plan(heads: list[np.ndarray], line_length: int, body: np.ndarray, punct: np.ndarray):
    """A `constrain` function for 藏头诗: each line = a head word, body words, punctuation.

    `heads[i]` holds the ids that may start line i (the character, or words beginning with it).
    """
    per_line = line_length + 1

    def constrain(b, out):
        line, pos = divmod(len(out), per_line)
        if line >= len(heads):
            return None
        if pos == 0:
            return heads[line]
        return body if pos < line_length else punct

    return constrain, per_line * len(heads)


def line_hash(tokens: list[str]) -> int:
    """A 64-bit hash of a line's tokens, to tell generated lines from training lines."""
    import hashlib

    digest = hashlib.blake2b(" ".join(tokens).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")
