"""The models shipped in the package do their jobs out of the box (issue 23): the README's
`--model tang --acrostic 春夏秋冬` and `--model dinos --lines 8 --novel-only`."""

import json

from conftest import run


def test_the_shipped_tang_model_writes_an_acrostic_in_form():
    out = run("continue-text", "--model", "tang", "--acrostic", "春夏秋冬", "--seed", "3").output
    lines = [line for line in out.splitlines() if line.endswith(("，", "。"))]
    assert [line[0] for line in lines] == list("春夏秋冬"), out
    bodies = [line.rstrip("，。") for line in lines]
    assert len({len(b) for b in bodies}) == 1 and len(bodies[0]) in (5, 7), out  # one clause length
    assert lines[0].endswith("，") and lines[1].endswith("。"), out


def test_the_shipped_dinosaur_model_writes_only_new_names():
    from wordlstm.modeldir import load, resolve_model_dir
    from wordlstm.tokens import line_hash

    out = run("continue-text", "--model", "dinos", "--lines", "8", "--novel-only", "--seed", "2",
              "--json").output
    texts = json.loads(out)["texts"]
    assert len(texts) == 8 and len(set(texts)) == 8 and all(t.strip() for t in texts), texts
    known = set(load(resolve_model_dir("dinos")).line_hashes().tolist())
    assert len(known) > 1000  # the training list's names, as the model recorded them
    assert not [t for t in texts if line_hash(list(t.strip())) in known], texts
