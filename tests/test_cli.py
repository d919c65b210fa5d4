"""Every command through the CLI, and every bad input as one clear line with a non-zero exit."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import assert_clear_error, run

from wordlstm.vectors import Vectors, load_vectors, save_vectors


def test_segment_writes_one_paragraph_a_line(novel, tmp_path):
    out = tmp_path / "seg.txt"
    r = run("segment", novel, "-o", out, "--json", "-j", "2")
    summary = json.loads(r.stdout)
    assert summary["lines"] == len(out.read_text(encoding="utf-8").splitlines())
    assert summary["files"][0]["encoding"] == "gb18030"
    assert "  " not in out.read_text(encoding="utf-8")


def test_train_takes_segmenter_settings_from_the_segmented_file(tmp_path, vectors_file):
    src = tmp_path / "names.txt"
    src.write_text("\n".join(["Saurus", "Raptor", "Titan", "Rex"] * 40) + "\n", encoding="utf-8")
    run("segment", src, "-o", tmp_path / "c.txt", "--unit", "char", "-q")
    assert json.loads((tmp_path / "c.txt.json").read_text())["segmenter"]["unit"] == "char"
    run("train-vectors", tmp_path / "c.txt", "-o", tmp_path / "v", "--size", 8, "--min-count", 1,
        "--epochs", 2, "-q")
    run("train", tmp_path / "c.txt", "--vectors", tmp_path / "v", "-o", tmp_path / "m", "--lines",
        "--window", 4, "--units", 8, "--layers", 1, "--epochs", 1, "-q")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["segmenter"]["unit"] == "char"
    assert config["model"]["head"] == "softmax"  # --head auto: a character model
    out = json.loads(run("continue-text", "--model", tmp_path / "m", "--lines", 3, "--seed", 1,
                         "--json").stdout)
    assert all(" " not in name for name in out["texts"])  # characters join without spaces


def test_train_vectors_writes_word2vec_and_settings(segmented, tmp_path):
    r = run("train-vectors", segmented, "-o", tmp_path / "v", "--size", 12, "--epochs", 2,
            "--min-count", 2, "--json")
    summary = json.loads(r.stdout)
    assert load_vectors(tmp_path / "v.bin").dim == 12
    assert json.loads((tmp_path / "v.json").read_text())["settings"]["size"] == 12
    assert summary["words_per_s"] > 0
    run("train-vectors", segmented, "-o", tmp_path / "t", "--size", 4, "--epochs", 1,
        "--min-count", 2, "--text", "-q")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8").split("\n")[0].endswith(" 4")


def test_train_and_continue_text(segmented, vectors_file, tmp_path):
    out = tmp_path / "m"
    run("train", segmented, "--vectors", vectors_file, "-o", out, "--window", 5, "--units", 8,
        "--layers", 1, "--epochs", 1, "-q")
    r = run("continue-text", "老王笑道", "--model", out, "-n", 12, "--seed", 3, "--json")
    result = json.loads(r.stdout)
    assert result["words"] == [12] and result["texts"][0]
    again = json.loads(run("continue-text", "老王笑道", "--model", out, "-n", 12, "--seed", 3,
                           "--json").stdout)
    assert again["texts"] == result["texts"]
    # Streamed to the terminal word by word: the same text as --json, prompt first.
    plain = run("continue-text", "老王笑道", "--model", out, "-n", 12, "--seed", 3, "-q")
    assert plain.stdout == result["texts"][0] + "\n"


def test_continue_text_samples_and_until(model_dir):
    args = ["continue-text", "小李", "--model", model_dir, "-n", 40, "--samples", 3, "--seed", 1,
            "--json"]
    free = json.loads(run(*args).stdout)["texts"]
    assert len(free) == 3 and len(set(free)) > 1
    # A punctuation mark (always a whole token) that sample 0 is known to write.
    mark = next(c for c in free[0][len("小李"):] if c in "，。“”：？！")
    stopped = json.loads(run(*args, "--until", mark).stdout)["texts"]
    # Same seed: each stream is its free text cut right after its first `mark`, if it has one.
    for full, cut in zip(free, stopped):
        body = full[len("小李"):]
        expected = "小李" + body[: body.index(mark) + 1] if mark in body else full
        assert cut == expected


def test_continue_text_modes_from_the_cli(model_dir):
    r = run("continue-text", "--model", model_dir, "--acrostic", "老小", "--line-length", 4,
            "--seed", 1)
    lines = r.stdout.splitlines()
    assert [line[0] for line in lines] == ["老", "小"]
    r = run("continue-text", "老王", "--model", model_dir, "--lines", 2, "-n", 30, "--seed", 1,
            "--json")
    assert len(json.loads(r.stdout)["texts"]) == 2
    assert_clear_error(run("continue-text", "--model", model_dir, "--novel-only", ok=False), "--lines")


def test_continue_text_unknown_words(model_dir):
    r = run("continue-text", "老王和火星人", "--model", model_dir, "-n", 5)
    assert "火星人" in r.stderr
    assert_clear_error(run("continue-text", "xyz qqq", "--model", model_dir, ok=False),
                       "vocabulary")


def test_neighbors(model_dir, vectors_file):
    r = run("neighbors", "老王", "--model", model_dir, "-k", 3, "--json")
    result = json.loads(r.stdout)
    assert len(result["neighbors"]) == 3 and result["neighbors"][0]["word"] != "老王"
    assert len(run("neighbors", "老王", "--vectors", vectors_file, "-k", 2).stdout.splitlines()) == 2
    assert_clear_error(run("neighbors", "火星人", "--model", model_dir, ok=False), "火星人")


# --- bad input: one clear line, non-zero exit, nothing half-written -------------------------

def test_missing_empty_and_binary_inputs(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    binary = tmp_path / "img.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    for path, words in ((tmp_path / "missing.txt", "no such file"), (empty, "empty"),
                        (binary, "binary")):
        assert_clear_error(run("segment", path, "-o", tmp_path / "o.txt", ok=False), words)
        assert_clear_error(run("train-vectors", path, "-o", tmp_path / "v", ok=False), str(path))
        assert not (tmp_path / "o.txt").exists()


def test_undecodable_bytes_name_file_and_offset(tmp_path):
    bad = tmp_path / "bad.txt"
    good = "第一回\r\n宝玉笑道：好。\r\n".encode()
    bad.write_bytes(good + b"\xff\xff" + "后来\r\n".encode())
    r = run("segment", bad, "-o", tmp_path / "o.txt", "--encoding", "utf-8", ok=False)
    assert_clear_error(r, str(bad), f"byte offset {len(good)}", "line 3")
    assert not (tmp_path / "o.txt").exists()
    r = run("segment", bad, "-o", tmp_path / "o.txt", "--encoding", "utf-8", "--errors", "replace")
    assert "replaced 2" in r.stderr


def test_vectors_not_word2vec(segmented, tmp_path):
    fake = tmp_path / "fake.bin"
    fake.write_text("这不是词向量\n")
    assert_clear_error(run("train", segmented, "--vectors", fake, "-o", tmp_path / "m", ok=False),
                       "word2vec")
    assert_clear_error(run("neighbors", "老王", "--vectors", fake, ok=False), "word2vec")


def test_model_dir_with_mismatched_vectors(model_dir, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    v = load_vectors(d / "vectors.bin")
    save_vectors(Vectors(v.words[:-1], v.matrix[:-1]), d / "vectors.bin")
    assert_clear_error(run("continue-text", "老王", "--model", d, ok=False), "do not belong together")
    # neighbors reads only the vectors, but checks them against config.json too
    assert_clear_error(run("neighbors", "老王", "--model", d, ok=False), "do not belong together")


def test_model_dir_from_older_version(model_dir, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    config = json.loads((d / "config.json").read_text())
    config["format_version"] = 0
    (d / "config.json").write_text(json.dumps(config))
    assert_clear_error(run("continue-text", "老王", "--model", d, ok=False), "version 0", "retrain")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_non_root(novel, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    assert_clear_error(run("segment", novel, "-o", ro / "o.txt", ok=False), "cannot write")


def test_unwritable_output(novel, segmented, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    # A path under a regular file cannot be created, even by root.
    assert_clear_error(run("segment", novel, "-o", blocker / "o.txt", ok=False), "cannot write")
    assert_clear_error(run("train-vectors", segmented, "-o", blocker / "v", ok=False), "cannot write")
    assert_clear_error(run("train", segmented, "--vectors", "x", "-o", blocker / "m", ok=False),
                       "cannot write")
    r = run("segment", novel, "-o", tmp_path, ok=False)  # click's own usage error
    assert r.exit_code == 2 and "is a directory" in r.output and "Traceback" not in r.output


def test_ctrl_c_during_training_says_how_to_resume(segmented, vectors_file, tmp_path, monkeypatch):
    import wordlstm.train as train_mod

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "train", interrupted)
    r = run("train", segmented, "--vectors", vectors_file, "-o", tmp_path / "m", "-q", ok=False)
    assert r.exit_code == 130
    assert_clear_error(r, "interrupted", "--resume")


def test_training_interrupted_counts_the_saved_epochs(tmp_path):
    from wordlstm.train import TrainingInterrupted

    assert TrainingInterrupted(tmp_path / "m").epochs_saved == 0
    (tmp_path / "m" / "checkpoint").mkdir(parents=True)
    (tmp_path / "m" / "checkpoint" / "state.json").write_text('{"epoch": 2}')
    err = TrainingInterrupted(tmp_path / "m")
    assert isinstance(err, KeyboardInterrupt) and err.epochs_saved == 2
    assert str(err).startswith("interrupted; 2 epoch(s) saved in ") and "--resume" in str(err)


def test_help_and_segment_do_not_import_keras(novel, tmp_path):
    code = ("import sys; from click.testing import CliRunner; from wordlstm.cli import main; "
            f"r = CliRunner().invoke(main, ['segment', {str(novel)!r}, "
            f"'-o', {str(tmp_path / 's.txt')!r}, '-q']); "
            "assert r.exit_code == 0, r.output; "
            "CliRunner().invoke(main, ['--help']); "
            "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch', 'gensim') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_evaluate_reports_bits_per_char_accuracy_and_baseline(model_dir, segmented):
    r = run("evaluate", segmented, "--model", model_dir, "--json")
    result = json.loads(r.stdout)
    assert {"bits_per_char", "bits_per_word", "perplexity", "oov_share", "top1", "top5",
            "top10", "positions", "baseline_top1"} <= set(result)
    assert 0 <= result["top1"] <= result["top5"] <= result["top10"] <= 1
    assert result["positions"] > 0 and result["bits_per_char"] > 0
    assert result["perplexity"] == pytest.approx(2 ** result["bits_per_word"])
    whole = json.loads(run("evaluate", segmented, "--model", model_dir, "--whole-file",
                           "--json").stdout)
    assert whole["positions"] > result["positions"] * 10
    text = run("evaluate", segmented, "--model", model_dir).stdout
    assert "bits/char" in text and "top1" in text


def test_evaluate_can_score_with_plain_cosine(model_dir, segmented):
    own = json.loads(run("evaluate", segmented, "--model", model_dir, "--json").stdout)
    plain = json.loads(run("evaluate", segmented, "--model", model_dir, "--decode", "cosine",
                           "--json").stdout)
    assert own["positions"] == plain["positions"]
    assert (own["top1"], own["bits_per_char"]) != (plain["top1"], plain["bits_per_char"])


def test_train_rejects_bad_loss_settings(segmented, vectors_file, tmp_path):
    r = run("train", segmented, "--vectors", vectors_file, "-o", tmp_path / "m",
            "--loss-temperature", "0", ok=False)
    assert_clear_error(r, "loss-temperature")
    assert not (tmp_path / "m" / "config.json").exists()
