"""The `wordlstm` command line: small click sub-commands over the library modules.

Heavy libraries load inside the command that needs them: `segment`, `neighbors` and `--help`
never import Keras, and `continue-text` imports it only the first time a model is used.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from pathlib import Path

import click

from . import __version__
from .errors import UserError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out


def _fail(message: str, code: int = 1):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def friendly(fn):
    """Turn expected failures into one clear line and a non-zero exit, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            _fail(str(err))
        except MemoryError:
            _fail("out of memory; try a smaller --batch-size or corpus")
        except OSError as err:
            where = f"{err.filename}: " if getattr(err, "filename", None) else ""
            _fail(f"{where}{err.strerror or err}")

    return wrapper


def progress_bar(total, unit, quiet, desc, scale=False):
    """A tqdm bar on stderr (rate and ETA), or None when --quiet."""
    if quiet:
        return None
    from tqdm import tqdm  # well-kept, tiny; gives rate + ETA in the terminal and logs

    return tqdm(total=total, unit=unit, unit_scale=scale, desc=desc, file=sys.stderr,
                dynamic_ncols=True, mininterval=0.5)


def _say(quiet: bool):
    return (lambda *a, **k: None) if quiet else (lambda msg: click.echo(msg, err=True))


quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress or summary on stderr.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wordlstm")
def main():
    """Learn the style of a Chinese novel and continue text in it.

    \b
    wordlstm segment novel.txt -o novel.seg.txt
    wordlstm train-vectors novel.seg.txt -o models/novel/vectors
    wordlstm train novel.seg.txt --vectors models/novel/vectors -o models/novel
    wordlstm continue-text "宝玉笑道" --model models/novel -n 200
    """


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Segmented text: one paragraph a line, words split by spaces.")
@click.option("--encoding", default=None, help="Input encoding (default: detect per file).")
@click.option("--errors", type=click.Choice(["strict", "replace"]), default="strict",
              show_default=True, help="On undecodable bytes: stop, or replace and count them.")
@click.option("--user-dict", type=click.Path(dir_okay=False), default=None,
              help="jieba user dictionary (e.g. character names), one word a line.")
@click.option("--engine", type=click.Choice(["auto", "jieba", "rjieba"]), default="auto",
              show_default=True, help="rjieba gives jieba's exact tokens ~20x faster.")
@click.option("--unit", type=click.Choice(["word", "char"]), default="word", show_default=True)
@click.option("--no-hmm", is_flag=True, help="Turn off jieba's HMM for unknown words.")
@click.option("--to-simplified", is_flag=True,
              help="Convert traditional to simplified characters first (OpenCC t2s).")
@click.option("--strip-boilerplate", is_flag=True,
              help="Drop download-site banners: lines with a URL or site words repeated 3+ times.")
