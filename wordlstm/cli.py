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

import click

from . import __version__
from .backend import PRECISIONS
from .decoding import DECODINGS
from .errors import UserError, say_fields
from .model import HEADS, LOSSES, TARGETS
from .model import ModelConfig as ModelDefaults
from .names import MIN_COUNT
from .sampling import SamplingConfig as SamplingDefaults
from .segment import ENGINES, UNITS
from .segment import SegmenterConfig as SegmenterDefaults
from .serve import ServeConfig as ServeDefaults
from .textio import DECODE_ERRORS
from .train import TrainConfig as TrainDefaults
from .vectors import NEIGHBORS
from .vectors import Word2VecSettings as Word2VecDefaults
from .writer import Request as RequestDefaults

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out


def _fail(message: str, code: int = 1):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def as_flags(message: str) -> str:
    """A library message in the command line's words: a field it names in backticks
    (`top_p`) becomes the running command's flag that sets it (--top-p), or the bare name."""
    ctx = click.get_current_context(silent=True)
    flags = {p.name: next((o for o in p.opts if o.startswith("--")), p.opts[0])
             for p in (ctx.command.params if ctx else []) if isinstance(p, click.Option)}
    return say_fields(message, lambda name: flags.get(name, name))


def friendly(fn):
    """Turn expected failures into one clear line and a non-zero exit, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            _fail(as_flags(str(err)))
        except KeyboardInterrupt as err:  # outputs are written atomically: nothing half-written
            _fail(str(err) or "interrupted", 130)  # train.TrainingInterrupted says more
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


def _stderr_log(quiet: bool):
    """The `log` the library gets: a line on stderr, or nothing when quiet."""
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
@click.option("--errors", type=click.Choice(DECODE_ERRORS), default=DECODE_ERRORS[0],
              show_default=True, help="On undecodable bytes: stop, or replace and count them.")
@click.option("--user-dict", type=click.Path(dir_okay=False), default=None,
              help="jieba user dictionary (e.g. character names), one word a line.")
@click.option("--engine", type=click.Choice(ENGINES), default=SegmenterDefaults.engine,
              show_default=True, help="rjieba gives jieba's exact tokens ~20x faster.")
@click.option("--unit", type=click.Choice(UNITS), default=SegmenterDefaults.unit, show_default=True)
@click.option("--no-hmm", is_flag=True, help="Turn off jieba's HMM for unknown words.")
@click.option("--to-simplified", is_flag=True,
              help="Convert traditional to simplified characters first (OpenCC t2s).")
@click.option("--strip-boilerplate", is_flag=True,
              help="Drop download-site banners: lines with a URL or site words repeated 3+ times.")
@click.option("--normalize-punct/--no-normalize-punct", default=None,
              help="Map punctuation to standard full-width forms (．->。, paired “ ” for "
                   "straight quotes, ，？！：； between Chinese characters). Default: on for "
                   "word units, off for characters.")
@click.option("-j", "--jobs", type=int, default=None, help="Processes (default: all cores).")
@quiet_option
@json_option
@friendly
def segment(inputs, output, encoding, errors, user_dict, engine, unit, no_hmm, to_simplified,
            strip_boilerplate, normalize_punct, jobs, quiet, as_json):
    """Segment text files into words with jieba (normalising encodings and indentation)."""
    from .segment import SegmenterConfig, segment_to_file

    if normalize_punct is None:
        normalize_punct = unit == "word"
    config = SegmenterConfig(engine=engine, user_dict=user_dict, hmm=not no_hmm, unit=unit,
                             to_simplified=to_simplified, normalize_punct=normalize_punct)
    stats, summary = segment_to_file(
        list(inputs), output, config, encoding=encoding, errors=errors, jobs=jobs,
        strip_boilerplate=strip_boilerplate,
        progress=lambda total: progress_bar(total, "B", quiet, "segment", scale=True))
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
    elif not quiet:
        _print_segment_stats(output, stats, strip_boilerplate)


def _print_segment_stats(output, stats, strip_boilerplate):
    click.echo(f"{output}: {stats.lines:,} lines, {stats.tokens:,} tokens, "
               f"{stats.distinct:,} distinct words from {stats.bytes / 1e6:.1f} MB "
               f"({', '.join(sorted({f['encoding'] for f in stats.files}))}) in "
               f"{stats.seconds:.1f} s, {stats.mb_per_s:.2f} MB/s, engine {stats.engine}", err=True)
    for f in stats.files:  # where another encoding also read the file: why this one
        if f.get("detection"):
            click.echo(f"note: {f.get('path', '')}: {f['detection']}", err=True)
    if stats.replaced:
        click.echo(f"replaced {stats.replaced:,} undecodable bytes with U+FFFD", err=True)
    if stats.chapters:
        click.echo(f"{len(stats.chapters):,} chapter headings kept as their own lines "
                   "(listed by --json)", err=True)
    if stats.other_scripts:
        shown = ", ".join(f"{k} {len(v)} ({v[:12]}{'…' if len(v) > 12 else ''})"
                          for k, v in stats.other_scripts.items())
        click.echo(f"note: letters of other scripts than the text's own: {shown}; usually "
                   "encoding debris in a download (continue-text does not write them unless "
                   "a prompt has them)", err=True)
    if strip_boilerplate:
        click.echo(f"dropped {stats.dropped:,} boilerplate lines ({len(stats.boilerplate)} "
                   "distinct)" + "".join(f"\n  {b['count']:>6} x {b['line']}"
                                         for b in stats.boilerplate[:10]), err=True)


@main.command()
@click.argument("inputs", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--train-part", "train_parts", multiple=True, type=click.Path(dir_okay=False),
              help="A segmented file of which only the training part joins (its held-out "
                   "tail stays unseen); repeatable.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The joined segmented file.")
@click.option("--val-fraction", default=TrainDefaults.val_fraction, show_default=True,
              help="The held-out fraction of the --train-part files (as they are trained).")
@quiet_option
@json_option
@friendly
def join(inputs, train_parts, output, val_fraction, quiet, as_json):
    """Join segmented files into one corpus (to pretrain a base model on many novels)."""
    from .join import join_segmented
    from .split import HoldOut

    summary = join_segmented(list(inputs), list(train_parts), output, HoldOut(val_fraction))
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
    elif not quiet:
        click.echo(f"{output}: {summary['lines']:,} lines, {summary['tokens']:,} tokens from "
                   f"{len(summary['files'])} files; none of the "
                   f"{summary['held_out_lines_checked']:,} held-out lines of the --train-part "
                   "files is in it", err=True)


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the proposed user dictionary here (jieba format) instead of stdout.")
@click.option("--min-count", default=MIN_COUNT, show_default=True, help="Occurrences a name needs.")
@click.option("--encoding", default=None, help="Input encoding (default: detect per file).")
@quiet_option
@json_option
@friendly
def names(inputs, output, min_count, encoding, quiet, as_json):
    """Propose a user dictionary of the novel's names that jieba splits (麝 月 -> 麝月).

    Review it, then pass it to `segment --user-dict`.
    """
    from .names import user_dictionary

    found, text, report = user_dictionary(list(inputs), output, min_count, encoding)
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
@click.option("--spell-rare/--no-spell-rare", default=Word2VecDefaults.spell_rare, show_default=True,
              help="Keep every character: rare words become their characters, so the model "
                   "can write any known character.")
@click.option("--val-fraction", default=Word2VecDefaults.val_fraction, show_default=True,
              help="Held-out part never trained on; the same as `train --val-fraction`.")
@click.option("--lines", "lines", is_flag=True,
              help="Line corpus: hold out random lines, as `train --lines` does.")
@click.option("--workers", default=Word2VecDefaults.workers, help="Threads (default: all cores).")
@click.option("--seed", default=Word2VecDefaults.seed, show_default=True,
              type=click.IntRange(0, 2**32 - 1))
@click.option("--text", "as_text", is_flag=True, help="Write the word2vec text format instead.")
@quiet_option
@json_option
@friendly
def train_vectors(segmented, output, as_text, quiet, as_json, **options):
    """Train word2vec vectors (gensim) on a segmented file's training part."""
    from .vectors import train_vectors_file

    summary = train_vectors_file(segmented, output, options, text=as_text,
                                 progress=lambda epochs: progress_bar(epochs, "epoch", quiet,
                                                                      "word2vec"))
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
    elif not quiet:
        click.echo(f"{summary['output']}: {summary['words']:,} words x {summary['dim']} dims in "
                   f"{summary['seconds']:.1f} s ({summary['words_per_s']:,} words/s; "
                   f"{summary['held_out_lines']:,} held-out lines not read)", err=True)
    for warning in summary["warnings"] if not (quiet or as_json) else ():
        click.echo(f"warning: {warning}", err=True)




