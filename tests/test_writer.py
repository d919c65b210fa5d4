"""Generation modes on small line-level models: whole lines, only-new lines, acrostics, prefix."""


import pytest

from wordlstm.errors import UserError
from wordlstm.sampling import SamplingConfig
from wordlstm.tokens import is_punctuation
from wordlstm.writer import Writer


def test_line_model_learns_clause_length_marks_and_form(poem_model):
    w = Writer.load(poem_model / "m")
    assert w.config.lines.clause_length == 5 and w.config.acrostic_length == 5
    assert set(w.config.lines.clause_ends) == {"，", "。"}
    assert w.config.lines.count == 400
    assert w.config.lines.forms == ((5, 4, 1.0),)
    assert w.config.lines.forms[0].clauses == 4
    assert w.config.training.holdout.lines is True


def _clauses(poem):
    import re

    return [c for c in re.split("[，。]", poem) if c], [c for c in poem if c in "，。"]


def test_lines_of_a_poem_model_are_regular_verse(poem_model):
    w = Writer.load(poem_model / "m")
    poems = w.lines("", 6, SamplingConfig(), seed=2).texts
    for p in poems:
        clauses, marks = _clauses(p)
        assert [len(c) for c in clauses] == [5] * 4 and marks == ["，", "。"] * 2, p
    # A first line given as the prompt is continued into a whole poem of its form.
    poems = w.lines("春风花月夜，", 3, SamplingConfig(), seed=2).texts
    assert all(p.startswith("春风花月夜，") and [len(c) for c in _clauses(p)[0]] == [5] * 4
               for p in poems)
    seven = w.lines("", 2, SamplingConfig(), seed=2, form="7x8").texts
    assert all([len(c) for c in _clauses(p)[0]] == [7] * 8 for p in seven)
    with pytest.raises(UserError, match="`form`"):
        w.lines("", 1, SamplingConfig(), form="five")


def test_rhyme_is_preferred_where_the_model_allows():
    import numpy as np

    from wordlstm.sampling import preferred
    from wordlstm.verse import rhyme_preference

    classes = {3: np.array([3, 4]), 4: np.array([3, 4])}
    prefer = rhyme_preference(2, classes, [0, 1, 9, 2, 3, 9], offset=6)  # clause 2 ends in 3
    out = [5, 6, 9, 7]
    assert list(prefer(0, out)) == [3, 4]  # the 4th clause's last character
    assert prefer(0, out[:3]) is None and prefer(0, out + [8]) is None
    logp = np.log(np.array([0.5, 0.2, 0.1, 0.05, 0.15]))
    assert list(preferred(logp, None, np.array([3, 4]))) == [3, 4]  # 20% of the mass
    assert preferred(np.log(np.array([0.98, 0.0, 0.0, 0.01, 0.01]) + 1e-12), None,
                      np.array([3, 4])) is None  # the model does not allow it


def test_acrostic_lines_start_with_each_character(poem_model):
    w = Writer.load(poem_model / "m")
    made = w.acrostic("春夏秋冬", SamplingConfig(), seed=1)
    lines = made.texts
    assert made.words == [len("".join(lines))]
    assert len(lines) == 4
    for head, line, mark in zip("春夏秋冬", lines, "，。，。"):
        assert line[0] == head and len(line) == 6 and line[-1] == mark
        assert not any(is_punctuation(c) for c in line[:-1])
    assert w.acrostic("春夏秋冬", SamplingConfig(), seed=1).texts == lines
    assert [len(line) for line in w.acrostic("春夏", SamplingConfig(), seed=1, line_length=7).texts] == [8, 8]
    with pytest.raises(UserError, match="vocabulary"):
        w.acrostic("春X", SamplingConfig())


def test_lines_make_whole_lines_with_prompt(poem_model):
    w = Writer.load(poem_model / "m")
    made = w.lines("春", 5, SamplingConfig(), seed=3, max_words=40)
    lines, dropped = made.texts, made.dropped
    assert len(made.words) >= 5 and made.unknown == made.split == []
    assert len(lines) == 5 and dropped == 0 and all(line.startswith("春") for line in lines)
    assert len(set(lines)) == 5  # distinct lines
    assert all("\n" not in line for line in lines)


def test_novel_only_drops_training_lines(poem_model, monkeypatch):
    w = Writer.load(poem_model / "m")
    training = (poem_model / "poems.txt").read_text(encoding="utf-8").splitlines()
    # Make the generator "recite" a training line first, then a new one.
    recited = iter([training[0], "春春春春春，春春春春春。"] * 10)
    original = w.gen.generate

    def fake_generate(prompts, length, cfg, seed=None, stop=None, **kw):
        return [[w.vectors.index[c] for c in next(recited)] + [w.eos] for _ in prompts]

    w.gen.generate = fake_generate
    made = w.lines("", 1, SamplingConfig(), seed=0, novel_only=True)
    lines, dropped = made.texts, made.dropped
    assert lines == ["春春春春春，春春春春春。"] and dropped == 1
    w.gen.generate = original
    kept = w.lines("", 4, SamplingConfig(), seed=0, novel_only=True).texts
    assert len(kept) == 4 and not set(kept) & set(training)