@click.option("-j", "--jobs", type=int, default=0, help="Processes (default: all cores).")
@quiet_option
@json_option
@friendly
def segment(inputs, output, encoding, errors, user_dict, engine, unit, no_hmm, to_simplified,
            strip_boilerplate, jobs, quiet, as_json):
    """Segment text files into words with jieba (normalising encodings and indentation)."""
    from .segment import SegmenterConfig, default_jobs, segment_files, sidecar_path
    from .textio import atomic_output, check_writable, detect_encoding, write_json

    check_writable(output)
    for path in inputs:  # missing, empty or binary inputs fail here, before any work
        if not os.path.isfile(path):
            raise UserError(f"{path}: no such file")
        if encoding is None:
            detect_encoding(path)
    config = SegmenterConfig(engine=engine, user_dict=user_dict, hmm=not no_hmm, unit=unit,
                             to_simplified=to_simplified)
    total = sum(os.path.getsize(p) for p in inputs if os.path.isfile(p))
    bar = progress_bar(total, "B", quiet, "segment", scale=True)
    try:
        with atomic_output(output) as out:
            stats = segment_files(list(inputs), out, config, encoding=encoding, errors=errors,
                                  jobs=jobs or default_jobs(), progress=bar,
                                  strip_boilerplate=strip_boilerplate)
    finally:
        if bar is not None:
            bar.close()
    summary = stats.to_json() | {"output": output, "segmenter": config.to_json()}
    write_json(sidecar_path(output), summary, indent=1)  # `train` reads the settings from here
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
    elif not quiet:
        click.echo(f"{output}: {stats.lines:,} lines, {stats.tokens:,} tokens, "
                   f"{stats.distinct:,} distinct words from {stats.bytes / 1e6:.1f} MB "
                   f"({', '.join(sorted({f['encoding'] for f in stats.files}))}) in "
                   f"{stats.seconds:.1f} s, {stats.mb_per_s:.2f} MB/s, engine {stats.engine}", err=True)
        if stats.replaced:
            click.echo(f"replaced {stats.replaced:,} undecodable bytes with U+FFFD", err=True)
        if stats.chapters:
            click.echo(f"{len(stats.chapters):,} chapter headings kept as their own lines "
                       "(listed by --json)", err=True)
        if strip_boilerplate:
            click.echo(f"dropped {stats.dropped:,} boilerplate lines ({len(stats.boilerplate)} "
                       "distinct)" + "".join(f"\n  {b['count']:>6} x {b['line']}"
                                             for b in stats.boilerplate[:10]), err=True)


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the proposed user dictionary here (jieba format) instead of stdout.")
@click.option("--min-count", default=10, show_default=True, help="Occurrences a name needs.")
@click.option("--encoding", default=None, help="Input encoding (default: detect per file).")
@quiet_option
@json_option
@friendly
def names(inputs, output, min_count, encoding, quiet, as_json):
    """Propose a user dictionary of the novel's names that jieba splits (麝 月 -> 麝月).

    Review it, then pass it to `segment --user-dict`.
    """
    from .names import propose_names, repaired_tokens
    from .segment import SegmenterConfig, default_jobs, segment_lines
    from .textio import atomic_output, check_writable, iter_lines, normalize_line

    if output:
        check_writable(output)

    def raw_lines():  # streamed: read again for the repair count
        return (line for path in inputs for line in iter_lines(path, encoding=encoding))

    found = propose_names(segment_lines(raw_lines(), SegmenterConfig(), default_jobs()),
                          min_count=min_count)
    if not found:
        raise UserError("no split names found; try a lower --min-count")
    text = "".join(f"{c.name} {c.count} nr\n" for c in found)
    report = None
    if output:
        with atomic_output(output) as f:
            f.write(text)
        lines = (n for n in map(normalize_line, raw_lines()) if n)
        report = repaired_tokens(lines, [c.name for c in found], output)
    if as_json:
        click.echo(json.dumps({"names": [c.__dict__ for c in found], "repair": report},
                              ensure_ascii=False))
    elif output is None:
        click.echo(text, nl=False)
    if report and not quiet and not as_json:
        click.echo(f"{output}: {len(found)} names; as single tokens {report['whole_before']:,} "
                   f"times before, {report['whole_after']:,} with it "
                   f"({report['repaired']:,} repaired)", err=True)