@main.command()
@click.argument("segmented", type=click.Path(dir_okay=False))
@click.option("--vectors", "vectors_path", default=None,
              help="word2vec .bin/.txt file or prefix (to train from scratch).")
@click.option("--from", "base", default=None,
              help="Fine-tune a pretrained model instead: 'base' (the shipped base model of "
                   "vernacular fiction) or a model dir. The novel's frequent new words join "
                   "its vocabulary; no --vectors needed.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Model directory to write.")
@click.option("--time-limit", default=TrainDefaults.time_limit, show_default=True,
              type=click.FloatRange(0, None),
              help="Minutes: start no epoch that would end after this (0: no limit).")
@click.option("--tensorboard", default="", metavar="DIR",
              help="Write TensorBoard event files here (loss, held-out bits/char, learning "
                   "rate, targets/s per epoch): tensorboard --logdir DIR. Needs TensorFlow.")
@click.option("--window", default=ModelDefaults.window, show_default=True,
              help="Tokens per training sequence; every position is a target.")
@click.option("--units", default=ModelDefaults.units, show_default=True, help="LSTM size.")
@click.option("--layers", default=ModelDefaults.layers, show_default=True, help="Stacked LSTM layers.")
@click.option("--dropout", default=ModelDefaults.dropout, show_default=True,
              help="Dropout on the embedding, between layers and before the head.")
