"""Does it write like the novel? Continuations of held-out paragraph openings, side by side
with the real continuations and a character 5-gram Markov chain, measured and printed.

    python bench/writing.py SEGMENTED --model DIR [--model DIR2 ...] [--samples 50]
        [--chars 600] [--prompt-chars 12] [--seed 1] [--show 3]
        [--sampling NAME:temperature=1.0,top_p=0.95,dry_multiplier=0.8 ...] [--json OUT]

Prompts are the first `--prompt-chars` characters of held-out paragraphs longer than 200
characters (the part of SEGMENTED that the models' training held out, split.held_out_lines);
each system writes `--chars` characters after it. The real continuation is what follows in
the novel (paragraph breaks included). The Markov chain is fitted on the training part only.
Each `--sampling` (default: the models' defaults) is a row per model, to choose defaults.

Columns: paragraph breaks per 1,000 characters, punctuation share (of non-break characters),
repeated character 4-grams within a sample, distinct character bigrams, quote faults (ASCII or
unbalanced) per 100 characters, share of character 12-grams found verbatim in the training
text, and bits/char under a Witten-Bell character 5-gram of the training text (real text sets
the level: far lower means looping or copying, far higher gibberish).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from textstats import CharNgram, ngram_set, text_stats  # noqa: E402

from wordlstm.sampling import SamplingConfig  # noqa: E402
from wordlstm.split import HoldOut, split_paragraphs  # noqa: E402
from wordlstm.tokens import render  # noqa: E402
from wordlstm.writer import Writer  # noqa: E402

COLUMNS = ["breaks_per_1000", "punct_share", "repeated_4grams", "distinct_bigrams",
           "quote_faults_per_100", "copied_12grams", "ref_bits_per_char"]
HEAD = ["breaks/1k", "punct", "rep 4-gr", "dist 2-gr", "quotes/100", "copied 12", "ref b/c"]


def parse_sampling(spec: str) -> tuple[str, dict]:
    name, _, body = spec.partition(":")
    settings = {}
    for item in filter(None, body.split(",")):
        key, _, value = item.partition("=")
        kind = type(getattr(SamplingConfig(), key.strip()))
        # bool("false") is True: booleans are read as words
        settings[key.strip()] = (value.strip().lower() in ("1", "true", "yes") if kind is bool
                                 else kind(value))
    return name, settings


def split_text(segmented: str, holdout: HoldOut):
    """(training text, held-out paragraphs), each paragraph as rendered text."""
    train, held = split_paragraphs(segmented, holdout)
    return "\n".join(map(render, train)), [render(t) for t in held]


def choose_prompts(held: list[str], n: int, prompt_chars: int, chars: int, min_len: int = 200):
    """(prompt, real continuation) from held-out paragraphs longer than `min_len`, evenly
    spread over the held-out part, each with `chars` characters of real text after it."""
    tail = "\n".join(held)
    starts, pos = [], 0
    for para in held:
        if len(para) > min_len and pos + prompt_chars + chars <= len(tail):
            starts.append(pos)
        pos += len(para) + 1
    if len(starts) > n:
        starts = [starts[round(i * (len(starts) - 1) / (n - 1))] for i in range(n)] if n > 1 \
            else starts[:1]
    return [(tail[s:s + prompt_chars], tail[s + prompt_chars:s + prompt_chars + chars])
            for s in starts]


def continuations(writer: Writer, prompts: list[str], chars: int, cfg: SamplingConfig,
                  seed: int) -> list[str]:
    """`chars` characters after each prompt, all prompts as one batch."""
    ids = [writer.encode(p) for p in prompts]
    words = writer.vectors.words
    lengths = [1 if w == "</s>" else len(w) for w in words] + [1]
    made: dict[int, int] = {}

    def stop(out):  # called once for every word appended to a stream
        made[id(out)] = made.get(id(out), 0) + lengths[out[-1]]
        return made[id(out)] >= chars

    outs = writer.generate(ids, chars * 2, cfg, seed=seed, stop=stop)
    return [writer.text(o)[:chars] for o in outs]


def table(rows: list[tuple[str, dict]]) -> str:
    lines = ["| system | " + " | ".join(HEAD) + " |", "|" + " --- |" * (len(HEAD) + 1)]
    for name, s in rows:
        lines.append(f"| {name} | " + " | ".join(
            f"{s[c]:.3f}" if c not in ("breaks_per_1000", "quote_faults_per_100",
                                       "ref_bits_per_char") else f"{s[c]:.2f}"
            for c in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("segmented")
    ap.add_argument("--model", action="append", default=[], help="model dir (repeatable)")
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--chars", type=int, default=600)
    ap.add_argument("--prompt-chars", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--show", type=int, default=3, help="samples printed per system")
    ap.add_argument("--sampling", action="append", default=[],
                    help="NAME:key=value,... (SamplingConfig fields); repeatable")
    ap.add_argument("--json", default=None, help="write every figure and sample here")
    args = ap.parse_args(argv)

    writers = [(Path(m).name, Writer.load(m)) for m in args.model]
    holdout = writers[0][1].config.training.holdout if writers else HoldOut()
    t0 = time.perf_counter()
    train_text, held = split_text(args.segmented, holdout)
    pairs = choose_prompts(held, args.samples, args.prompt_chars, args.chars)
    prompts = [p for p, _ in pairs]
    print(f"{len(pairs)} held-out openings of {args.prompt_chars} characters, {args.chars} "
          f"characters each; training text {len(train_text):,} characters", file=sys.stderr)
    reference = CharNgram(train_text, 5)
    grams = ngram_set(train_text)
    print(f"reference 5-gram built in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    systems: list[tuple[str, list[str]]] = [("real continuation", [r for _, r in pairs])]
    rng = random.Random(args.seed)
    systems.append(("char 5-gram Markov chain",
                    [reference.sample(p, args.chars, rng) for p in prompts]))
    samplings = [parse_sampling(s) for s in args.sampling] or [("default", {})]
    for name, w in writers:
        for sname, settings in samplings:
            cfg = replace(SamplingConfig(), **settings)
            t1 = time.perf_counter()
            texts = continuations(w, prompts, args.chars, cfg, args.seed)
            label = name if sname == "default" and len(samplings) == 1 else f"{name} [{sname}]"
            print(f"{label}: {sum(map(len, texts)):,} characters in "
                  f"{time.perf_counter() - t1:.0f} s", file=sys.stderr)
            systems.append((label, texts))

    rows = [(name, text_stats(texts, grams, reference, prompts)) for name, texts in systems]
    print(table(rows))
    for name, texts in systems:
        print(f"\n### {name}")
        for p, t in list(zip(prompts, texts))[:args.show]:
            print(f"\n【{p}】{t[:300]}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"rows": {n: s for n, s in rows}, "prompts": prompts,
             "samples": {n: t for n, t in systems}, "args": vars(args)},
            ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
