"""Evaluation: how often the decoded nearest word is the true next word, on held-out text.

Runs the numpy step model over the held-out windows (the same ones training validated on,
or every window of another segmented file), decodes by cosine against the model's target
space, and reports top-1/5/10 accuracy, mean cosine to the true vector, and the same for
always guessing the most frequent training word, so a number is never read without its floor.
"""

from __future__ import annotations

import numpy as np

from .dataset import corpus_ids, make_windows, window_starts


def topk_hits(scores: np.ndarray, truth: np.ndarray, ks=(1, 5, 10)) -> dict:
    """Count, for each k, how often `truth` is among the k best-scored columns."""
    true_scores = scores[np.arange(len(truth)), truth]
    rank = (scores > true_scores[:, None]).sum(axis=1)  # 0 = best
    return {k: int((rank < k).sum()) for k in ks}


def evaluate(step_model, decoder, ids: np.ndarray, starts: np.ndarray, window: int,
             baseline_word: int, batch: int = 512) -> dict:
    """Top-k accuracy (and mean cosine, for a vector head) over the windows at `starts`.

    `decoder` scores outputs against the vocabulary exactly as generation does
    (generate.make_decoder).
    """
    hits = {1: 0, 5: 0, 10: 0}
    cos_sum = 0.0
    for i in range(0, len(starts), batch):
        x, t = make_windows(ids, starts[i:i + batch], window)
        y = step_model.run(x)[0]
        for k, v in topk_hits(decoder.scores(y), t).items():
            hits[k] += v
        if decoder.cosine:
            cos_sum += float(decoder.cosines(y)[np.arange(len(t)), t].sum())
    n = max(len(starts), 1)
    return {"windows": int(len(starts)), "top1": hits[1] / n, "top5": hits[5] / n,
            "top10": hits[10] / n, "mean_cosine": cos_sum / n if decoder.cosine else None,
            "baseline_top1": float((ids[starts + window] == baseline_word).mean())
            if len(starts) else 0.0}


def held_out(segmented: str, index: dict, window: int, val_fraction: float, whole: bool,
             lines: bool = False):
    """(ids, window starts, most frequent training word) for the model's split or a whole file."""
    ids, _, targets = corpus_ids(segmented, index, lines_window=window if lines else 0)
    split = window_starts(ids, window, len(index), 0.0 if whole else val_fraction, targets)
    starts = split.train if whole else split.val
    train_targets = ids[split.train + window] if len(split.train) else ids
    counts = np.bincount(train_targets[train_targets < len(index)], minlength=len(index))
    return ids, starts, int(np.argmax(counts))


def evaluate_carried(step_model, decoder, ids: np.ndarray, start: int, end: int, window: int,
                     baseline_word: int, warmup: int | None = None) -> dict:
    """Top-k accuracy when the LSTM state is carried along the text instead of re-read per window.

    This is what `--context carry` does at generation time; comparing it with `evaluate`
    on the same positions measures what carrying state past the trained window costs.
    """
    warmup = window if warmup is None else warmup
    state = step_model.zero_state(1)
    hits = {1: 0, 5: 0, 10: 0}
    n = base = 0
    unk = step_model.embedding.shape[0] - 1
    for pos in range(start, end - 1):
        y, state = step_model.step(ids[pos:pos + 1], state)
        target = ids[pos + 1]
        if pos - start + 1 < warmup or target == unk:
            continue
        for k, v in topk_hits(decoder.scores(y), np.array([target])).items():
            hits[k] += v
        base += int(target == baseline_word)
        n += 1
    n = max(n, 1)
    return {"windows": n, "top1": hits[1] / n, "top5": hits[5] / n, "top10": hits[10] / n,
            "baseline_top1": base / n}
