"""Rhyme classes: characters whose finals share one of the thirteen classes rhyme."""

from wordlstm.rhyme import _CLASSES, rhyme_classes


def test_medials_do_not_change_the_rhyme():
    # tian/shan, hua/jia, yue/xue, dong/feng: the i/u/ü before the final is not heard in
    # the rhyme (and ong rhymes with eng, as 十三辙 has it), so each pair is one class.
    pairs = [("天", "山"), ("花", "家"), ("月", "雪"), ("东", "风"), ("光", "长"), ("人", "春")]
    classes = rhyme_classes([c for pair in pairs for c in pair])
    for k, (a, b) in enumerate(pairs):
        assert classes[2 * k] is not None and classes[2 * k] == classes[2 * k + 1], (a, b)
    assert len({classes[2 * k] for k in range(len(pairs))}) == len(pairs)
    assert rhyme_classes(["明"]) == [classes[6]]  # ming rhymes with dong and feng


def test_different_finals_are_different_classes():
    a, b, c = rhyme_classes(["天", "光", "花"])  # an, ang, a
    assert len({a, b, c}) == 3


def test_only_single_chinese_characters_have_a_rhyme():
    assert rhyme_classes(["天地", "a", "，", "", "</s>", "3"]) == [None] * 6
    assert rhyme_classes([]) == []


def test_every_class_is_one_of_the_thirteen():
    assert len(set(_CLASSES.values())) == 13
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 2000)]
    found = {c for c in rhyme_classes(chars) if c is not None}
    assert found <= set(_CLASSES.values()) and len(found) >= 12