@click.option("--head", type=click.Choice(("auto",) + HEADS), default="auto", show_default=True,
              help="Predict the next word's vector (the product: cheap for large word "
                   "vocabularies), or a softmax over the vocabulary. auto: the vector head "
                   "for words, the softmax for characters (it measured better there).")
@click.option("--loss", type=click.Choice(LOSSES), default=ModelDefaults.loss, show_default=True,
              help="Loss of the vector head: contrastive (cosine against the batch's other "
                   "target words), cosine, mse, vmf (von Mises-Fisher NLL) or margin (against "
                   "the most similar wrong word); see bench/RESULTS.md.")
@click.option("--loss-temperature", default=ModelDefaults.loss_temperature, show_default=True,
              help="Temperature of the contrastive loss.")
@click.option("--negatives", default=ModelDefaults.negatives, show_default=True,
              help="In-batch negatives of the contrastive loss.")
@click.option("--margin", default=ModelDefaults.margin, show_default=True, help="Margin of the margin loss.")
@click.option("--decode", type=click.Choice(DECODINGS), default=TrainDefaults.decode, show_default=True,
              help="Vector head: log-probabilities from cosine / tau plus the weighted log word "
                   "frequency (both fitted after training), or from cosine alone (the classic "
                   "nearest-word recipe).")
@click.option("--train-embedding/--fixed-embedding", default=ModelDefaults.train_embedding,
              show_default=True,
              help="Fine-tune the vocabulary's vectors with the LSTM (input and target tied; "
                   "they ship as the model's vectors.bin), or keep word2vec's.")
@click.option("--target", type=click.Choice(TARGETS), default=ModelDefaults.target, show_default=True,
              help="Start from word2vec vectors minus their mean (centered), or as they are.")
@click.option("--epochs", default=TrainDefaults.epochs, show_default=True,
              help="At most this many; stops earlier when held-out bits/char stop improving.")
@click.option("--batch-size", default=TrainDefaults.batch_size, show_default=True,
              help="Sequences per batch.")
@click.option("--lr", "learning_rate", default=TrainDefaults.learning_rate, show_default=True,
              help="Adam learning rate.")
@click.option("--lr-decay", default=TrainDefaults.lr_decay, show_default=True,
              help="Learning-rate factor after an epoch without better held-out bits/char.")
