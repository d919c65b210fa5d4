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
from .generate import SamplingConfig as SamplingDefaults
from .model import HEADS, LOSSES, TARGETS, ModelConfig as ModelDefaults
from .train import DECODINGS, TrainConfig as TrainDefaults
from .vectors import Word2VecSettings as Word2VecDefaults

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
        except KeyboardInterrupt:  # outputs are written atomically: nothing half-written
            _fail("interrupted", 130)
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
    wordlstm train-vectors novel.seg.txt -o novel.vectors
    wordlstm train novel.seg.txt --vectors novel.vectors -o models/novel
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
@click.option("--normalize-punct/--no-normalize-punct", default=None,
              help="Map punctuation to standard full-width forms (．->。, paired “ ” for "
                   "straight quotes, ，？！：； between Chinese characters). Default: on for "
                   "word units, off for characters.")
@click.option("-j", "--jobs", type=int, default=0, help="Processes (default: all cores).")
@quiet_option
@json_option
@friendly
def segment(inputs, output, encoding, errors, user_dict, engine, unit, no_hmm, to_simplified,
            strip_boilerplate, normalize_punct, jobs, quiet, as_json):
    """Segment text files into words with jieba (normalising encodings and indentation)."""
    from .segment import SegmenterConfig, default_jobs, segment_files, sidecar_path
    from .textio import atomic_output, check_not_input, check_writable, detect_encoding, write_json

    check_writable(output)
    check_not_input(output, inputs)
    check_not_input(sidecar_path(output), inputs)
    for path in inputs:  # missing, empty or binary inputs fail here, before any work
        if not os.path.isfile(path):
            raise UserError(f"{path}: no such file")
        if encoding is None:
            detect_encoding(path)
    if normalize_punct is None:
        normalize_punct = unit == "word"
    config = SegmenterConfig(engine=engine, user_dict=user_dict, hmm=not no_hmm, unit=unit,
                             to_simplified=to_simplified, normalize_punct=normalize_punct)
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
    from .textio import atomic_output, check_not_input, check_writable, iter_lines, normalize_line

    if output:
        check_writable(output)
        check_not_input(output, inputs)

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
@click.option("--size", default=Word2VecDefaults.size, show_default=True, help="Vector dimensions.")
@click.option("--window", default=Word2VecDefaults.window, show_default=True, help="Context window.")
@click.option("--sg", is_flag=True, help="Skip-gram instead of CBOW.")
@click.option("--negative", default=Word2VecDefaults.negative, show_default=True,
              help="Negative samples.")
@click.option("--sample", default=Word2VecDefaults.sample, show_default=True,
              help="Down-sampling of frequent words.")
@click.option("--epochs", default=Word2VecDefaults.epochs, show_default=True)
@click.option("--min-count", default=Word2VecDefaults.min_count, show_default=True,
              help="Words seen fewer times are spelled with their characters (or dropped, "
                   "with --no-spell-rare).")
@click.option("--spell-rare/--no-spell-rare", default=True, show_default=True,
              help="Keep every character: rare words become their characters, so the model "
                   "can write any known character.")
@click.option("--val-fraction", default=Word2VecDefaults.val_fraction, show_default=True,
              help="Held-out part never trained on; the same as `train --val-fraction`.")
@click.option("--lines", "lines", is_flag=True,
              help="Line corpus: hold out random lines, as `train --lines` does.")
