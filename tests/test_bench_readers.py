"""The reader panel's packet (bench/readers.py): blind, shuffled, every item keyed."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import readers  # noqa: E402

SYSTEMS = {"real continuation": ["甲乙丙", "丁戊己"], "char 5-gram Markov chain": ["子丑", "寅卯"],
           "shipped-default T=0.7": ["天地", "玄黄"], "models/x:rerank=8": ["宇宙", "洪荒"]}
PROMPTS = [("开头一", "甲乙丙"), ("开头二", "丁戊己")]


def test_packet_hides_which_system_wrote_what():
    packet, key = readers.build_packet(PROMPTS, SYSTEMS, seed=5, chars=150)
    for name in list(SYSTEMS) + ["Markov", "model", "default", "rerank", "real"]:
        assert name not in packet
    assert len(key["items"]) == 8 and len(set(key["items"])) == 8
    for item, where in key["items"].items():
        text = SYSTEMS[where["system"]][where["prompt"]]
        assert f"**{item}** {PROMPTS[where['prompt']][0]}｜{text}" in packet


def test_order_is_shuffled_per_prompt_and_fixed_by_the_seed():
    orders = set()
    for seed in range(6):
        packet, key = readers.build_packet(PROMPTS, SYSTEMS, seed=seed, chars=150)
        first = [key["items"][i]["system"] for i in key["items"] if key["items"][i]["prompt"] == 0]
        orders.add(tuple(first))
        assert readers.build_packet(PROMPTS, SYSTEMS, seed=seed, chars=150)[0] == packet
    assert len(orders) > 1


def test_score_table_and_void_rounds():
    _, key = readers.build_packet(PROMPTS, SYSTEMS, seed=1, chars=150)
    good = {"real continuation": 5, "char 5-gram Markov chain": 2}
    scores = {i: {a: good.get(w["system"], 1) for a in readers.ASPECTS}
              for i, w in key["items"].items()}
    table, problems = readers.score_table(key, [scores, scores])
    assert table["real continuation"]["mean"] == 5 and table["models/x:rerank=8"]["mean"] == 1
    assert problems == []
    bad = {i: {a: 3 for a in readers.ASPECTS} for i in key["items"]}
    del bad[next(iter(bad))]
    _, problems = readers.score_table(key, [bad])
    assert any("VOID" in p for p in problems) and any("left out" in p for p in problems)


def test_prompts_are_drawn_from_long_paragraphs_away_from_the_writing_bench():
    held = ["短" * 50] + [chr(0x4E00 + i) * 400 for i in range(30)]
    avoid = readers.writing_bench_paragraphs(held, n=5, chars=100)
    pairs = readers.draw_prompts(held, 10, seed=3, chars=150, avoid=avoid)
    assert len(pairs) == 10 and all(len(p) == 12 and len(r) == 150 for p, r in pairs)
    assert not {held.index(p + r + held[held.index(next(h for h in held if h.startswith(p)))][162:])
                for p, r in pairs} & avoid