@click.option("--val-fraction", default=TrainDefaults.val_fraction, show_default=True,
              help="Held out, never trained on: the tail (or, with --lines, random lines).")
@click.option("--seed", default=TrainDefaults.seed, show_default=True, type=click.IntRange(0, 2**32 - 1))
@click.option("--ema", default=TrainDefaults.ema, show_default=True,
              help="Validate and ship the moving average of the weights, with this momentum "
                   "per batch (0: the last weights).")
@click.option("--carry/--no-carry", default=TrainDefaults.carry, show_default=True,
              help="Read the text in order as --batch-size streams and carry the LSTM state "
                   "from batch to batch (truncated BPTT): it learns context longer than "
                   "--window, as generation uses it.")
@click.option("--patience", default=TrainDefaults.patience, show_default=True,
              help="Stop after this many epochs without better held-out bits/char, keeping "
                   "the best epoch (0: train every epoch, still keeping the best).")
@click.option("--init-from", type=click.Path(file_okay=False), default=None,
              help="Start from another model dir's weights (same vectors and size): "
                   "pretrain on other novels, then fine-tune on this one.")
@click.option("--user-dict", type=click.Path(dir_okay=False), default=None,
              help="Segmenter settings for prompts; by default those `segment` recorded in "
                   "SEGMENTED.json.")
@click.option("--engine", type=click.Choice(ENGINES), default=None)
@click.option("--unit", type=click.Choice(UNITS), default=None)
@click.option("--to-simplified/--no-to-simplified", default=None)
@click.option("--lines", "lines", is_flag=True,
              help="Each line is a document (poems, names): generation makes whole lines, "
                   "and random lines are held out.")
@click.option("--devices", default=TrainDefaults.devices, show_default=True,
              help="'all' or N: data-parallel training over that many GPUs (or CPU devices).")
@click.option("--precision", type=click.Choice(PRECISIONS), default=TrainDefaults.precision,
              show_default=True, help="Mixed precision speeds up training on recent GPUs.")
@click.option("--weights-dtype", type=click.Choice(("float16", "float32")),
              default=TrainDefaults.weights_dtype, show_default=True,
              help="How model.keras stores the network (float16: half the size).")
@click.option("--resume", is_flag=True, help="Continue from the last epoch's checkpoint.")
@click.option("--overwrite", is_flag=True,
              help="-o holds a model (or an interrupted run): train a new one that replaces "
                   "it when complete (the old one stays usable until then).")
@quiet_option
@friendly
def train(segmented, vectors_path, base, output, init_from, resume, overwrite, quiet, **options):
    """Train the LSTM that predicts the next word's vector at every position."""
    from .train import FINE_TUNE, run

    if (vectors_path is None) == (base is None):
        raise UserError("give --vectors (train from scratch) or --from base (fine-tune the "
                        "base model), not both" if base else
                        "give --vectors FILE (from `train-vectors`), or --from base to "
                        "fine-tune the shipped base model")
    ctx = click.get_current_context()
    given = {k for k in options
             if ctx.get_parameter_source(k) != click.core.ParameterSource.DEFAULT}
    if base is not None:
        for k, v in FINE_TUNE.items():  # fine-tuning has its own defaults
            if k not in given:
                options[k] = v
        if init_from:
            raise UserError("--from already starts from the base's weights; drop --init-from")
    model = _take(options, ModelDefaults)
    if base is not None:
        fixed = sorted(k for k in model if k in given and k not in ("dropout",))
        if fixed:
            raise UserError(f"--{fixed[0].replace('_', '-')}: a model fine-tuned --from a base "
                            "keeps the base's architecture; drop the option")
    segmenter = {k: options.pop(k) for k in ("user_dict", "engine", "unit", "to_simplified")}
    log = _stderr_log(quiet)
    result = run(segmented, vectors_path, output, model, options, segmenter, resume=resume,
                 init_from=init_from, base=base, overwrite=overwrite,
                 verbose=1 if sys.stderr.isatty() and not quiet else 0, log=log)
    log(f"{result['out']}: model saved ({len(result['history'])} epochs, keeping epoch "
        f"{result['best_epoch']})")