@click.option("--workers", default=0, help="Threads (default: all cores).")
@click.option("--seed", default=1, show_default=True)
@click.option("--text", "as_text", is_flag=True, help="Write the word2vec text format instead.")
@quiet_option
@json_option
@friendly
def train_vectors(segmented, output, size, window, sg, negative, sample, epochs, min_count,
                  spell_rare, val_fraction, lines, workers, seed, as_text, quiet, as_json):
    """Train word2vec vectors (gensim) on a segmented file's training part."""
    from dataclasses import asdict

    from .textio import check_not_input, check_writable, write_json
    from .vectors import Word2VecSettings, save_vectors, train_word2vec

    _check_segmented(segmented)
    if min_count < 1 or size < 1 or epochs < 1 or window < 1:
        raise UserError("--min-count, --size, --epochs and --window must be positive")
    prefix = Path(output)
    if prefix.suffix in (".bin", ".txt"):
        prefix = prefix.with_suffix("")
    path = prefix.with_name(prefix.name + (".txt" if as_text else ".bin"))
    check_writable(path)
    check_not_input(path, [segmented])
    check_not_input(prefix.with_name(prefix.name + ".json"), [segmented])
    settings = Word2VecSettings(size=size, window=window, sg=int(sg), negative=negative,
                                sample=sample, epochs=epochs, min_count=min_count,
                                workers=workers, seed=seed, spell_rare=spell_rare,
                                val_fraction=val_fraction, lines=lines)
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
               "settings": asdict(settings), "corpus": str(segmented),
               "held_out_lines": vectors.train_stats["held_out_lines"]}
    write_json(prefix.with_name(prefix.name + ".json"), summary)
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
    elif not quiet:
        click.echo(f"{path}: {len(vectors):,} words x {vectors.dim} dims in {seconds:.1f} s "
                   f"({summary['words_per_s']:,} words/s; {summary['held_out_lines']:,} held-out "
                   "lines not read)", err=True)


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


M, T = ModelDefaults, TrainDefaults


@main.command()
@click.argument("segmented", type=click.Path(dir_okay=False))
@click.option("--vectors", "vectors_path", required=True, help="word2vec .bin/.txt file or prefix.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Model directory to write.")
@click.option("--window", default=M.window, show_default=True,
              help="Tokens per training sequence; every position is a target.")
@click.option("--units", default=M.units, show_default=True, help="LSTM size.")
@click.option("--layers", default=M.layers, show_default=True, help="Stacked LSTM layers.")
@click.option("--dropout", default=M.dropout, show_default=True,
              help="Dropout on the embedding, between layers and before the head.")
@click.option("--head", type=click.Choice(("auto",) + HEADS), default="auto", show_default=True,
              help="Predict the next word's vector (the product: cheap for large word "
                   "vocabularies), or a softmax over the vocabulary. auto: the vector head "
                   "for words, the softmax for characters (it measured better there).")
@click.option("--loss", type=click.Choice(LOSSES), default=M.loss, show_default=True,
              help="Loss of the vector head: contrastive (cosine against the batch's other "
                   "target words), cosine, mse, vmf (von Mises-Fisher NLL) or margin (against "
                   "the most similar wrong word); see bench/RESULTS.md.")
@click.option("--loss-temperature", default=M.temperature, show_default=True,
              help="Temperature of the contrastive loss.")
@click.option("--negatives", default=M.negatives, show_default=True,
              help="In-batch negatives of the contrastive loss.")
@click.option("--margin", default=M.margin, show_default=True, help="Margin of the margin loss.")
@click.option("--decode", type=click.Choice(DECODINGS), default=T.decode, show_default=True,
              help="Vector head: nearest word by cosine plus log word frequency (tau fitted "
                   "after training), or by cosine alone (the classic recipe).")
@click.option("--train-embedding/--fixed-embedding", default=M.train_embedding,
              show_default=True,
              help="Fine-tune the vocabulary's vectors with the LSTM (input and target tied; "
                   "they ship as the model's vectors.bin), or keep word2vec's.")
@click.option("--target", type=click.Choice(TARGETS), default=M.target, show_default=True,
              help="Start from word2vec vectors minus their mean (centered), or as they are.")
@click.option("--epochs", default=T.epochs, show_default=True,
              help="At most this many; stops earlier when held-out bits/char stop improving.")
@click.option("--batch-size", default=T.batch_size, show_default=True, help="Sequences per batch.")
@click.option("--lr", "learning_rate", default=T.learning_rate, show_default=True,
              help="Adam learning rate.")
@click.option("--lr-decay", default=T.lr_decay, show_default=True,
              help="Learning-rate factor after an epoch without better held-out bits/char.")
@click.option("--val-fraction", default=T.val_fraction, show_default=True,
              help="Held out, never trained on: the tail (or, with --lines, random lines).")
@click.option("--seed", default=T.seed, show_default=True)
@click.option("--ema", default=T.ema, show_default=True,
              help="Validate and ship the moving average of the weights, with this momentum "
                   "per batch (0: the last weights).")
