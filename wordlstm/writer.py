"""Text in, text out: prompts are segmented like the training corpus, ids become text.

`Writer` loads a model dir once and offers the generation modes: continuing a prompt,
whole lines (poems, names) with the "only new lines" filter, and acrostic poems (藏头诗).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import UserError
from .generate import (CLAUSE_ENDS, Generator, StepModel, acrostic_plan, is_punctuation,
                       line_hash, make_decoder, prompt_ids, render)
from .modeldir import (check_weights, default_model_dir, load_inference, load_log_prior,
                       load_vectors_checked, read_config, segmenter_config, training_line_hashes)
from .segment import Segmenter
from .textio import normalize_line
from .vectors import EOS


class Writer:
    """A loaded model dir and everything needed to turn prompts into text."""

    def __init__(self, model_dir: Path, config: dict, vectors, weights, note=lambda msg: None,
                 log_prior=None, decode: str | None = None):
        self.model_dir, self.config, self.vectors = model_dir, config, vectors
        self.note = note
        self.segment = Segmenter(segmenter_config(model_dir, config))
        self.eos = vectors.index.get(EOS)
        self.gen = Generator(StepModel(weights), vectors.words,
                             make_decoder(config, vectors, log_prior, decode),
                             config["model"]["window"],
                             self.eos)
        self.unit = config["segmenter"].get("unit", "word")
        self.unknown: list[str] = []
        self.split: list[str] = []
        self.last_words: list[int] = []

    @classmethod
    def load(cls, model_dir=None, note=lambda msg: None, decode: str | None = None) -> "Writer":
        """`decode` overrides the model's decoding ("cosine" or "prior"), for comparisons."""
        model_dir = Path(model_dir) if model_dir else default_model_dir()
        config = read_config(model_dir)
        vectors = load_vectors_checked(model_dir, config)
        weights = load_inference(model_dir, config)
        check_weights(model_dir, config, weights)
        prior = None if decode == "cosine" else load_log_prior(model_dir, config)
        return cls(model_dir, config, vectors, weights, note, prior, decode)

    def words(self, ids) -> list[str]:
        return [self.vectors.words[i] for i in ids]

    def text(self, ids) -> str:
        return render(self.words(ids), self.unit)

    def encode(self, text: str) -> list[int]:
        """Segment text like the corpus and map it to ids, noting words the model lacks."""
        tokens = self.segment(normalize_line(text)) if text.strip() else []
        ids, unknown, split = prompt_ids(tokens, self.vectors.index)
        if split:
            self.note("note: not in the vocabulary, used their characters instead: " + " ".join(split))
        if unknown:
            self.note("note: not in the vocabulary, skipped: " + " ".join(unknown))
        self.unknown += unknown
        self.split += split
        if tokens and not ids:
            raise UserError(f"no word of {text!r} is in the model's vocabulary "
                            f"({len(self.vectors):,} words); try words from the training text")
        return ids

    def continue_text(self, prompt: str, length: int, cfg, seed=None, samples: int = 1,
                      prefix: str = "", until: str | None = None, on_word=None) -> list[str]:
        """`samples` continuations of `prompt` (without the prompt itself)."""
        ids = self.encode(prefix) + self.encode(prompt)
        stop = None
        if until:
            def stop(out):
                return self.text(out[-8:]).endswith(until)
        on_step = None
        if on_word is not None:
            def on_step(step, nxt):
                on_word(self.text(nxt[:1]))
        outs = self.gen.generate([ids] * samples, length, cfg, seed=seed, on_step=on_step, stop=stop)
        self.last_words = [len(o) for o in outs]
        return [self.text(o) for o in outs]

    def _require_lines(self, what: str):
        if self.eos is None:
            raise UserError(f"{what} needs a model whose vectors have the </s> token")

    def lines(self, prompt: str, n: int, cfg, seed=None, prefix: str = "", max_words: int = 100,
              novel_only: bool = False, max_rounds: int = 20) -> tuple[list[str], int]:
        """N distinct whole lines starting with `prompt` (made as batches), optionally only
        lines that are not in the training file; returns (lines, how many were dropped as
        training lines)."""
        self._require_lines("--lines")
        known = training_line_hashes(self.model_dir) if novel_only else None
        start = self.encode(prefix)
        head = self.encode(prompt)
        head_tokens = self.segment(normalize_line(prompt)) if prompt.strip() else []
        rng = np.random.default_rng(seed)
        kept, dropped, self.last_words = [], 0, []
        for _ in range(max_rounds):
            outs = self.gen.generate([start + [self.eos] + head] * (n - len(kept)), max_words, cfg,
                                     seed=int(rng.integers(2**31)),
                                     stop=lambda out: out[-1] == self.eos)
            for out in outs:
                self.last_words.append(len(out))
                body = out[:-1] if out and out[-1] == self.eos else out
                tokens = head_tokens + self.words(body)
                if known is not None:
                    h = np.uint64(line_hash(tokens))
                    i = np.searchsorted(known, h)
                    if i < len(known) and known[i] == h:
                        dropped += 1
                        continue
                line = prompt + self.text(body)
                if line not in kept and len(kept) < n:
                    kept.append(line)
            if len(kept) >= n:
                break
        if len(kept) < n:
            self.note(f"note: only {len(kept)} of {n} lines were new after {max_rounds} rounds")
        return kept, dropped

    def acrostic(self, heads: str, cfg, seed=None, prefix: str = "",
                 line_length: int | None = None) -> list[str]:
        """藏头诗: one line per character of `heads`, each starting with it."""
        head_ids = []
        for ch in heads.strip():
            # A character model has the character itself; a word model heads the line with
            # any word that begins with it.
            starts = [i for i, w in enumerate(self.vectors.words)
                      if w.startswith(ch) and not is_punctuation(w)]
            if not starts:
                raise UserError(f"{ch!r} is not in the model's vocabulary; it cannot head a line")
            head_ids.append(np.array(starts))
        if not head_ids:
            raise UserError("--acrostic needs at least one character")
        info = self.config.get("lines") or {}
        length = line_length or info.get("clause_length") or 7
        if length < 2:
            raise UserError("--line-length must be at least 2")
        punct_words = [p for p in info.get("clause_ends") or [] if p in CLAUSE_ENDS] or ["，", "。"]
        punct = np.array([self.vectors.index[p] for p in punct_words if p in self.vectors.index])
        body = np.array([i for i, w in enumerate(self.vectors.words)
                         if w != EOS and not is_punctuation(w)])
        if len(punct) == 0 or len(body) == 0:
            raise UserError("this model's vocabulary has no punctuation for line ends")
        constrain, total = acrostic_plan(head_ids, length, body, punct)
        start = self.encode(prefix) + ([self.eos] if self.eos is not None else [])
        out = self.gen.generate([start], total, cfg, seed=seed, constrain=constrain)[0]
        self.last_words = [len(out)]
        per_line = length + 1
        return [self.text(out[i:i + per_line]) for i in range(0, len(out), per_line)]