def _take(options: dict, config_class) -> dict:
    """The options that are fields of `config_class` (a dataclass), removed from `options`."""
    from dataclasses import fields

    return {f.name: options.pop(f.name) for f in fields(config_class) if f.name in options}


def _given(options: dict) -> set[str]:
    """The options typed on the command line (not left at their defaults)."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    return {k for k in options if ctx.get_parameter_source(k) not in
            (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP, None)}




@main.command("continue-text")
@click.argument("prompt", default=RequestDefaults.prompt)
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="Model directory (default: the shipped 红楼梦 model; base: the shipped base model "
                   "of vernacular fiction).")
@click.option("-n", "--length", default=RequestDefaults.length, show_default=True,
              help="Words to generate (the most per line with --lines).")
@click.option("--until", default=None, help="Stop once the text ends with this mark (e.g. 。”).")
@click.option("--seed", default=None, type=click.IntRange(0, 2**32 - 1),
              help="Random seed: same seed, same text.")
@click.option("--greedy", is_flag=True, help="Always take the likeliest word (no sampling).")
@click.option("--temperature", default=SamplingDefaults.temperature, show_default=True,
              help="1.0 samples the model's own distribution; lower is safer, higher wilder.")
@click.option("--top-k", default=SamplingDefaults.top_k, show_default=True,
              help="Sample among the k likeliest words (0: no limit).")
@click.option("--top-p", default=SamplingDefaults.top_p, show_default=True,
              help="Nucleus: sample among the likeliest words holding this much probability.")
@click.option("--min-p", default=SamplingDefaults.min_p, show_default=True,
              help="Min-p: only words with at least this share of the likeliest word's "
                   "probability (0: off).")
@click.option("--typical-p", default=SamplingDefaults.typical_p, show_default=True,
              help="Locally typical sampling: the words whose surprisal is nearest the "
                   "entropy, holding this much probability (1: off).")
@click.option("--rerank", default=SamplingDefaults.rerank, show_default=True,
              help="Write clause by clause: sample this many candidates for each next clause "
                   "and keep the one the model finds likeliest (0: word by word).")
@click.option("--rerank-pmi", default=SamplingDefaults.rerank_pmi, show_default=True,
              help="With --rerank: score clauses by log p(word | text) minus this times log "
                   "p(word), against bland generic clauses (0: the model's log-probability).")
@click.option("--dry", "dry_multiplier", default=SamplingDefaults.dry_multiplier, show_default=True,
              help="DRY loop control: nats off a word that would extend an earlier repeat of "
                   "more than --dry-allowed tokens, growing with its length (0: off).")
@click.option("--dry-base", default=SamplingDefaults.dry_base, show_default=True,
              help="DRY: the penalty's growth per further repeated token.")
@click.option("--dry-allowed", default=SamplingDefaults.dry_allowed, show_default=True,
              help="DRY: repeats this long are free.")
@click.option("--paragraph-bias", default=SamplingDefaults.paragraph_bias, show_default=True,
              help="Nats added to the log-probability of a paragraph end (negative: longer "
                   "paragraphs).")
@click.option("--punct-bias", default=SamplingDefaults.punct_bias, show_default=True,
              help="Nats added to the log-probability of every punctuation mark.")
@click.option("--no-repeat-ngram", default=SamplingDefaults.no_repeat_ngram, show_default=True,
              help="Never repeat an n-gram of this size (0: off).")
@click.option("--repetition-penalty", default=SamplingDefaults.repetition_penalty, show_default=True,
              help="Nats off every word used in the last 20 (0: off).")
@click.option("--context", type=click.Choice(["carry", "window"]), default=SamplingDefaults.context,
              show_default=True, help="Carry LSTM state word to word, or re-read the last window.")
@click.option("--min-count", default=SamplingDefaults.min_count, show_default=True,
              help="Never write a word seen fewer times in training, unless the prompt has it "
                   "(encoding debris in the download; 0: off).")
@click.option("--other-scripts", is_flag=True,
              help="Allow letters of other scripts (Latin or Cyrillic in a Chinese novel) the "
                   "prompt does not have.")
@click.option("--quotes/--no-quotes", default=SamplingDefaults.quotes, show_default=True,
              help="Keep quotes whole: no paragraph end or second “ inside an open quote, no ” "
                   "without one.")
@click.option("--dry-breakers", default=SamplingDefaults.dry_breakers, show_default=True,
              help="Marks a DRY repeat does not run across (besides a paragraph end), e.g. "
                   "'：“”' (DRY's own defaults).")
@click.option("--headings", is_flag=True,
              help="Allow the continuation to write a chapter heading (第N回).")
@click.option("--cache/--no-cache", default=SamplingDefaults.cache, show_default=True,
              help="Mix in the model's continuous cache of the text's own recent words "
                   "(models trained or `fit-cache`d with one).")
@click.option("--ngram/--no-ngram", default=SamplingDefaults.ngram, show_default=True,
              help="Mix in the model's word n-gram of its training text (models trained or "
                   "`fit-ngram`ed with one).")
@click.option("--ngram-weight", default=SamplingDefaults.ngram_weight, show_default=True,
              type=click.FloatRange(-1, 1, max_open=True),
              help="The n-gram's share of the mixture (-1: the model's fitted weight).")
@click.option("--adapt/--no-adapt", default=SamplingDefaults.adapt, show_default=True,
              help="Adapt the model's head to the prompt first (dynamic evaluation; models with "
                   "a fitted learning rate). It never adapts to its own words.")
@click.option("--samples", default=RequestDefaults.samples, show_default=True,
              help="Continuations, made as one batch.")
@click.option("--prefix", default=RequestDefaults.prefix,
              help="Text fed to the model first to set the mood, not printed.")
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
def continue_text(model_dir, quiet, as_json, **options):
    """Continue PROMPT in the style the model learned."""
    from .sampling import SamplingConfig
    from .writer import Request, Writer

    request = Request(**_take(options, Request))
    cfg = SamplingConfig(**options)
    log = _stderr_log(quiet or as_json)
    request = request.printable(log)
    writer = Writer.load(model_dir, log=log)
    cfg = writer.sampling(cfg, given=_given(options))  # the model's own defaults, then flags
    stream = request.streams and not as_json  # one continuation: show each word as it comes
    shown = []  # the prompt goes out with the first word: an error prints nothing on stdout

    def echo_word(word: str) -> None:
        if not shown:
            shown.append(True)
            click.echo(request.prompt, nl=False)
        click.echo(word, nl=False)
        sys.stdout.flush()

    t0 = time.perf_counter()
    result = writer.write(request, cfg, on_word=echo_word if stream else None)
    seconds = time.perf_counter() - t0
    if stream:
        if not shown:
            click.echo(request.prompt, nl=False)
        click.echo()
        sys.stdout.flush()  # before the summary on stderr
    if as_json:
        extra = {"dropped_as_not_novel": result.dropped} if request.n_lines is not None else {}
        click.echo(json.dumps({"prompt": request.prompt, "model": str(writer.model_dir),
                               "seed": request.seed, "texts": result.texts, "words": result.words,
                               "unknown": result.unknown, "split": result.split,
                               "seconds": round(seconds, 4), **extra}, ensure_ascii=False))
    elif not stream:
        click.echo("\n\n".join(result.texts) if request.samples > 1 else "\n".join(result.texts))
        sys.stdout.flush()  # before the summary on stderr
    if request.novel_only:
        log(f"dropped {result.dropped} generated line(s) that are in the training file")
    n_words = sum(result.words)
    log(f"{n_words} words in {seconds:.2f} s ({n_words / max(seconds, 1e-9):,.0f} words/s)")


@main.command()
@click.argument("segmented", type=click.Path(dir_okay=False))
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="Model directory, or base (default: the shipped 红楼梦 model).")
@click.option("--whole-file", is_flag=True,
              help="Score every line of SEGMENTED, not the model's held-out part of it.")
@click.option("--decode", type=click.Choice(DECODINGS), default=None,
              help="Score with another decoding than the model's own (vector head), to compare.")
@click.option("--cache/--no-cache", default=True, show_default=True,
              help="Mix in the model's continuous cache of the text's recent words (if fitted).")
@click.option("--dynamic", "dynamic_lr", default=None, type=click.FloatRange(0, 1),
              help="Dynamic evaluation: adapt the head to the text as it is read, with this "
                   "learning rate (default: the model's fitted one; 0: off). The model's files "
                   "are untouched.")
@click.option("--ngram/--no-ngram", default=True, show_default=True,
              help="Mix in the model's word n-gram of its training text (if fitted).")
@json_option
@friendly
def evaluate(segmented, model_dir, whole_file, decode, cache, dynamic_lr, ngram, as_json):
    """Held-out bits per character (every character counted) and next-word top-1/5/10."""
    from .evaluate import evaluate_file
    from .progress import reporting

    with reporting(_stderr_log(False), terminal=sys.stderr.isatty()):  # a long held-out part
        result = evaluate_file(segmented, model_dir, whole_file, decode, cache=cache,
                               dynamic_lr=dynamic_lr, ngram=ngram)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
        return
    click.echo(f"{result['positions']:,} positions, {result['characters']:,} characters "
               f"({result['scope']})")
    click.echo(f"  bits/char: {result['bits_per_char']:.4f}  (every character counted; "
               f"{result['bits_per_char_known']:.4f} on in-vocabulary tokens)")
    if result.get("bits_per_char_long") is not None:
        click.echo(f"  in-vocabulary bits/char {result['bits_per_char_short']:.4f} in a "
                   f"paragraph's first 100 tokens, {result['bits_per_char_long']:.4f} after them "
                   f"({result['positions_long']:,} positions)")
    if "bits_per_char_plain" in result:
        parts = []
        if "cache" in result:
            c = result["cache"]
            parts.append(f"the continuous cache ({c['size']} positions, weight {c['weight']:g}, "
                         f"theta {c['theta']:g})")
        if "dynamic_lr" in result:
            parts.append(f"dynamic evaluation (learning rate {result['dynamic_lr']:g})")
        if "ngram" in result:
            parts.append(f"the word {result['ngram']['order']}-gram (weight "
                         f"{result['ngram']['weight']:g})")
        click.echo(f"  with {' and '.join(parts)}; the model alone: "
                   f"{result['bits_per_char_plain']:.4f}")
    click.echo(f"  bits/word: {result['bits_per_word']:.3f}  perplexity {result['perplexity']:,.1f} "
               f"(per segmented word)")
    if result["oov_share"] > UNKNOWN_WARN:
        click.echo(f"warning: {result['oov_share']:.0%} of the positions are characters the "
                   "model never saw; the figure above is mostly their price, not the model's "
                   "fit to the text", err=True)
    click.echo(f"  unknown characters: {result['oov_share']:.2%} of positions; words spelled "
               f"with their characters: {result['words_not_in_vocab']:.2%}")
    for k in ("top1", "top5", "top10"):
        click.echo(f"  {k:>6}: {result[k]:.2%}")
    click.echo(f"  baseline (always {result['baseline_word']!r}): top1 {result['baseline_top1']:.2%}")


UNKNOWN_WARN = 0.05  # evaluate warns when more of the positions than this are unknown


@main.command("fit-cache")
@click.argument("segmented", type=click.Path(dir_okay=False))
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False),
              help="Model directory whose config.json gets the fitted cache.")
@quiet_option
@friendly
def fit_cache(segmented, model_dir, quiet):
    """Fit the test-time adaptation (the continuous cache and the learning rate of dynamic
    evaluation) of a model trained before they existed, on its training text."""
    from .train import fit_model_cache

    fit_model_cache(segmented, model_dir, log=_stderr_log(quiet))


@main.command("fit-ngram")
@click.argument("segmented", type=click.Path(dir_okay=False))
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False),
              help="Model directory to add the word n-gram of its training text to.")
@click.option("--order", default=3, show_default=True, type=click.IntRange(2, 4),
              help="Words of context + 1.")
@quiet_option
@friendly
def fit_ngram(segmented, model_dir, order, quiet):
    """Count the word n-gram of a model's training text (its training part only) and fit
    its mixture weight, for a model trained before `train` did so."""
    from .train import fit_model_ngram

    fit_model_ngram(segmented, model_dir, order=order, log=_stderr_log(quiet))


@main.command()
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="Print this model's card instead (a model dir, default, or base).")
@click.option("--probe", is_flag=True,
              help="Ask the backend which devices it sees (imports it: seconds), instead of "
                   "reading what is installed and the GPUs the driver lists.")
@json_option
@friendly
def info(model_dir, probe, as_json):
    """Which Keras backend, devices and LSTM kernel training would use; with --model, the
    model's card (what it was trained on, how good it is, what it is for)."""
    if model_dir is not None:
        from .card import model_card

        text = model_card(model_dir)
        click.echo(json.dumps({"card": text}, ensure_ascii=False) if as_json else text, nl=False)
        return
    from .backend import describe, describe_installed, fused_lstm_reason, summary_line

    if as_json:
        d = describe() | {"probed": True} if probe else describe_installed()
        d["fused_lstm"] = bool(d["gpus"]) and fused_lstm_reason() is None
        click.echo(json.dumps(d))
    else:
        line = summary_line(probe=probe)  # first: a failure prints nothing on stdout
        click.echo(f"wordlstm {__version__}")
        click.echo(line)