@click.option("--patience", default=T.patience, show_default=True,
              help="Stop after this many epochs without better held-out bits/char, keeping "
                   "the best epoch (0: train every epoch, still keeping the best).")
@click.option("--init-from", type=click.Path(file_okay=False), default=None,
              help="Start from another model dir's weights (same vectors and size): "
                   "pretrain on other novels, then fine-tune on this one.")
@click.option("--user-dict", type=click.Path(dir_okay=False), default=None,
              help="Segmenter settings for prompts; by default those `segment` recorded in "
                   "SEGMENTED.json.")
@click.option("--engine", type=click.Choice(["auto", "jieba", "rjieba"]), default=None)
@click.option("--unit", type=click.Choice(["word", "char"]), default=None)
@click.option("--to-simplified/--no-to-simplified", default=None)
@click.option("--lines", "lines", is_flag=True,
              help="Each line is a document (poems, names): generation makes whole lines, "
                   "and random lines are held out.")
@click.option("--devices", default=T.devices, show_default=True,
              help="'all' or N: data-parallel training over that many GPUs (or CPU devices).")
@click.option("--precision", type=click.Choice(["float32", "mixed"]), default=T.precision,
              show_default=True, help="Mixed precision speeds up training on recent GPUs.")
@click.option("--resume", is_flag=True, help="Continue from the last epoch's checkpoint.")
@quiet_option
@friendly
def train(segmented, vectors_path, output, window, units, layers, dropout, head, loss,
          loss_temperature, negatives, margin, decode, train_embedding, target, epochs,
          batch_size, learning_rate, lr_decay, val_fraction, seed, ema, patience, init_from,
          user_dict, engine, unit, to_simplified, lines, devices, precision, resume, quiet):
    """Train the LSTM that predicts the next word's vector at every position."""
    _check_segmented(segmented)
    out = Path(output)
    from .backend import summary_line
    from .model import ModelConfig
    from .segment import recorded_config
    from .textio import check_writable
    from .train import CtrlC, TrainConfig, train as run_train

    check_writable(out / "config.json")
    seg = recorded_config(segmented, engine=engine, user_dict=user_dict, unit=unit,
                          to_simplified=to_simplified)
    if head == "auto":  # measured: bench/RESULTS.md, "Names and poems"
        head = "softmax" if seg.unit == "char" else "vector"
    cfg = ModelConfig(window=window, units=units, layers=layers, dropout=dropout, loss=loss,
                      train_embedding=train_embedding, target=target, head=head,
                      temperature=loss_temperature, margin=margin, negatives=negatives)
    tcfg = TrainConfig(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                       lr_decay=lr_decay, val_fraction=val_fraction, seed=seed, ema=ema, lines=lines,
                       devices=devices, precision=precision, patience=patience, decode=decode)
    say = _say(quiet)
    if seg.user_dict and not os.path.isfile(seg.user_dict):
        raise UserError(f"{seg.user_dict}: user dictionary not found (it is copied into the model)")
    try:
        with CtrlC() as ctrl_c:
            say(summary_line() + f"; {cfg.head} head")
            result = run_train(segmented, vectors_path, out, cfg, tcfg, seg, resume=resume,
                               verbose=1 if sys.stderr.isatty() and not quiet else 0, log=say,
                               init_from=init_from, ctrl_c=ctrl_c)
    except KeyboardInterrupt:
        ckpt = out / "checkpoint" / "state.json"
        done = json.loads(ckpt.read_text())["epoch"] if ckpt.is_file() else 0
        _fail(f"interrupted; {done} epoch(s) saved in {out / 'checkpoint'}: "
              "run the same command with --resume to continue", 130)
    say(f"{out}: model saved ({len(result['history'])} epochs, keeping epoch "
        f"{result['best_epoch']})")


S = SamplingDefaults


@main.command("continue-text")
@click.argument("prompt", default="")
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="Model directory (default: the shipped 红楼梦 model).")
@click.option("-n", "--length", default=100, show_default=True,
              help="Words to generate (the most per line with --lines).")
