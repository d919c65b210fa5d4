from wordlstm.punct import normalize_punct


def test_full_stops_and_half_width_marks_between_chinese_become_full_width():
    assert normalize_punct("他笑了．便走了") == "他笑了。便走了"
    assert normalize_punct("我不说罢了,若说起来,人命官司.") == "我不说罢了，若说起来，人命官司。"
    assert normalize_punct("怎么样?好!走:去;") == "怎么样？好！走：去；"
    # Numbers and Latin text keep their marks.
    assert normalize_punct("共3.5两，Mr.Li,ok") == "共3.5两，Mr.Li,ok"
    assert normalize_punct("第3．5回") == "第3.5回"


def test_straight_double_quotes_are_paired_within_a_paragraph():
    assert normalize_punct('他道:"你来了."我说:"是."') == "他道：“你来了。”我说：“是。”"
    # A curly opening quote is closed by the next straight one.
    assert normalize_punct("众人问：“此人是谁？\"有的说") == "众人问：“此人是谁？”有的说"
    assert normalize_punct('"一"字') == "“一”字"


def test_backtick_and_hyphen_as_single_quotes():
    assert normalize_punct("况又有`美中不足，好事多魔-八个字") == "况又有‘美中不足，好事多魔’八个字"
    assert normalize_punct("看了`西厢-`牡丹-的词曲") == "看了‘西厢’‘牡丹’的词曲"
    assert normalize_punct("主上又问:-苏州刺史") == "主上又问：‘苏州刺史"


def test_runs_of_underscores_and_dots_become_an_ellipsis():
    assert normalize_punct("只听外面乱嚷____") == "只听外面乱嚷……"
    assert normalize_punct("原来是他...") == "原来是他……"
    assert normalize_punct("妹妹……。") == "妹妹……。"
    assert normalize_punct("") == ""
