from wordlstm.split import (
    COPY_CHARS,
    HoldOut,
    held_out_lines,
    line_token_counts,
    split_paragraphs,
    training_lines,
)


def _file(tmp_path, lines):
    p = tmp_path / "s.seg.txt"
    p.write_text("".join(" ".join(line) + "\n" for line in lines), encoding="utf-8")
    return str(p)


def test_training_lines_leave_out_copies_of_held_out_lines_but_not_short_ones(tmp_path):
    tail = list("一二三四五六七八九十甲乙丙丁戊己庚辛壬癸子")  # 21 characters
    short = ["宝玉", "道", "："]
    lines = [tail, short] + [["话"] * 10] * 30 + [short, tail]
    path = _file(tmp_path, lines)
    held = held_out_lines(line_token_counts(path), HoldOut(0.08))
    assert held.tolist()[-2:] == [True, True] and not held[:2].any()
    keep = training_lines(path, HoldOut(0.08))
    assert keep[0] == False and keep[1] == True
    assert len("".join(tail)) >= COPY_CHARS > len("".join(short))
    train, out = split_paragraphs(path, HoldOut(0.08))
    assert out == [short, tail] and tail not in train and short in train