@click.option("--until", default=None, help="Stop once the text ends with this mark (e.g. 。”).")
@click.option("--seed", default=None, type=int, help="Random seed: same seed, same text.")
@click.option("--greedy", is_flag=True, help="Always take the likeliest word (no sampling).")
@click.option("--temperature", default=S.temperature, show_default=True,
              help="1.0 samples the model's own distribution; lower is safer, higher wilder.")
@click.option("--top-k", default=S.top_k, show_default=True,
              help="Sample among the k likeliest words (0: no limit).")
@click.option("--top-p", default=S.top_p, show_default=True,
              help="Nucleus: sample among the likeliest words holding this much probability.")
@click.option("--dry", "dry_multiplier", default=S.dry_multiplier, show_default=True,
              help="DRY loop control: nats off a word that would extend an earlier repeat of "
                   "more than --dry-allowed tokens, growing with its length (0: off).")
@click.option("--dry-base", default=S.dry_base, show_default=True,
              help="DRY: the penalty's growth per further repeated token.")
@click.option("--dry-allowed", default=S.dry_allowed, show_default=True,
              help="DRY: repeats this long are free.")
@click.option("--paragraph-bias", default=S.paragraph_bias, show_default=True,
              help="Nats added to the log-probability of a paragraph end (negative: longer "
                   "paragraphs).")
@click.option("--punct-bias", default=S.punct_bias, show_default=True,
              help="Nats added to the log-probability of every punctuation mark.")
@click.option("--no-repeat-ngram", default=S.no_repeat_ngram, show_default=True,
              help="Never repeat an n-gram of this size (0: off).")
@click.option("--repetition-penalty", default=S.repetition_penalty, show_default=True,
              help="Nats off every word used in the last 20 (0: off).")
@click.option("--context", type=click.Choice(["carry", "window"]), default=S.context,
              show_default=True, help="Carry LSTM state word to word, or re-read the last window.")
@click.option("--samples", default=1, show_default=True, help="Continuations, made as one batch.")
@click.option("--prefix", default="", help="Text fed to the model first to set the mood, not printed.")
@click.option("--acrostic", default=None, help="藏头诗: one line per character, starting with it.")
@click.option("--line-length", type=int, default=None,
              help="Words per acrostic line (default: the corpus's usual clause length).")
@click.option("--lines", "n_lines", type=int, default=None,
              help="Make N whole lines (line models: poems, names), each from PROMPT.")
@click.option("--novel-only", is_flag=True, help="With --lines: only lines not in the training file.")
@click.option("--form", default=None,
              help="With --lines on a poem model: 5x4, 7x4, 5x8, 7x8 (characters x clauses), "
                   "or free. Default: the corpus's commonest regular form that fits the prompt.")
@quiet_option
@json_option
@friendly
def continue_text(prompt, model_dir, length, until, seed, greedy, temperature, top_k, top_p,
                  dry_multiplier, dry_base, dry_allowed, paragraph_bias, punct_bias, no_repeat_ngram,
                  repetition_penalty, context, samples, prefix, acrostic, line_length, n_lines, novel_only, form,
                  quiet, as_json):
    """Continue PROMPT in the style the model learned."""
    from .generate import SamplingConfig
    from .writer import Writer

    if length < 1 or samples < 1 or (n_lines is not None and n_lines < 1):
        raise UserError("--length, --samples and --lines must be positive")
    if (novel_only or form) and n_lines is None:
        raise UserError("--novel-only and --form go with --lines N")
    if line_length is not None and line_length < 2:
        raise UserError("--line-length must be at least 2")
    cfg = SamplingConfig(greedy=greedy, temperature=temperature, top_k=top_k, top_p=top_p,
                         dry_multiplier=dry_multiplier, dry_base=dry_base,
                         dry_allowed=dry_allowed, paragraph_bias=paragraph_bias,
                         punct_bias=punct_bias,
                         no_repeat_ngram=no_repeat_ngram,
                         repetition_penalty=repetition_penalty, context=context)
    say = _say(quiet or as_json)
    prompt, prefix = _printable(prompt, "the prompt", say), _printable(prefix, "--prefix", say)
    writer = Writer.load(model_dir, note=say)
    t0 = time.perf_counter()
    extra = {}
    if acrostic:
        texts = ["\n".join(writer.acrostic(acrostic, cfg, seed, prefix=prefix,
                                            line_length=line_length))]
    elif n_lines is not None:
        texts, dropped = writer.lines(prompt, n_lines, cfg, seed, prefix=prefix,
                                      max_words=length, novel_only=novel_only, form=form)
        extra["dropped_as_not_novel"] = dropped
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
        sys.stdout.flush()  # before the summary on stderr
    if novel_only:
        say(f"dropped {extra['dropped_as_not_novel']} generated line(s) that are in the "
            "training file")
    n_words = sum(writer.last_words)
    say(f"{n_words} words in {seconds:.2f} s ({n_words / max(seconds, 1e-9):,.0f} words/s)")


