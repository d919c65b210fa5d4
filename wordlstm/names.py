"""Propose a user dictionary of a novel's names, so 麝月 or 李纨 stay one word.

jieba splits many character and place names it has never seen (麝 月, 李 纨). A name shows
itself in the segmented text as a short run of tokens that (1) recurs often, (2) is cohesive:
its rarest piece hardly ever occurs outside the run, and (3) is used like a name: it is often
followed by 道/说/笑道 and the like, or starts with a common surname. Candidates are counted in
one streaming pass; memory grows with the number of distinct short runs, not the corpus.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

# 百家姓: the traditional list of common surnames (single characters).
SURNAMES = set(
    "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张孔曹严华金魏陶姜戚谢邹喻柏水窦章云苏潘葛"
    "奚范彭郎鲁韦昌马苗凤花方俞任袁柳鲍史唐费廉岑薛雷贺倪汤滕殷罗毕郝邬安常乐于时傅皮卞齐康伍余"
    "元卜顾孟平黄和穆萧尹姚邵湛汪祁毛禹狄米贝明臧计伏成戴谈宋茅庞熊纪舒屈项祝董梁杜阮蓝闵席季麻"
    "强贾路娄危江童颜郭梅盛林刁钟徐邱骆高夏蔡田樊胡凌霍虞万支柯昝管卢莫经房裘缪干解应宗丁宣贲邓"
    "郁单杭洪包诸左石崔吉钮龚程嵇邢滑裴陆荣翁荀羊於惠甄曲家封芮羿储靳汲邴糜松井段富巫乌焦巴弓牧"
    "隗山谷车侯宓蓬全郗班仰秋仲伊宫宁仇栾暴甘钭厉戎祖武符刘景詹束龙叶幸司韶郜黎蓟薄印宿白怀蒲邰"
    "从鄂索咸籍赖卓蔺屠蒙池乔阴胥能苍双闻莘党翟谭贡劳逄姬申扶堵冉宰郦雍却璩桑桂濮牛寿通边扈燕冀"
    "郏浦尚农温别庄晏柴瞿阎充慕连茹习宦艾鱼容向古易慎戈廖庾终暨居衡步都耿满弘匡国文寇广禄阙东欧"
    "殳沃利蔚越夔隆师巩厍聂晁勾敖融冷訾辛阚那简饶空曾毋沙乜养鞠须丰巢关蒯相查后荆红游竺权逯盖益桓公")
# Words that typically follow a name in narrative: speech and action.
AFTER_NAME = {"道", "说", "说道", "笑道", "笑", "听了", "听说", "听", "便", "又", "也", "忙", "因",
              "等", "来", "去", "见", "问", "答应", "进来", "出去", "走", "都", "和", "与", "向",
              "叫", "的", "们", "在", "一面", "方", "才", "还", "哭", "冷笑", "点头"}
# Characters a name does not contain: particles, pronouns, common function words.
NOT_IN_NAMES = set("的了是在不这那我你他她它们也就都而及与和着过吗呢吧啊么之其所以为于上下中里个几又")


MIN_COUNT = 10  # occurrences a name needs (`names --min-count`)


@dataclass
class NameCandidate:
    name: str
    count: int
    cohesion: float
    name_like: float


def _is_han(s: str) -> bool:
    return all("\u4e00" <= c <= "\u9fff" for c in s)


def propose_names(token_lines, min_count: int = MIN_COUNT, min_cohesion: float = 0.6,
                  min_name_like: float = 0.15, max_len: int = 4) -> list[NameCandidate]:
    """Names that the segmentation splits, from an iterable of token lists."""
    unigrams: Counter = Counter()
    runs: Counter = Counter()
    followed: Counter = Counter()
    for tokens in token_lines:
        unigrams.update(tokens)
        n = len(tokens)
        for i in range(n):
            for k in (2, 3):
                if i + k > n:
                    break
                piece = tokens[i:i + k]
                joined = "".join(piece)
                if len(joined) > max_len or not _is_han(joined) or max(map(len, piece)) > 2:
                    continue
                if any(c in NOT_IN_NAMES for c in joined):
                    continue
                if len(joined) > 2 and (joined[-1] in "道见说笑" or joined[0] in "见便"):
                    continue  # 贾 政见, 薛 蝌道: a name run into a verb
                if piece[0] in AFTER_NAME or piece[-1] in AFTER_NAME:
                    continue  # a name with its verb (薛蝌 道) or a verb before one (见 袭人)
                key = tuple(piece)
                runs[key] += 1
                if i + k < n and tokens[i + k] in AFTER_NAME:
                    followed[key] += 1
    found: dict[str, NameCandidate] = {}
    for key, count in runs.items():
        if count < min_count:
            continue
        cohesion = count / min(unigrams[t] for t in key)
        name_like = followed[key] / count
        joined = "".join(key)
        if cohesion < min_cohesion:
            continue
        if name_like < min_name_like and joined[0] not in SURNAMES:
            continue
        if joined not in found or found[joined].count < count:
            found[joined] = NameCandidate(joined, count, round(cohesion, 3), round(name_like, 3))
    # Drop a fragment of a longer name that (almost) never occurs without it (翠庵 in 栊翠庵).
    names = sorted(found.values(), key=lambda c: (-len(c.name), -c.count))
    kept: list[NameCandidate] = []
    for c in names:
        if not any(c.name in k.name and c.count <= 1.1 * k.count for k in kept):
            kept.append(c)
    return sorted(kept, key=lambda c: -c.count)


def repaired_tokens(lines, names: list[str], user_dict: str) -> dict:
    """How many occurrences of the names are one token without and with the dictionary."""
    from .segment import Segmenter, SegmenterConfig

    plain = Segmenter(SegmenterConfig())
    named = Segmenter(SegmenterConfig(engine="jieba", user_dict=user_dict))
    wanted = set(names)
    before = after = 0
    for line in lines:
        before += sum(t in wanted for t in plain(line))
        after += sum(t in wanted for t in named(line))
    return {"names": len(names), "whole_before": before, "whole_after": after,
            "repaired": after - before}


def user_dictionary(inputs: list[str], output: str | None = None, min_count: int = MIN_COUNT,
                    encoding: str | None = None) -> tuple[list[NameCandidate], str, dict | None]:
    """The `names` command: (names found, the user dictionary's text, and, when it is written
    to `output`, how many name occurrences it makes whole tokens)."""
    from .errors import UserError
    from .segment import SegmenterConfig, default_jobs, segment_lines
    from .textio import (
        atomic_output,
        check_not_input,
        check_text_inputs,
        check_writable,
        iter_lines,
        normalize_line,
    )

    if output:
        check_writable(output)
        check_not_input(output, inputs)
    check_text_inputs(inputs, encoding)  # before any work: segmenting workers start next

    def raw_lines():  # streamed: read again for the repair count
        return (line for path in inputs for line in iter_lines(path, encoding=encoding))

    found = propose_names(segment_lines(raw_lines(), SegmenterConfig(), default_jobs()),
                          min_count=min_count)
    if not found:
        raise UserError("no split names found; try a lower --min-count")
    text = "".join(f"{c.name} {c.count} nr\n" for c in found)
    report = None
    if output:
        with atomic_output(output) as f:
            f.write(text)
        lines = (n for n in map(normalize_line, raw_lines()) if n)
        report = repaired_tokens(lines, [c.name for c in found], output)
    return found, text, report
