"""A model card (the Hugging Face habit): `README.md` in every model directory.

What a person deciding whether to use a model wants to know, written by `train` from what it
knows at the end: the text it read (file, size, SHA-256, how much was held out), the command
and settings, held-out bits/char beside a character 5-gram on the same split, the latest
reader panel if one was run (`readers` in config.json, added by whoever ran it), and what it
is for and not for. `wordlstm info --model DIR` prints it. Documentation, not a model file:
nothing loads it, so it is not in config.json's hash record and may be edited.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .modeldir import ModelDirConfig

CARD = "README.md"
BASELINE_MAX_TOKENS = 3_000_000  # larger corpora (a base) skip the char 5-gram on the card


def corpus_record(segmented: str | os.PathLike) -> dict:
    """The training file as the card names it: name, size and SHA-256 (streamed)."""
    h = hashlib.sha256()
    size = 0
    with open(segmented, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            size += len(block)
    return {"file": Path(segmented).name, "bytes": size, "sha256": h.hexdigest()}


def char_baseline(segmented: str | os.PathLike, holdout, order: int = 5) -> float | None:
    """Held-out bits/char of a character `order`-gram fitted on the training part of the same
    split (what a model should beat; the reader panels' Markov chain)."""
    from .charngram import CharNgram
    from .split import split_paragraphs

    train, held = split_paragraphs(segmented, holdout)
    text = "\n".join("".join(t) for t in held)
    if not train or not text or sum(map(len, train)) > BASELINE_MAX_TOKENS:
        return None  # nothing to compare, or a corpus too large for plain dicts
    return CharNgram("\n".join("".join(t) for t in train) + "\n", order).bits_per_char(
        text, history="\n")


def card_text(name: str, config: ModelDirConfig, history: dict,
              baseline: float | None = None) -> str:
    """The card's Markdown from a model dir's config.json (parsed: modeldir.ModelDirConfig)
    and history.json."""
    epochs = history.get("epochs") or []
    lines_model = config.lines is not None
    out = [f"# {name}", ""]
    out += _card_intro(config, lines_model)
    out += _card_trained_on(config)
    out += _card_how_made(config, len(epochs))
    out += _card_how_good(config, epochs, baseline)
    out += _card_use(lines_model)
    return "\n".join(out) + "\n"


def _card_intro(config: ModelDirConfig, lines_model: bool) -> list[str]:
    """The opening paragraph: what kind of model this is, in a sentence."""
    model = config.model
    kind = "a line model (names or poems, one a line)" if lines_model else "a prose model"
    return [f"A wordlstm model: {kind}. A {model.layers}-layer LSTM of "
            f"{model.units} units reads the text word by word and "
            + ("regresses the next word's vector" if model.head == "vector"
               else "predicts the next word (softmax)")
            + f", decoded against its {model.vocab_size:,}-word vocabulary "
            f"({model.dim}-d vectors).", ""]


def _card_trained_on(config: ModelDirConfig) -> list[str]:
    """The "Trained on" section: the text read and how much of it was held out, so a reader can tell
    what the held-out figures measure."""
    training = config.training
    corpus = training.corpus_file or {"file": training.corpus or "?"}
    holdout = training.holdout
    out = ["## Trained on", ""]
    size = f", {corpus['bytes']:,} bytes" if "bytes" in corpus else ""
    sha = f", SHA-256 `{corpus['sha256']}`" if "sha256" in corpus else ""
    out.append(f"- `{corpus.get('file', '?')}`{size}{sha}.")
    if training.tokens:
        held = "lines drawn at random" if holdout.lines else "the file's tail"
        out.append(f"- {training.tokens:,} tokens: {training.train_tokens or 0:,} "
                   f"trained on, {training.val_tokens or 0:,} held out "
                   f"({held}, {holdout.fraction:.0%}), never read by any "
                   "training step.")
    if training.init_from:
        out.append(f"- Started from the weights of `{training.init_from}` (fine-tuned).")
    return out


def _card_how_made(config: ModelDirConfig, n_epochs: int) -> list[str]:
    """The "How it was made" section: the command and settings, so the model can be made again."""
    training = config.training
    out = ["", "## How it was made", ""]
    if training.command:
        out += ["```", training.command, "```", ""]
    out.append("- Settings: " + ", ".join(f"{k} {v}" for k, v in training.settings().items())
               + f"; {n_epochs} epochs run, epoch {training.best_epoch} kept.")
    return out


def _card_how_good(config: ModelDirConfig, epochs: list, baseline: float | None) -> list[str]:
    """The "How good it is" section: held-out bits/char beside the 5-gram baseline, the test-time
    adaptation `evaluate` adds, and the reader panel if one was run."""
    training, decoder = config.training, config.decoder
    best = training.best_epoch
    row = next((e for e in epochs if e.get("epoch") == best), epochs[-1] if epochs else {})
    bpc = training.held_out_bits_per_char
    if bpc is None:
        bpc = row.get("val_bits_per_char")
    out = ["", "## How good it is", ""]
    if bpc is not None:
        out.append(f"- Held-out bits/char, the network alone: **{bpc:.3f}**"
                   + (f" (a character 5-gram on the same split: {baseline:.3f}; lower is "
                      "better)" if baseline is not None else "") + ".")
    parts = []
    if decoder.cache is not None and decoder.cache.weight:
        parts.append(f"continuous cache weight {decoder.cache.weight:g}")
    if decoder.dynamic_rate:
        parts.append(f"dynamic evaluation at {decoder.dynamic_rate:g}")
    if decoder.ngram is not None and decoder.ngram.weight:
        parts.append(f"word {decoder.ngram.order}-gram weight {decoder.ngram.weight:g}")
    if parts:
        out.append("- `wordlstm evaluate` scores with its test-time adaptation ("
                   + ", ".join(parts) + "), fitted on training text: lower still.")
    readers = config.readers
    if readers:
        out.append(f"- Reader panel ({readers.get('round', '')}): {readers.get('summary', '')}")
    else:
        out.append("- No reader panel was run for this model (`bench/readers.py` runs one).")
    return out


def _card_use(lines_model: bool) -> list[str]:
    """The "Use and limits" section: what the model is for and, as plainly, what it is not for."""
    out = ["", "## Use and limits", ""]
    if lines_model:
        out.append("- For making new lines in the style of its list or poems "
                   "(`continue-text --lines N`; `--novel-only` drops lines it was trained on).")
    else:
        out.append("- For continuing text in the style of its novel: co-writing, pastiche, "
                   "exploring the novel's words (`continue-text`, `serve`, `neighbors`).")
        out.append("- It does not hold a story: readers find its sentences the novel's words "
                   "in dialogue that says little, the scene lost within a sentence or two. "
                   "One novel is little text for a language model; start from the base model "
                   "(`train --from base`) for your own.")
    out.append("- It writes only what its training text taught it, including that text's "
               "biases; it copies little of it (long copied spans are rare) but it is not a "
               "source of facts.")
    return out


def write_card(model_dir: Path, name: str | None = None, baseline: float | None = None) -> None:
    """(Re)write `model_dir`/README.md from its config.json and history.json."""
    from .modeldir import read_config, read_json
    from .textio import atomic_output

    model_dir = Path(model_dir)
    config = read_config(model_dir)  # checked: what was just written reads back
    history = read_json(model_dir / "history.json") if (model_dir / "history.json").is_file() \
        else {}
    text = card_text(name or model_dir.name, config, history,
                     baseline if baseline is not None else config.training.char5_bits_per_char)
    with atomic_output(model_dir / CARD) as f:
        f.write(text)


def model_card(model_dir=None) -> str:
    """The card of a model dir (`info --model`): its README.md, or one made from its
    config.json for a model written before cards existed."""
    from .modeldir import read_config, read_json, resolve_model_dir

    model_dir = resolve_model_dir(model_dir)
    config = read_config(model_dir)  # checked: a card only for a real model dir
    path = model_dir / CARD
    if path.is_file():
        return path.read_text(encoding="utf-8", errors="replace")
    history = read_json(model_dir / "history.json") if (model_dir / "history.json").is_file() \
        else {}
    return card_text(model_dir.name, config, history, config.training.char5_bits_per_char)