def test_novel_only_needs_a_line_model(model_dir):
    w = Writer.load(model_dir)
    with pytest.raises(UserError, match="--lines"):
        w.lines("", 2, SamplingConfig(), novel_only=True)


def test_generation_results_belong_to_their_call(model_dir):
    w = Writer.load(model_dir)
    first = w.continue_text("老王和火星人", 3, SamplingConfig(), seed=1, samples=2)
    second = w.continue_text("老王和火星人", 3, SamplingConfig(), seed=1, samples=2)
    assert (first.unknown or first.split) and (first.unknown, first.split) == (second.unknown, second.split)
    assert first.texts == second.texts and first.words == [3, 3] and first.dropped == 0
    assert w.continue_text("老王", 3, SamplingConfig(), seed=1).unknown == []


def test_requests_are_checked_when_made():
    from wordlstm.writer import Request

    # the library names its fields; the CLI says them as flags, the server as JSON fields
    for bad, words in (({"length": 0}, "`length`"), ({"samples": 0}, "`samples`"),
                       ({"form": "5x4"}, "`form`"), ({"novel_only": True}, "`novel_only`"),
                       ({"line_length": 1}, "`line_length`")):
        with pytest.raises(UserError, match=words):
            Request(**bad)
    assert Request().streams and not Request(n_lines=2).streams
    assert Request(prompt="a\x1bb").printable().prompt == "ab"


def test_prefix_changes_text_but_is_not_printed(model_dir):
    # Cosine decoding: the tiny test model's greedy choice under the word-frequency prior is
    # the same punctuation whatever the context.
    w = Writer.load(model_dir, decode="cosine")
    cfg = SamplingConfig(greedy=True)
    plain = w.continue_text("老王", 15, cfg).texts
    primed = w.continue_text("老王", 15, cfg, prefix="小红听了，心里很伤心").texts
    assert plain != primed
    assert not primed[0].startswith("小红听了")


def test_a_line_model_carries_its_own_sampling_defaults(poem_model):
    """Names and poems are written with the line settings the model was saved with, unless
    the user sets a field; prose models have none."""
    import json

    from wordlstm.sampling import SamplingConfig
    from wordlstm.train import LINE_SAMPLING
    from wordlstm.writer import Writer

    config = json.loads((poem_model / "m" / "config.json").read_text(encoding="utf-8"))
    assert config["sampling"] == LINE_SAMPLING
    w = Writer.load(poem_model / "m")
    cfg = w.sampling(SamplingConfig(temperature=0.7), given={"temperature"})
    assert cfg.temperature == 0.7 and cfg.min_p == LINE_SAMPLING["min_p"]
    assert w.sampling(SamplingConfig()).temperature == LINE_SAMPLING["temperature"]


def test_a_prose_model_keeps_the_prose_defaults(model_dir):
    from wordlstm.sampling import SamplingConfig
    from wordlstm.writer import Writer

    assert Writer.load(model_dir).sampling(SamplingConfig()) == SamplingConfig()


def _stops_after(words):
    """A `check` that lets `words` checks pass and then stops, as a request's time limit does."""
    from wordlstm.budget import TimeLimitExceeded

    calls = []

    def check():
        calls.append(1)
        if len(calls) > words:
            raise TimeLimitExceeded(1.0)

    check.calls = calls
    return check


def test_every_mode_stops_when_its_check_says(model_dir, poem_model):
    """The one budget mechanism: the `check` a caller passes reaches every generation mode,
    is called at least once a word, and its exception ends the generation."""
    from wordlstm.budget import Budget, Cancelled, Stopped
    from wordlstm.writer import Request

    gone = Budget()
    gone.cancelled = True
    prose = Writer.load(model_dir)
    cfg = SamplingConfig()
    for request, mode in ((Request(prompt="老王", length=30, seed=1), cfg),
                          (Request(prompt="老王", length=30, samples=3, seed=1), cfg),
                          (Request(prompt="老王", length=30, seed=1), SamplingConfig(rerank=2))):
        with pytest.raises(Cancelled):
            prose.write(request, mode, check=gone.check)
        check = _stops_after(10)
        with pytest.raises(Stopped):
            prose.write(request, mode, check=check)
        assert len(check.calls) == 11  # stopped at once, not at the end
        free = _stops_after(10**6)
        assert prose.write(request, mode, check=free).texts == prose.write(request, mode).texts
        assert len(free.calls) >= 30  # once a word at least
    with pytest.raises(Cancelled):
        prose.next_words("老王", 3, check=gone.check)
    poems = Writer.load(poem_model / "m")
    for request in (Request(n_lines=2, seed=1), Request(acrostic="春夏", seed=1)):
        with pytest.raises(Cancelled):
            poems.write(request, cfg, check=gone.check)
        with pytest.raises(Stopped):
            poems.write(request, cfg, check=_stops_after(5))
