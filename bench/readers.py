"""The reader panel: blind human-style judgement of continuations, as a protocol anyone can rerun.

    python bench/readers.py packet SEGMENTED --system NAME=MODEL_DIR[:key=value,...] ...
        --out DIR [--key KEYDIR] [--prompts 20] [--chars 150] [--seed 1]
    python bench/readers.py score KEYDIR/key.json SCORES.json [SCORES.json ...] [--json OUT]

`packet` takes `--prompts` openings (the first 12 characters) of held-out paragraphs of
SEGMENTED (the part no model trained on; drawn with `--seed`, never bench/writing.py's
evenly spread ones) and writes, for each, the real continuation, a character 5-gram Markov
chain's (fitted on the training part) and every `--system`'s, `--chars` characters each,
shuffled under opaque ids: `DIR/packet.md` (instructions and items: all a reader sees) and
`KEYDIR/key.json` (which id is which system; keep it away from the readers). A system is a
model dir with SamplingConfig fields (`temperature=0.7,top_p=0.9`).

Readers are independent and blind: each gets only packet.md, never the key, the code or the
systems' names, and writes {"ID": {"fluency": 1-5, "coherence": 1-5, "style": 1-5}, ...}.
A fresh pair of readers every round. `score` prints the mean per system and reader; a round
where the real text scores under 4.5 or the Markov chain outside 1.8-2.5 is void (a reader
who cannot tell them apart is not reading).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from textstats import CharNgram  # noqa: E402

REAL, MARKOV = "real continuation", "char 5-gram Markov chain"
ASPECTS = ("fluency", "coherence", "style")
VALID_REAL, VALID_MARKOV = 4.5, (1.8, 2.5)

INSTRUCTIONS = """# 续写评分 / Continuation scoring

You are a reader of classical vernacular Chinese fiction (白话章回小说), at home in 《红楼梦》.
Below are {n_prompts} openings, each a few characters from the novel. After each opening come
{n_items} continuations of about {chars} characters, in no particular order. Some may be the
novel's own text, some machine-written. You are not told which, and you should not try to
guess which is which: score what you read.

Score **every continuation on its own**, 1-5 on each of, judging the passage as a whole
(not its best phrase):
- **fluency** (通顺): do the sentences parse as Chinese, one after another? 5 = every
  sentence well formed; 4 = one or two slips; 3 = readable, but broken phrases or joins in
  several places; 2 = more broken than whole; 1 = word salad.
- **coherence** (连贯): does it follow from the opening and hold together — who speaks, what
  happens, does one sentence lead to the next? 5 = one consistent scene; 3 = locally
  connected but drifting; 1 = no thread at all.
- **style** (文风): does the passage read like a passage of 《红楼梦》 — its narration,
  dialogue, vocabulary, forms of address — as the novel would tell it? 5 = indistinguishable
  from the novel; 3 = the novel's words and turns of phrase, but not how the novel would
  write this passage; 1 = nothing like it.

Use the whole scale. Judge each continuation against the scale above, not against the others
of its group. Continuations end mid-sentence because they were cut at a fixed length: do not
count that against them.

Write your scores as one JSON object to the file you were told, keyed by the item ids, e.g.
`{{"k3f9": {{"fluency": 4, "coherence": 3, "style": 4}}, ...}}` — every id below, integers
1-5 only. Nothing else goes in that file.