@main.command()
@click.argument("word")
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="Model directory, or base (default: the shipped 红楼梦 model).")
@click.option("--vectors", "vectors_path", default=None, help="A word2vec file instead of a model.")
@click.option("-k", "--top", "k", default=NEIGHBORS, show_default=True,
              type=click.IntRange(1, 10_000), help="How many neighbours.")
@json_option
@friendly
def neighbors(word, model_dir, vectors_path, k, as_json):
    """The words nearest to WORD by cosine similarity."""
    from .modeldir import load_vectors_of
    from .vectors import load_vectors

    vectors = load_vectors(vectors_path) if vectors_path else load_vectors_of(model_dir)
    result = vectors.neighbors(word, k)
    if as_json:
        click.echo(json.dumps({"word": word, "neighbors": [{"word": w, "cosine": round(s, 6)}
                                                           for w, s in result]}, ensure_ascii=False))
    else:
        for w, s in result:
            click.echo(f"{s:.4f}  {w}")


@main.command()
@click.option("--model", "model_dirs", multiple=True, type=click.Path(file_okay=False),
              help="Model directory or base; repeat to serve several (default: the shipped model).")
@click.option("--host", default=ServeDefaults.host, show_default=True,
              help="Address to listen on; 0.0.0.0 serves every interface (no login!).")
