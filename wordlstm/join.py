"""Joining segmented files into one training corpus: a base model's pretraining text.

A base model pretrains on many novels, one of which may be a novel whose held-out tail must
stay unseen (红楼梦: every figure of the default model is measured on it). `--train-part`
files contribute only the lines every training step of that file reads (split.training_lines
with the same HoldOut), so the tail is never in the joined corpus, and so never read by
word2vec or the network trained on it. That is checked, not assumed: after writing, every
long line of the output is looked up among the tails' lines, and a match (a tail paragraph
that another input quotes whole, or the same novel joined twice) is an error.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING

from .errors import UserError
from .split import (
    HoldOut,
    held_out_keys,
    held_out_lines,
    line_key,
    line_token_counts,
    training_lines,
)

if TYPE_CHECKING:
    from .segment import SegmenterConfig


def tail_lines(path: str, holdout: HoldOut) -> set[str]:
    """The held-out lines of a segmented file (as joined text), long enough to be checked."""
    return held_out_keys(path, held_out_lines(line_token_counts(path), holdout))


def join_segmented(inputs: list[str], train_parts: list[str], output: str,
                   holdout: HoldOut | None = None) -> dict:
    """`wordlstm join`: write `train_parts` (training lines only) then `inputs` (whole) into
    `output`, atomically, with a sidecar naming the sources; returns that summary.

    The segmenter settings of all files must agree on unit and engine (a corpus of words and
    characters mixed would train nonsense); `to_simplified` is recorded if any file used it.
    """
    from .segment import sidecar_path
    from .textio import write_json

    holdout = holdout or HoldOut()
    sources = list(train_parts) + list(inputs)
    _check_sources(sources, output)
    seg = _joined_segmenter(sources)
    tails = {p: tail_lines(p, holdout) for p in train_parts}
    files = _write_joined(sources, output, tails, holdout)
    leaked = _leaked_lines(output, tails)
    if leaked:
        os.unlink(output)
        raise UserError(f"{leaked} held-out line(s) of the --train-part files occur in the "
                        "joined text (quoted whole by another input, or a novel given twice): "
                        f"nothing written to {output}")
    summary = {"files": files, "lines": sum(f["lines"] for f in files),
               "tokens": sum(f["tokens"] for f in files),
               "segmenter": seg.to_json(), "holdout": holdout.to_json(),
               "held_out_lines_checked": sum(len(t) for t in tails.values()),
               "held_out_lines_found": 0}
    write_json(sidecar_path(output), summary, indent=1)
    return summary


def _check_sources(sources: list[str], output: str) -> None:
    """Refuse before writing anything: no sources, a source twice, an output (or its sidecar)
    that cannot be written or that is one of the sources, a source that is not segmented."""
    from .segment import sidecar_path
    from .textio import check_not_input, check_segmented, check_writable

    if not sources:
        raise UserError("nothing to join: give segmented files (and/or --train-part files)")
    if len(set(map(os.path.realpath, sources))) < len(sources):
        raise UserError("a file is given twice; each source once")
    check_writable(output)
    check_writable(sidecar_path(output))
    for path in sources:
        check_segmented(path)
    check_not_input(output, sources)
    check_not_input(sidecar_path(output), sources)


def _joined_segmenter(sources: list[str]) -> SegmenterConfig:
    """The segmenter settings the joined corpus records: those of the first source, which
    every source must share (unit, user dictionary), with `to_simplified` if any used it."""
    from .segment import recorded_config

    configs = [recorded_config(p) for p in sources]
    for p, c in zip(sources, configs):
        if (c.unit, c.user_dict) != (configs[0].unit, configs[0].user_dict):
            raise UserError(f"{p}: segmented with --unit {c.unit}"
                            + (" and a user dictionary" if c.user_dict else "")
                            + f", unlike {sources[0]}; segment every file the same way")
    return replace(configs[0], to_simplified=any(c.to_simplified for c in configs))


def _write_joined(sources: list[str], output: str, tails: dict[str, set[str]],
                  holdout: HoldOut) -> list[dict]:
    """Write every source's lines into `output` (atomically), a --train-part file (a key of
    `tails`) only its training lines; returns a record per source of what it gave."""
    from .textio import atomic_output
    from .vectors import SegmentedCorpus

    files = []
    with atomic_output(output) as f:
        for path in sources:
            select = training_lines(path, holdout) if path in tails else None
            n_lines = n_tokens = 0
            for toks in SegmentedCorpus(path, eos=False, select=select):
                f.write(" ".join(toks) + "\n")
                n_lines += 1
                n_tokens += len(toks)
            files.append({"path": str(path), "lines": n_lines, "tokens": n_tokens,
                          "train_part": path in tails})
    return files


def _leaked_lines(path: str, tails: dict[str, set[str]]) -> int:
    """How many lines of the joined file are a held-out line of a --train-part file."""
    held = set().union(*tails.values()) if tails else set()
    if not held:
        return 0
    n = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line_key(line.split()) in held:
                n += 1
    return n

