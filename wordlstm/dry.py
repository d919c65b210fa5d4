"""DRY ("don't repeat yourself", the loop rule of text-generation-webui and llama.cpp): one
stream's tokens, indexed so that the penalty on words that would extend a repeat costs
constant work a word however long the text grows."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sampling import SamplingConfig


class History:
    """One stream's tokens, with an index of where each token occurred, so the DRY rule looks
    only at earlier occurrences of the last token within `dry_range` (constant work a word)."""

    def __init__(self, tokens, breakers=frozenset()):
        self.tokens: list[int] = []
        self.where: dict[int, list[int]] = {}
        self.breakers = breakers
        for t in tokens:
            self.append(t)

    def append(self, token: int) -> None:
        self.where.setdefault(token, []).append(len(self.tokens))
        self.tokens.append(token)

    def dry(self, cfg: SamplingConfig, max_match: int = 64) -> dict[int, float]:
        """DRY ("don't repeat yourself"): for each word that would extend a token sequence
        already seen, a penalty growing with the length of that repeat. Unlike a penalty on
        recent words, it leaves a word free unless it continues a repeat, so it cannot tip
        probability onto punctuation; punctuation is penalised by the same rule."""
        h, n = self.tokens, len(self.tokens)
        if not cfg.dry_multiplier or n < 2:
            return {}
        last = h[-1]
        if last in self.breakers:
            return {}
        penalties: dict[int, float] = {}
        positions = self.where.get(last, ())
        lo = n - cfg.dry_range
        for j in reversed(positions):
            if j < lo:
                break
            if j >= n - 1:
                continue
            length = 1
            while (length < max_match and j - length >= 0 and j - length > lo
                   and h[j - length] == h[n - 1 - length] and h[j - length] not in self.breakers):
                length += 1
            if length >= cfg.dry_allowed:
                nxt = h[j + 1]
                p = cfg.dry_multiplier * cfg.dry_base ** (length - cfg.dry_allowed)
                if p > penalties.get(nxt, 0.0):
                    penalties[nxt] = p
        return penalties
