"""Token text helpers: tokens joined as Chinese is written, prompts mapped to ids,
punctuation, and line hashes (the --novel-only filter)."""

from __future__ import annotations

from .vectors import EOS


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


def line_hash(tokens: list[str]) -> int:
    """A 64-bit hash of a line's tokens, to tell generated lines from training lines."""
    import hashlib

    digest = hashlib.blake2b(" ".join(tokens).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")