@main.command("train-vectors")
@click.argument("segmented", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Output prefix: writes PREFIX.bin (word2vec binary) and PREFIX.json.")
@click.option("--size", default=200, show_default=True, help="Vector dimensions.")
@click.option("--window", default=8, show_default=True, help="Context window.")
@click.option("--sg", is_flag=True, help="Skip-gram instead of CBOW.")
@click.option("--negative", default=25, show_default=True, help="Negative samples.")
@click.option("--sample", default=1e-4, show_default=True, help="Down-sampling of frequent words.")
@click.option("--epochs", default=15, show_default=True)
@click.option("--min-count", default=5, show_default=True, help="Ignore rarer words.")
@click.option("--workers", default=0, help="Threads (default: all cores).")
@click.option("--seed", default=1, show_default=True)
@click.option("--text", "as_text", is_flag=True, help="Write the word2vec text format instead.")
@quiet_option
@json_option
@friendly
def train_vectors(segmented, output, size, window, sg, negative, sample, epochs, min_count,
                  workers, seed, as_text, quiet, as_json):
    """Train word2vec vectors (gensim) on a segmented file."""
    from .textio import check_writable
    from dataclasses import asdict

    from .textio import write_json
    from .vectors import Word2VecSettings, save_vectors, train_word2vec

    _check_segmented(segmented)
    prefix = Path(output)
    if prefix.suffix in (".bin", ".txt"):
        prefix = prefix.with_suffix("")
    path = prefix.with_name(prefix.name + (".txt" if as_text else ".bin"))
    check_writable(path)
    settings = Word2VecSettings(size=size, window=window, sg=int(sg), negative=negative,
                                sample=sample, epochs=epochs, min_count=min_count,
                                workers=workers, seed=seed)
    bar = progress_bar(epochs, "epoch", quiet, "word2vec")
    t0 = time.perf_counter()
    try:
        vectors = train_word2vec(segmented, settings, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    save_vectors(vectors, path, binary=not as_text)
    words = vectors.train_stats["corpus_words"] * epochs
    summary = {"output": str(path), "words": len(vectors), "dim": vectors.dim,
               "seconds": round(seconds, 2), "words_per_s": round(words / seconds),
               "settings": asdict(settings), "corpus": str(segmented)}
    write_json(prefix.with_name(prefix.name + ".json"), summary)
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
    elif not quiet:
        click.echo(f"{path}: {len(vectors):,} words x {vectors.dim} dims in {seconds:.1f} s "
                   f"({summary['words_per_s']:,} words/s)", err=True)


def _check_segmented(path):
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{path}: no such file")
    if p.stat().st_size == 0:
        raise UserError(f"{path}: file is empty")
    with open(p, "rb") as f:
        head = f.read(65536)
    if b"\x00" in head:
        raise UserError(f"{path}: looks like a binary file, not segmented text")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 4:
            raise UserError(f"{path}: not UTF-8 at byte offset {err.start}; "
                            "segmented files are written by `wordlstm segment`") from None


@main.command()
@click.argument("segmented", type=click.Path(dir_okay=False))
@click.option("--vectors", "vectors_path", required=True, help="word2vec .bin/.txt file or prefix.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Model directory to write.")
@click.option("--window", default=20, show_default=True, help="Words the model reads.")
@click.option("--units", default=256, show_default=True, help="LSTM size.")
@click.option("--layers", default=1, show_default=True, help="Stacked LSTM layers.")
@click.option("--dropout", default=0.0, show_default=True, help="Dropout after each LSTM.")
@click.option("--head", type=click.Choice(["vector", "softmax"]), default="vector", show_default=True,
              help="Predict the next word's vector (the product), or a softmax over the "
                   "vocabulary (the slower baseline, for comparison).")
@click.option("--loss", type=click.Choice(["contrastive", "cosine", "mse", "vmf", "margin"]),
              default="contrastive", show_default=True,
              help="Loss of the vector head: contrastive (cosine against the batch's other "
                   "target words), cosine, mse, vmf (von Mises-Fisher NLL) or margin (against "
                   "the most similar wrong word); see bench/RESULTS.md.")
@click.option("--loss-temperature", default=0.05, show_default=True,
              help="Temperature of the contrastive loss.")
@click.option("--margin", default=0.5, show_default=True, help="Margin of the margin loss.")
@click.option("--decode", type=click.Choice(["prior", "cosine"]), default="prior",
              show_default=True,
              help="Vector head: nearest word by cosine plus log word frequency (tau fitted "
                   "after training), or by cosine alone (the classic recipe).")
@click.option("--train-embedding", is_flag=True, help="Fine-tune the input embedding.")
@click.option("--target", type=click.Choice(["raw", "centered"]), default="centered",
              show_default=True,
              help="Regress unit word vectors, or unit vectors after removing their mean.")
@click.option("--epochs", default=10, show_default=True)
@click.option("--batch-size", default=256, show_default=True)
@click.option("--lr", "learning_rate", default=1e-3, show_default=True, help="Adam learning rate.")
@click.option("--val-fraction", default=0.05, show_default=True, help="Held-out tail of the corpus.")
@click.option("--seed", default=1, show_default=True)
@click.option("--patience", default=2, show_default=True,
              help="Stop after this many epochs without a better validation top-1, keeping "
                   "the best epoch (0: train every epoch, keep the last).")
@click.option("--user-dict", type=click.Path(dir_okay=False), default=None,
              help="Segmenter settings for prompts; by default those `segment` recorded in "
                   "SEGMENTED.json.")
@click.option("--engine", type=click.Choice(["auto", "jieba", "rjieba"]), default=None)
@click.option("--unit", type=click.Choice(["word", "char"]), default=None)
@click.option("--to-simplified/--no-to-simplified", default=None)
@click.option("--lines", "lines", is_flag=True,
              help="Each line is a document (poems, names): generation makes whole lines.")
@click.option("--devices", default="1", show_default=True,
              help="'all' or N: data-parallel training over that many GPUs (or CPU devices).")
@click.option("--precision", type=click.Choice(["float32", "mixed"]), default="float32",
              show_default=True, help="Mixed precision speeds up training on recent GPUs.")
@click.option("--resume", is_flag=True, help="Continue from the last epoch's checkpoint.")
@quiet_option
@friendly
def train(segmented, vectors_path, output, window, units, layers, dropout, head, loss,
          loss_temperature, margin, decode, train_embedding, target, epochs, batch_size,
          learning_rate, val_fraction, seed, patience, user_dict, engine, unit, to_simplified,
          lines, devices, precision, resume, quiet):
    """Train the LSTM that predicts the next word's vector."""
    _check_segmented(segmented)
    if not 0 <= val_fraction < 1:
        raise UserError("--val-fraction must be in [0, 1)")
    if window < 1 or units < 1 or layers < 1 or epochs < 1 or batch_size < 1:
        raise UserError("--window, --units, --layers, --epochs and --batch-size must be positive")
    if loss_temperature <= 0 or margin < 0 or patience < 0:
        raise UserError("--loss-temperature must be positive, --margin and --patience not negative")
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory")
    from .backend import summary_line
    from .model import ModelConfig
    from .segment import recorded_config
    from .textio import check_writable
    from .train import TrainConfig, train as run_train

    check_writable(out / "config.json")
    say = _say(quiet)
    say(summary_line())
    cfg = ModelConfig(window=window, units=units, layers=layers, dropout=dropout, loss=loss,
                      train_embedding=train_embedding, target=target, head=head,
                      temperature=loss_temperature, margin=margin)
    tcfg = TrainConfig(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                       val_fraction=val_fraction, seed=seed, lines=lines, devices=devices,
                       precision=precision, patience=patience, decode=decode)
    seg = recorded_config(segmented, engine=engine, user_dict=user_dict, unit=unit,
                          to_simplified=to_simplified)
    if seg.user_dict and not os.path.isfile(seg.user_dict):
        raise UserError(f"{seg.user_dict}: user dictionary not found (it is copied into the model)")
    try:
        result = run_train(segmented, vectors_path, out, cfg, tcfg, seg, resume=resume,
                           verbose=1 if sys.stderr.isatty() and not quiet else 0, log=say)
    except KeyboardInterrupt:
        ckpt = out / "checkpoint" / "state.json"
        done = json.loads(ckpt.read_text())["epoch"] if ckpt.is_file() else 0
        _fail(f"interrupted; {done} epoch(s) saved in {out / 'checkpoint'}: "
              "run the same command with --resume to continue", 130)
    say(f"{out}: model saved ({len(result['history'])} epochs)")


@main.command("continue-text")
@click.argument("prompt", default="")
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="Model directory (default: the shipped 红楼梦 model).")
@click.option("-n", "--length", default=100, show_default=True,
              help="Words to generate (the most per line with --lines).")
@click.option("--until", default=None, help="Stop once the text ends with this mark (e.g. 。”).")
@click.option("--seed", default=None, type=int, help="Random seed: same seed, same text.")
@click.option("--greedy", is_flag=True, help="Always take the nearest word (no sampling).")
@click.option("--temperature", default=0.03, show_default=True,
              help="Softmax temperature over the scores (0.03 x log-probabilities, or cosines "
                   "for --decode cosine models).")
@click.option("--top-k", default=10, show_default=True, help="Sample among the k best words.")
@click.option("--top-p", default=1.0, show_default=True, help="Nucleus sampling threshold.")
@click.option("--no-repeat-ngram", default=3, show_default=True,
              help="Never repeat an n-gram of this size (0: off).")
@click.option("--repetition-penalty", default=0.1, show_default=True,
              help="Subtracted from the score of recently used words.")
@click.option("--context", type=click.Choice(["carry", "window"]), default="carry",
              show_default=True, help="Carry LSTM state word to word, or re-read the last window.")
@click.option("--samples", default=1, show_default=True, help="Continuations, made as one batch.")
@click.option("--prefix", default="", help="Text fed to the model first to set the mood, not printed.")
@click.option("--acrostic", default=None, help="藏头诗: one line per character, starting with it.")
@click.option("--line-length", type=int, default=None,
              help="Words per acrostic line (default: the corpus's usual clause length).")
@click.option("--lines", "n_lines", type=int, default=None,
              help="Make N whole lines (line models: poems, names), each from PROMPT.")
@click.option("--novel-only", is_flag=True, help="With --lines: only lines not in the training file.")
@quiet_option
@json_option
@friendly
def continue_text(prompt, model_dir, length, until, seed, greedy, temperature, top_k, top_p,
                  no_repeat_ngram, repetition_penalty, context, samples, prefix, acrostic,
                  line_length, n_lines, novel_only, quiet, as_json):
    """Continue PROMPT in the style the model learned."""
    from .generate import SamplingConfig
    from .writer import Writer

    if length < 1 or samples < 1 or (n_lines is not None and n_lines < 1):
        raise UserError("--length, --samples and --lines must be positive")
    if temperature <= 0:
        raise UserError("--temperature must be positive (use --greedy for none)")
    if novel_only and n_lines is None:
        raise UserError("--novel-only goes with --lines N")
    say = _say(quiet or as_json)
    writer = Writer.load(model_dir, note=say)
    cfg = SamplingConfig(greedy=greedy, temperature=temperature, top_k=top_k, top_p=top_p,
                         no_repeat_ngram=no_repeat_ngram, repetition_penalty=repetition_penalty,
                         context=context)
    t0 = time.perf_counter()
    extra = {}
    if acrostic:
        texts = ["\n".join(writer.acrostic(acrostic, cfg, seed, prefix=prefix,
                                            line_length=line_length))]
    elif n_lines is not None:
        texts, dropped = writer.lines(prompt, n_lines, cfg, seed, prefix=prefix,
                                      max_words=length, novel_only=novel_only)
        extra["dropped_as_not_novel"] = dropped
        if novel_only:
            say(f"dropped {dropped} generated line(s) that are in the training file")
    else:
        stream = samples == 1 and not as_json  # one continuation: show each word as it comes
        if stream:
            click.echo(prompt, nl=False)
        on_word = (lambda w: (click.echo(w, nl=False), sys.stdout.flush())) if stream else None
        texts = writer.continue_text(prompt, length, cfg, seed, samples=samples, prefix=prefix,
                                     until=until, on_word=on_word)
        if stream:
            click.echo()
            sys.stdout.flush()  # before the summary on stderr
        texts = [prompt + t for t in texts]
    seconds = time.perf_counter() - t0
    if as_json:
        click.echo(json.dumps({"prompt": prompt, "model": str(writer.model_dir), "seed": seed,
                               "texts": texts, "words": writer.last_words,
                               "unknown": writer.unknown, "split": writer.split,
                               "seconds": round(seconds, 4), **extra}, ensure_ascii=False))
    elif acrostic or n_lines is not None or samples > 1:
        click.echo("\n\n".join(texts) if samples > 1 else "\n".join(texts))
    n_words = sum(writer.last_words)
    say(f"{n_words} words in {seconds:.2f} s ({n_words / max(seconds, 1e-9):,.0f} words/s)")


@main.command()
@click.argument("segmented", type=click.Path(dir_okay=False))
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="Model directory (default: the shipped model).")
@click.option("--whole-file", is_flag=True,
              help="Score every window of SEGMENTED, not the model's held-out tail of it.")