@click.option("--port", default=ServeDefaults.port, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0: any free one, printed).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a web browser.")
@click.option("--max-length", default=ServeDefaults.max_length, show_default=True,
              type=click.IntRange(1), help="Words a request may generate.")
@click.option("--max-samples", default=ServeDefaults.max_samples, show_default=True,
              type=click.IntRange(1), help="Samples or lines a request may ask for.")
@click.option("--max-prompt", default=ServeDefaults.max_prompt, show_default=True,
              type=click.IntRange(1), help="Characters of prompt plus prefix.")
@click.option("--time-limit", default=ServeDefaults.time_limit, show_default=True,
              type=click.FloatRange(0, min_open=True), help="Seconds a request may generate.")
@click.option("--max-active", default=ServeDefaults.max_active, show_default=True,
              type=click.IntRange(1), help="Requests generating at once (batched together).")
@click.option("--max-waiting", default=ServeDefaults.max_waiting, show_default=True,
              type=click.IntRange(0), help="Requests queued for a slot; more get 503 + Retry-After.")
@click.option("--allow-host", "allowed_hosts", multiple=True,
              help="A host name the server answers to besides loopback ones (repeat; * for any, "
                   "behind a proxy that checks Host).")
@click.option("--batch/--no-batch", default=ServeDefaults.batch, show_default=True,
              help="Batch concurrent continuations into one network step.")
@quiet_option
@friendly
def serve(model_dirs, open_browser, quiet, **options):
    """Serve the co-writing page and a JSON API (OpenAPI at /openapi.json)."""
    from .serve import ServeConfig
    from .serve import serve as run_server

    config = ServeConfig(**options)
    run_server(list(model_dirs) or [None], config, open_browser, log=_stderr_log(quiet))


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
