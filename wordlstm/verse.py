"""Verse constraints: where a regular poem's characters and marks may come, and rhymes.

`verse_plan` makes a `constrain(b, out)` function (the ids allowed next in stream b) for
clauses of a fixed length closed by ，and 。 in turn, an acrostic's heads included;
`rhyme_preference` a `prefer(b, out)` function (the ids a rhyming clause end would take),
which generate.Streams applies only where the model finds a rhyme likely enough
(sampling.preferred).
"""

from __future__ import annotations

import numpy as np


def verse_plan(clause_length: int, clauses: int, body: np.ndarray, ends: list[int],
               eos: int | None, offset: int = 0, heads: list[np.ndarray] | None = None):
    """A `constrain` function for regular verse: `clauses` clauses of `clause_length`
    characters, each closed by `ends` in turn (，then 。), then the line end.

    `offset` tokens of the poem are already written (a first line given as the prompt);
    `heads[i]`, if given, holds the ids that may start clause i (an acrostic, 藏头诗).
    """
    per_clause = clause_length + 1
    total = per_clause * clauses

    def constrain(b, out):
        pos = offset + len(out)
        if pos >= total:
            return np.array([eos]) if eos is not None else None
        k, j = divmod(pos, per_clause)
        if j == clause_length:
            return np.array([ends[k % len(ends)]])
        if j == 0 and heads is not None and k < len(heads):
            return heads[k]
        return body

    return constrain, total - offset


def rhyme_preference(clause_length: int, classes: dict, prompt: list[int], offset: int = 0):
    """A `prefer` function: the last character of every even clause after the second one
    rhymes with the second clause's (ids grouped by rhyme class in `classes`: id -> ids)."""
    per_clause = clause_length + 1
    first = clause_length + per_clause - 1  # position of the second clause's last character

    def prefer(b, out):
        pos = offset + len(out)
        k, j = divmod(pos, per_clause)
        if j != clause_length - 1 or k % 2 == 0 or k < 3:
            return None
        poem = prompt + out
        return classes.get(poem[first]) if first < len(poem) else None

    return prefer