@click.option("--context", type=click.Choice(["window", "carry"]), default="window",
              show_default=True, help="Re-read each window (as trained) or carry LSTM state.")
@click.option("--decode", type=click.Choice(["prior", "cosine"]), default=None,
              help="Score with another decoding than the model's own (vector head), to compare.")
@json_option
@friendly
def evaluate(segmented, model_dir, whole_file, context, decode, as_json):
    """Next-word accuracy (top-1/5/10) on held-out text, beside a most-frequent-word baseline."""
    from .evaluate import evaluate as run_eval, evaluate_carried, held_out
    from .writer import Writer

    _check_segmented(segmented)
    w = Writer.load(model_dir, decode=decode)
    m, t = w.config["model"], w.config["training"]
    ids, starts, base = held_out(segmented, w.vectors.index, m["window"], t["val_fraction"],
                                 whole=whole_file, lines=t.get("lines", False))
    if len(starts) == 0:
        raise UserError(f"{segmented}: no windows to evaluate")
    if context == "window":
        result = run_eval(w.gen.model, w.gen.decoder, ids, starts, m["window"], base)
    else:
        result = evaluate_carried(w.gen.model, w.gen.decoder, ids, int(starts[0]),
                                  int(starts[-1]) + m["window"] + 1, m["window"], base)
    result["baseline_word"] = w.vectors.words[base]
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
        return
    click.echo(f"{result['windows']:,} windows ({'whole file' if whole_file else 'held-out tail'}, "
               f"context {context})")
    for k in ("top1", "top5", "top10"):
        click.echo(f"  {k:>6}: {result[k]:.2%}")
    if result.get("mean_cosine") is not None:
        click.echo(f"  mean cosine to the true word: {result['mean_cosine']:.3f}")
    click.echo(f"  baseline (always {result['baseline_word']!r}): top1 {result['baseline_top1']:.2%}")