"""


def held_out_paragraphs(segmented: str, holdout) -> tuple[str, list[str]]:
    from wordlstm.split import split_paragraphs
    from wordlstm.tokens import render

    train, held = split_paragraphs(segmented, holdout)
    return "\n".join(map(render, train)), [render(t) for t in held]


def draw_prompts(held: list[str], n: int, seed: int, prompt_chars: int = 12, chars: int = 150,
                 min_len: int = 200, avoid: set[int] = frozenset()) -> list[tuple[str, str]]:
    """(opening, real continuation) of `n` held-out paragraphs longer than `min_len`, drawn at
    random with `seed` (paragraph indices in `avoid` are never drawn)."""
    ok = [i for i, p in enumerate(held) if len(p) > max(min_len, prompt_chars + chars)
          and i not in avoid]
    if len(ok) < n:
        raise SystemExit(f"only {len(ok)} held-out paragraphs are long enough for {n} prompts")
    picked = sorted(random.Random(seed).sample(ok, n))
    return [(held[i][:prompt_chars], held[i][prompt_chars:prompt_chars + chars]) for i in picked]


def writing_bench_paragraphs(held: list[str], n: int = 50, prompt_chars: int = 12,
                             chars: int = 600, min_len: int = 200) -> set[int]:
    """Indices of the paragraphs bench/writing.py takes its prompts from (kept out)."""
    tail_len = len("\n".join(held))
    idx, pos = [], 0
    for i, para in enumerate(held):
        if len(para) > min_len and pos + prompt_chars + chars <= tail_len:
            idx.append(i)
        pos += len(para) + 1
    if len(idx) > n:
        idx = [idx[round(i * (len(idx) - 1) / (n - 1))] for i in range(n)]
    return set(idx)


def parse_system(spec: str) -> tuple[str, str, dict]:
    """NAME=MODEL_DIR[:key=value,...] -> (name, model dir, SamplingConfig settings)."""
    from wordlstm.sampling import SamplingConfig

    name, _, rest = spec.partition("=")
    model, _, body = rest.partition(":")
    if not name or not model:
        raise SystemExit(f"--system {spec!r}: write NAME=MODEL_DIR[:key=value,...]")
    settings = {}
    defaults = SamplingConfig()
    for item in filter(None, body.split(",")):
        key, _, value = item.partition("=")
        key = key.strip()
        kind = type(getattr(defaults, key))
        settings[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return name, model, settings


def make_ids(n: int, seed: int) -> list[str]:
    """`n` distinct opaque ids (4 hex digits), unrelated to any system."""
    rng = random.Random(f"ids-{seed}")
    ids: set[str] = set()
    while len(ids) < n:
        ids.add(f"{rng.getrandbits(16):04x}")
    out = sorted(ids)
    rng.shuffle(out)
    return out


def build_packet(prompts: list[tuple[str, str]], systems: dict[str, list[str]], seed: int,
                 chars: int) -> tuple[str, dict]:
    """(packet text, key): every system's continuation of every prompt, shuffled per prompt
    under opaque ids. `systems` maps a name to one continuation per prompt."""
    names = list(systems)
    ids = iter(make_ids(len(prompts) * len(names), seed))
    rng = random.Random(f"order-{seed}")
    key = {"items": {}, "prompts": [p for p, _ in prompts], "systems": names, "seed": seed}
    parts = [INSTRUCTIONS.format(n_prompts=len(prompts), n_items=len(names), chars=chars)]
    for k, (opening, _) in enumerate(prompts):
        order = names[:]
        rng.shuffle(order)
        parts.append(f"## 开头 {k + 1}：{opening}\n")
        for name in order:
            item = next(ids)
            key["items"][item] = {"system": name, "prompt": k}
            text = systems[name][k].replace("\n", " ⏎ ")
            parts.append(f"- **{item}** {opening}｜{text}\n")
        parts.append("")
    return "\n".join(parts), key


def continuations(writer, prompts: list[str], chars: int, cfg, seed: int) -> list[str]:
    """`chars` characters after each prompt (bench/writing.py's generator)."""
    from writing import continuations as gen

    return gen(writer, prompts, chars, cfg, seed)


def cmd_packet(args) -> None:
    from wordlstm.sampling import SamplingConfig
    from wordlstm.split import HoldOut
    from wordlstm.writer import Writer

    systems_spec = [parse_system(s) for s in args.system]
    writers = {}
    for _, model, _ in systems_spec:
        if model not in writers:
            writers[model] = Writer.load(model)
    first = next(iter(writers.values()), None)
    holdout = first.config.training.holdout if first else HoldOut()
    train_text, held = held_out_paragraphs(args.segmented, holdout)
    avoid = writing_bench_paragraphs(held)
    pairs = draw_prompts(held, args.prompts, args.seed, chars=args.chars, avoid=avoid)
    openings = [p for p, _ in pairs]
    texts = {REAL: [r for _, r in pairs]}
    rng = random.Random(args.seed)
    markov = CharNgram(train_text, 5)
    texts[MARKOV] = [markov.sample(p, args.chars, rng) for p in openings]
    for name, model, settings in systems_spec:
        cfg = replace(SamplingConfig(), **settings)
        texts[name] = continuations(writers[model], openings, args.chars, cfg, args.seed)
        print(f"{name}: {model} {settings}", file=sys.stderr)
    packet, key = build_packet(pairs, texts, args.seed, args.chars)
    key["specs"] = {name: {"model": model, "settings": settings}
                    for name, model, settings in systems_spec}
    key["texts"] = texts
    out, key_dir = Path(args.out), Path(args.key or (Path(args.out).parent / (Path(args.out).name + "-key")))
    out.mkdir(parents=True, exist_ok=True)
    key_dir.mkdir(parents=True, exist_ok=True)
    (out / "packet.md").write_text(packet, encoding="utf-8")
    (key_dir / "key.json").write_text(json.dumps(key, ensure_ascii=False, indent=1), "utf-8")
    digest = hashlib.sha256(packet.encode()).hexdigest()[:12]
    print(f"{out / 'packet.md'}: {len(key['items'])} items, {len(pairs)} prompts (seed "
          f"{args.seed}, sha256 {digest}); key in {key_dir / 'key.json'}", file=sys.stderr)


def score_table(key: dict, readers: list[dict]) -> tuple[dict, list[str]]:
    """Per system: each aspect's mean over every item and reader, the overall mean, and each
    reader's mean; plus the problems found (missing items, bad values, a void round)."""
    problems = []
    rows: dict[str, dict] = {name: {a: [] for a in ASPECTS} | {"readers": []}
                             for name in key["systems"]}
    for r, scores in enumerate(readers):
        missing = set(key["items"]) - set(scores)
        if missing:
            problems.append(f"reader {r + 1} left out {len(missing)} item(s)")
        per_system: dict[str, list[float]] = {name: [] for name in key["systems"]}
        for item, s in scores.items():
            if item not in key["items"]:
                problems.append(f"reader {r + 1}: unknown item {item!r}")
                continue
            name = key["items"][item]["system"]
            for a in ASPECTS:
                v = s.get(a) if isinstance(s, dict) else None
                if not isinstance(v, int) or not 1 <= v <= 5:
                    problems.append(f"reader {r + 1}: {item} {a} = {v!r}")
                    continue
                rows[name][a].append(v)
                per_system[name].append(v)
        for name, vs in per_system.items():
            rows[name]["readers"].append(sum(vs) / len(vs) if vs else float("nan"))
    table = {}
    for name, row in rows.items():
        means = {a: sum(v) / len(v) if v else float("nan") for a, v in row.items()
                 if a in ASPECTS}
        means["mean"] = sum(means.values()) / len(ASPECTS)
        means["readers"] = row["readers"]
        table[name] = means
    real, markov = table.get(REAL, {}).get("mean"), table.get(MARKOV, {}).get("mean")
    if real is not None and not real >= VALID_REAL:
        problems.append(f"VOID: the real text scored {real:.2f} (< {VALID_REAL})")
    if markov is not None and not VALID_MARKOV[0] <= markov <= VALID_MARKOV[1]:
        problems.append(f"VOID: the Markov chain scored {markov:.2f} (outside "
                        f"{VALID_MARKOV[0]}-{VALID_MARKOV[1]})")
    return table, problems


def markdown(table: dict) -> str:
    lines = ["| system | fluency | coherence | style | mean | per reader |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, m in sorted(table.items(), key=lambda kv: -kv[1]["mean"]):
        lines.append(f"| {name} | {m['fluency']:.2f} | {m['coherence']:.2f} | {m['style']:.2f} "
                     f"| **{m['mean']:.2f}** | "
                     + " / ".join(f"{x:.2f}" for x in m["readers"]) + " |")
    return "\n".join(lines)


def cmd_score(args) -> None:
    key = json.loads(Path(args.key).read_text("utf-8"))
    readers = [json.loads(Path(p).read_text("utf-8")) for p in args.scores]
    table, problems = score_table(key, readers)
    print(markdown(table))
    for p in problems:
        print(p)
    if args.json:
        Path(args.json).write_text(json.dumps({"table": table, "problems": problems},
                                              ensure_ascii=False, indent=1), "utf-8")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("packet")
    p.add_argument("segmented")
    p.add_argument("--system", action="append", default=[],
                   help="NAME=MODEL_DIR[:key=value,...]; repeatable")
    p.add_argument("--out", required=True, help="folder for packet.md (what readers see)")
    p.add_argument("--key", default=None, help="folder for key.json (default: OUT-key)")
    p.add_argument("--prompts", type=int, default=20)
    p.add_argument("--chars", type=int, default=150)
    p.add_argument("--seed", type=int, default=1)
    s = sub.add_parser("score")
    s.add_argument("key")
    s.add_argument("scores", nargs="+")
    s.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    cmd_packet(args) if args.cmd == "packet" else cmd_score(args)


if __name__ == "__main__":
    main()
