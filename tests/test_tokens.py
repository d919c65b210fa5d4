"""Token text: tokens joined as Chinese is written, prompts mapped to ids, punctuation and
the line hashes of the --novel-only filter."""

from wordlstm.tokens import is_punctuation, line_hash, prompt_ids, render
from wordlstm.vectors import EOS


def test_render_joins_like_written_chinese():
    assert render(["宝玉", "笑道", "：", "hello", "world", "，", EOS, "好"]) == "宝玉笑道：hello world，\n好"
    assert render(["S", "a", "u", "r", "u", "s"], unit="char") == "Saurus"


def test_render_spaces_only_between_two_latin_words_or_numbers():
    assert render(["3", "个", "GPU", "和", "2", "TB"]) == "3个GPU和2 TB"
    assert render(["iPhone", "15", "Pro"]) == "iPhone 15 Pro"
    assert render(["OK", "，", "go"]) == "OK，go"  # the comma is not a Latin word
    assert render(["a", "", "b"]) == "ab"  # an empty token breaks nothing
    assert render([EOS, EOS]) == "\n\n" and render([]) == ""


def test_prompt_unknown_words_fall_back_to_characters():
    index = {"宝": 0, "玉": 1, "笑": 2}
    ids, unknown, split = prompt_ids(["宝玉", "笑", "xyz"], index)
    assert ids == [0, 1, 2] and unknown == ["xyz"] and split == ["宝玉"]


def test_prompt_ids_keep_known_words_and_only_the_known_characters_of_others():
    index = {"宝玉": 5, "宝": 0, "钗": 3}
    ids, unknown, split = prompt_ids(["宝玉", "宝钗", "黛玉", "钗"], index)
    assert ids == [5, 0, 3, 3]  # 宝钗 spelled; 黛玉 has no known character
    assert unknown == ["黛玉"] and split == ["宝钗"]
    assert prompt_ids(["玉"], index) == ([], ["玉"], [])  # an unknown character is unknown


def test_punctuation_is_any_token_made_only_of_punctuation():
    for mark in ("，", "。", "“", "……", "——", "!", "」", "、"):
        assert is_punctuation(mark), mark
    for word in ("宝玉", "a", "3", "", "好，", " ", EOS):  # </s> is no mark: punct_bias spares it
        assert not is_punctuation(word), word


def test_line_hash_tells_lines_apart_by_their_tokens():
    a = line_hash(["床前", "明月", "光"])
    assert a == line_hash(["床前", "明月", "光"]) and 0 <= a < 2**64
    assert a != line_hash(["床前", "明月光"])  # the same text cut otherwise is another line
    assert a != line_hash(["床前", "明月", "霜"])