@main.command()
@json_option
@friendly
def info(as_json):
    """Which Keras backend, devices and LSTM kernel training would use."""
    from .backend import describe, fused_lstm_reason, summary_line

    if as_json:
        d = describe()
        d["fused_lstm"] = bool(d["gpus"]) and fused_lstm_reason() is None
        click.echo(json.dumps(d))
    else:
        click.echo(f"wordlstm {__version__}")
        click.echo(summary_line())


@main.command()
@click.argument("word")
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="Model directory (default: the shipped model).")
@click.option("--vectors", "vectors_path", default=None, help="A word2vec file instead of a model.")
@click.option("-k", "--top", "k", default=10, show_default=True, help="How many neighbours.")
@json_option
@friendly
def neighbors(word, model_dir, vectors_path, k, as_json):
    """The words nearest to WORD by cosine similarity."""
    from .vectors import load_vectors

    if vectors_path:
        vectors = load_vectors(vectors_path)
    else:
        from .modeldir import default_model_dir, read_config

        model_dir = Path(model_dir) if model_dir else default_model_dir()
        read_config(model_dir)
        vectors = load_vectors(model_dir / "vectors.bin")
    result = vectors.neighbors(word, k)
    if as_json:
        click.echo(json.dumps({"word": word, "neighbors": [{"word": w, "cosine": round(s, 6)}
                                                           for w, s in result]}, ensure_ascii=False))
    else:
        for w, s in result:
            click.echo(f"{s:.4f}  {w}")


if __name__ == "__main__":
    main()
