"""Model cards (wordlstm/card.py): README.md in every model dir, true to what was trained."""

import hashlib
import json
import shutil

from conftest import run


def test_train_writes_a_true_card(model_dir, segmented):
    card = (model_dir / "README.md").read_text(encoding="utf-8")
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    history = json.loads((model_dir / "history.json").read_text(encoding="utf-8"))
    sha = hashlib.sha256(segmented.read_bytes()).hexdigest()
    assert segmented.name in card and sha in card
    assert f"{segmented.stat().st_size:,} bytes" in card
    bpc = config["training"]["held_out_bits_per_char"]
    assert f"**{bpc:.3f}**" in card
    best = config["training"]["best_epoch"]
    during = next(e for e in history["epochs"] if e["epoch"] == best)["val_bits_per_char"]
    assert abs(bpc - during) < 0.05  # the same text; weights rounded, decoding refitted
    char5 = config["training"]["char5_bits_per_char"]
    assert char5 > 0 and f"{char5:.3f}" in card
    assert "No reader panel" in card and "Use and limits" in card
    assert "README.md" not in config["files"]  # documentation, not a model file


def test_info_prints_the_card_or_makes_one(model_dir, tmp_path):
    assert run("info", "--model", model_dir).output == (model_dir / "README.md").read_text(
        encoding="utf-8")
    old = tmp_path / "old"
    shutil.copytree(model_dir, old)
    (old / "README.md").unlink()  # a model written before cards
    out = json.loads(run("info", "--model", old, "--json").output)["card"]
    assert out.startswith("# old") and "How good it is" in out


def test_the_shipped_models_have_cards():
    for name in ("default", "base"):
        card = run("info", "--model", name).output
        assert "## Trained on" in card and "## How good it is" in card
    assert "Reader panel" in run("info", "--model", "default").output


def test_train_and_evaluate_report_the_same_number(model_dir, segmented):
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    plain = json.loads(run("evaluate", segmented, "--model", model_dir, "--json", "--no-cache",
                           "--dynamic", "0", "--no-ngram").output)["bits_per_char"]
    assert plain == config["training"]["held_out_bits_per_char"]