@main.command()
@click.argument("segmented", type=click.Path(dir_okay=False))
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="Model directory (default: the shipped model).")
@click.option("--whole-file", is_flag=True,
              help="Score every line of SEGMENTED, not the model's held-out part of it.")
@click.option("--decode", type=click.Choice(DECODINGS), default=None,
              help="Score with another decoding than the model's own (vector head), to compare.")
@json_option
@friendly
def evaluate(segmented, model_dir, whole_file, decode, as_json):
    """Held-out bits per character (every character counted) and next-word top-1/5/10."""
    from .dataset import corpus_ids
    from .evaluate import evaluate as run_eval
    from .modeldir import load_model_dir
    from .split import HoldOut

    _check_segmented(segmented)
    m = load_model_dir(model_dir)
    holdout = HoldOut(**m.config["training"].get("holdout", {}))
    corpus = corpus_ids(segmented, m.vectors.index, holdout, whole=whole_file)
    if len(corpus.val) < 2:
        raise UserError(f"{segmented}: no held-out text to evaluate")
    if whole_file and len(corpus.train) < 2:
        # Scoring another file: the unknown-character rate and character frequencies come
        # from the file itself, since the model's training text is not at hand.
        corpus.train, corpus.char_counts = corpus.val, _char_counts(segmented)
        corpus.train_unknown = int((corpus.val == corpus.unk).sum())
    result = run_eval(m.step_model(), m.decoder(decode), corpus, m.vectors.words)
    result["scope"] = "whole file" if whole_file else "held-out part"
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
        return
    click.echo(f"{result['positions']:,} positions, {result['characters']:,} characters "
               f"({result['scope']})")
    click.echo(f"  bits/char: {result['bits_per_char']:.4f}  (every character counted; "
               f"{result['bits_per_char_known']:.4f} on in-vocabulary tokens)")
    click.echo(f"  bits/word: {result['bits_per_word']:.3f}  perplexity {result['perplexity']:,.1f} "
               f"(per segmented word)")
    click.echo(f"  unknown characters: {result['oov_share']:.2%} of positions; words spelled "
               f"with their characters: {result['words_not_in_vocab']:.2%}")
    for k in ("top1", "top5", "top10"):
        click.echo(f"  {k:>6}: {result[k]:.2%}")
    click.echo(f"  baseline (always {result['baseline_word']!r}): top1 {result['baseline_top1']:.2%}")


def _printable(text: str, what: str, say) -> str:
    """`text` without control characters (an escape sequence must not reach the terminal)."""
    import unicodedata

    clean = "".join(c for c in text if unicodedata.category(c) != "Cc")
    if clean != text:
        say(f"note: removed {len(text) - len(clean)} control character(s) from {what}")
    return clean


def _char_counts(segmented):
    from collections import Counter

    counts = Counter()
    with open(segmented, encoding="utf-8") as f:
        for line in f:
            counts.update(line.replace(" ", "").strip())
    return counts


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


def run():
    """The `wordlstm` command. After Ctrl-C (exit 130) it leaves without the interpreter's
    teardown: outputs are already written or cleaned up, and tearing down with JAX's runtime
    threads mid-computation crashed (SIGSEGV) about once in 30 interrupted trainings."""
    try:
        main()
    except SystemExit as done:
        if done.code == 130:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        raise


if __name__ == "__main__":
    run()
