"""Hostile input to the CLI, round two (issue 20): each case one `error:` line, nothing on
stdout, no traceback."""

import json
import os
import subprocess
import sys

import pytest
from conftest import assert_clear_error, run

from wordlstm.errors import UserError


def _cli(*args, env=None):
    """The real command in a subprocess (its own environment, its own stdout)."""
    return subprocess.run([sys.executable, "-m", "wordlstm.cli", *map(str, args)], check=False,
                          capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=300)


def test_a_negative_seed_is_refused(model_dir):
    r = run("continue-text", "老王", "--model", model_dir, "--seed", "-1", ok=False)
    assert r.exit_code != 0 and "Traceback" not in r.output and "--seed" in r.output
    from wordlstm.errors import UserError
    from wordlstm.writer import Request

    with pytest.raises(UserError, match="seed"):
        Request(prompt="老王", seed=-1)


def test_a_prompt_with_undecodable_bytes_is_one_error(model_dir):
    r = _cli("continue-text", os.fsdecode(b"\xff\xfe\xe8\x80\x81\xe7\x8e\x8b"), "--model",
             model_dir, "-n", "3")
    assert_clear_error(r, "prompt", "surrogate")
    assert r.stdout == ""


def test_a_json_lone_surrogate_is_refused():
    from wordlstm.errors import UserError
    from wordlstm.writer import Request

    with pytest.raises(UserError, match="prompt"):
        Request(prompt=json.loads('"\\ud800老王"'))


@pytest.mark.parametrize("backend", ["bogus", "torch"])
def test_an_unusable_backend_is_named(model_dir, backend):
    import importlib.util

    if backend == "torch" and importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed here")
    r = _cli("info", env={"KERAS_BACKEND": backend})
    assert_clear_error(r, "KERAS_BACKEND")
    assert r.stdout == ""


def test_a_network_too_large_for_memory_is_refused_before_allocating(segmented, vectors_file,
                                                                     tmp_path):
    r = run("train", segmented, "--vectors", vectors_file, "-o", tmp_path / "m", "--units",
            "60000", "--epochs", "1", ok=False)
    assert_clear_error(r, "GiB", "--units")
    assert not (tmp_path / "m").exists()


def test_one_target_a_batch_is_refused(segmented, vectors_file, tmp_path):
    r = run("train", segmented, "--vectors", vectors_file, "-o", tmp_path / "m", "--window",
            "1", "--batch-size", "1", "--epochs", "1", ok=False)
    assert_clear_error(r, "--batch-size")
    assert not (tmp_path / "m").exists()


def test_another_files_unknown_characters_are_priced_by_the_model(model_dir, segmented,
                                                                  tmp_path):
    """A file of characters the model never saw must not score better than its own text."""
    junk = tmp_path / "emoji.seg.txt"
    junk.write_text(("😀 🎉 😂 老王 说 。\n" * 300), encoding="utf-8")
    own = json.loads(run("evaluate", segmented, "--model", model_dir, "--whole-file",
                         "--json").output)
    other = run("evaluate", junk, "--model", model_dir, "--whole-file")
    scored = json.loads(run("evaluate", junk, "--model", model_dir, "--whole-file",
                            "--json").output)
    assert scored["oov_share"] > 0.4
    assert scored["bits_per_char"] > own["bits_per_char"] + 3
    assert "warning:" in other.output and "never saw" in other.output


@pytest.mark.parametrize("k", ["0", "-1"])
def test_neighbors_needs_a_positive_count(model_dir, k):
    r = run("neighbors", "老王", "--model", model_dir, "-k", k, ok=False)
    assert r.exit_code != 0 and "Traceback" not in r.output and "-k" in r.output


def test_a_failed_continuation_prints_nothing_on_stdout(model_dir):
    r = _cli("continue-text", "𠀀𠀁𠀂", "--model", model_dir, "-n", "3")
    assert_clear_error(r, "vocabulary")
    assert r.stdout == ""


@pytest.mark.parametrize("flags", [["--paragraph-bias", "1e39"], ["--dry-base", "1e300"],
                                   ["--temperature", "5e-324"], ["--form", "50x50"],
                                   ["--form", ""]])
def test_numbers_past_any_effect_are_refused_by_name(model_dir, poem_model, flags):
    model = poem_model / "m" if flags[0] == "--form" else model_dir
    extra = ["--lines", "1"] if flags[0] == "--form" else []
    r = run("continue-text", "春", "--model", model, "-n", "5", *flags, *extra, ok=False)
    assert_clear_error(r, flags[0].lstrip("-").split("-")[0])


def test_library_messages_name_fields_and_the_cli_says_its_flags(model_dir):
    from wordlstm.sampling import SamplingConfig

    with pytest.raises(UserError, match="`top_p`"):
        SamplingConfig(top_p=2)
    for flags, said in ((["--top-p", "2"], "--top-p"), (["-n", "0"], "--length"),
                        (["--novel-only"], "--lines"), (["--min-p", "1"], "--min-p")):
        result = run("continue-text", "老王", "--model", model_dir, *flags, ok=False)
        assert_clear_error(result, said)
        assert "`" not in result.output, result.output
