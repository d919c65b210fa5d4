"""Names and poems: do line models write what their corpus is made of?

    python bench/lines.py names SEGMENTED --model DIR [--model DIR2] [--n 500] [--seed 1]
    python bench/lines.py poems SEGMENTED --model DIR [--model DIR2] [--n 200] [--seed 1]
    ... [--sampling temperature=1.0,min_p=0,...]   (SamplingConfig fields; default: defaults)

SEGMENTED is the character-segmented corpus the models were trained on (`segment --unit
char`); the held-out lines are the random sample `train --lines` held out. Each model's
held-out bits/char (wordlstm.evaluate, every character and line end counted) is set beside a
Witten-Bell character n-gram's fitted on the training lines (3-gram for names, 5-gram for
poems), and the real lines' figures are in the same table.

names: share capitalised, mean length, share ending in -saurus and the overlap of the
4-letter suffix distribution with the real list's, share not in the training file.
poems: share in a regular form (4 or 8 clauses, all of 5 or all of 7 characters), the clause
length histogram, share of poems whose even clauses all rhyme (wordlstm.rhyme), for --lines
poems (the model's default form), free poems (--form free), first-line continuations of 10
held-out first lines, and acrostics.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from textstats import CharNgram  # noqa: E402

from wordlstm.dataset import corpus_ids  # noqa: E402
from wordlstm.evaluate import evaluate  # noqa: E402
from wordlstm.rhyme import rhyme_classes  # noqa: E402
from wordlstm.sampling import SamplingConfig  # noqa: E402
from wordlstm.split import HoldOut, split_paragraphs  # noqa: E402
from wordlstm.writer import Writer  # noqa: E402


def split_lines(segmented: str, holdout: HoldOut) -> tuple[list[str], list[str]]:
    train, held = split_paragraphs(segmented, holdout)
    return ["".join(t) for t in train], ["".join(t) for t in held]


def ngram_bpc(train: list[str], held: list[str], order: int) -> float:
    model = CharNgram("\n" + "\n".join(train) + "\n", order)
    return model.bits_per_char("\n".join(held) + "\n", "\n")


def model_bpc(w: Writer, segmented: str) -> float:
    m = w.loaded
    holdout = m.config.training.holdout
    corpus = corpus_ids(segmented, m.vectors.index, holdout)
    return evaluate(m.step, m.decoder, corpus, m.vectors.words)["bits_per_char"]


def name_stats(names: list[str], known: set[str], real_suffixes: Counter) -> dict:
    n = max(len(names), 1)
    suffixes = Counter(x[-4:] for x in names)
    total_real = sum(real_suffixes.values())
    overlap = sum(min(c / n, real_suffixes[s] / total_real) for s, c in suffixes.items())
    return {"lines": len(names),
            "capitalised": sum(1 for x in names if x[:1].isupper()) / n,
            "mean_length": sum(map(len, names)) / n,
            "saurus": sum(1 for x in names if x.endswith("saurus")) / n,
            "suffix_overlap": overlap,
            "novel": sum(1 for x in names if x not in known) / n}


CLAUSE = re.compile("[，。？！；]")


def poem_form(poem: str) -> tuple[int, ...]:
    return tuple(len(c) for c in CLAUSE.split(poem) if c)


def is_regular(poem: str) -> bool:
    lengths = poem_form(poem)
    return len(lengths) in (4, 8) and len(set(lengths)) == 1 and lengths[0] in (5, 7)


def rhymes_all(poem: str) -> bool | None:
    """Do the even clauses all rhyme with the second? None for fewer than 4 clauses."""
    clauses = [c for c in CLAUSE.split(poem) if c]
    if len(clauses) < 4:
        return None
    classes = rhyme_classes([c[-1] for c in clauses[1::2]])
    return classes[0] is not None and all(c == classes[0] for c in classes)


def acrostic_ok(poem: str, heads: str) -> bool:
    """One clause per head character, starting with it, all of one length, closed by ，and 。
    in turn."""
    clauses = [c for c in CLAUSE.split(poem) if c]
    marks = [c for c in poem if CLAUSE.match(c)]
    return (len(clauses) == len(heads) and len(set(map(len, clauses))) == 1
            and all(c[0] == h for c, h in zip(clauses, heads))
            and marks == (["，", "。"] * len(heads))[:len(heads)])


def poem_stats(poems: list[str]) -> dict:
    n = max(len(poems), 1)
    hist = Counter(length for p in poems for length in poem_form(p))
    total = sum(hist.values()) or 1
    rhymed = [r for r in map(rhymes_all, poems) if r is not None]
    return {"lines": len(poems), "regular": sum(map(is_regular, poems)) / n,
            "rhyming": sum(rhymed) / max(len(rhymed), 1),
            "clauses": " ".join(f"{k}:{v / total:.0%}" for k, v in sorted(hist.items())
                                if v / total >= 0.02)}


def table(rows, columns):
    out = ["| " + " | ".join(["system"] + columns) + " |", "|" + " --- |" * (len(columns) + 1)]
    for name, r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "")
            cells.append(f"{v:.3f}" if isinstance(v, float) else str(v))
        out.append("| " + " | ".join([name] + cells) + " |")
    return "\n".join(out)


def run_names(args, writers, train, held):
    real_suffixes = Counter(x[-4:] for x in train)
    known = set(train) | set(held)
    rows = [("real names (the whole list)", name_stats(train + held, set(), real_suffixes)
             | {"bits_per_char": float("nan"), "novel": float("nan")}),
            ("char 3-gram", {"bits_per_char": ngram_bpc(train, held, 3)})]
    samples = {}
    for name, w in writers:
        names = w.lines("", args.n, SAMPLING, seed=args.seed, max_words=40).texts
        rows.append((name, name_stats(names, known, real_suffixes)
                     | {"bits_per_char": model_bpc(w, args.segmented)}))
        samples[name] = names[:12]
    print(table(rows, ["bits_per_char", "capitalised", "mean_length", "saurus",
                       "suffix_overlap", "novel", "lines"]))
    for name, s in samples.items():
        print(f"\n{name}: " + ", ".join(s))


def run_poems(args, writers, train, held):
    rows = [("real poems (held out)", poem_stats(held)),
            ("char 5-gram", {"bits_per_char": ngram_bpc(train, held, 5)})]
    firsts = [p[:len(p.split("，")[0]) + 1] for p in held if "，" in p and is_regular(p)][:10]
    samples = {}
    for name, w in writers:
        bpc = model_bpc(w, args.segmented)
        poems = w.lines("", args.n, SAMPLING, seed=args.seed).texts
        free = w.lines("", args.n, SAMPLING, seed=args.seed, form="free").texts
        cont = [w.lines(f, 1, SAMPLING, seed=args.seed + i).texts[0]
                for i, f in enumerate(firsts)]
        heads = ["春夏秋冬", "明月清风", "山高水长", "江南好景", "白云千里"] * 2
        acro = ["".join(w.acrostic(h, SAMPLING, seed=args.seed + i).texts)
                for i, h in enumerate(heads)]
        acro_ok = sum(acrostic_ok(a, h) for a, h in zip(acro, heads)) / len(acro)
        rows.append((name, poem_stats(poems) | {"bits_per_char": bpc}))
        rows.append((f"{name} --form free", poem_stats(free)))
        rows.append((f"{name} first lines", poem_stats(cont)))
        rows.append((f"{name} acrostic", poem_stats(acro) | {"in_form": acro_ok}))
        samples[name] = poems[:4] + cont[:3] + acro[:2] + free[:2]
    print(table(rows, ["bits_per_char", "regular", "rhyming", "in_form", "clauses", "lines"]))
    for name, s in samples.items():
        print(f"\n{name}:\n" + "\n".join(s))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("kind", choices=["names", "poems"])
    ap.add_argument("segmented")
    ap.add_argument("--model", action="append", default=[])
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sampling", default="", help="key=value,... SamplingConfig fields")
    args = ap.parse_args(argv)
    global SAMPLING
    from readers import parse_system

    given = parse_system(f"x=y:{args.sampling}")[2]
    SAMPLING = SamplingConfig(**given)
    args.n = args.n or (500 if args.kind == "names" else 200)
    writers = [(Path(m).name, Writer.load(m)) for m in args.model]
    if writers:  # the model's own defaults (config.json "sampling"), as continue-text uses
        SAMPLING = writers[0][1].sampling(SAMPLING, given=set(given))
    holdout = writers[0][1].config.training.holdout if writers \
        else HoldOut(lines=True)
    train, held = split_lines(args.segmented, holdout)
    print(f"{len(train):,} training and {len(held):,} held-out lines", file=sys.stderr)
    (run_names if args.kind == "names" else run_poems)(args, writers, train, held)


if __name__ == "__main__":
    main()
