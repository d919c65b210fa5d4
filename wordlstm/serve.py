"""`wordlstm serve`: the co-writing page and a JSON API over models loaded once.

FastAPI (on Starlette, served by uvicorn) because it is the well-kept ASGI stack that turns
typed request bodies into validation and an OpenAPI schema with no extra code, and streams
responses (Server-Sent Events) natively; uvicorn is its reference server.

Requests never name files (and answers never show them): models are chosen at start-up and
named by id. `HostCheck` answers only to this server's own names (loopback ones when bound
to loopback), against DNS rebinding. Every request that generates passes `Admission` (at
most `max_active` at once, `max_waiting` queued, the rest get 503 with Retry-After) and a
time budget that counts from when it generates; a client that goes away stops its request,
queued or generating. Continuations are batched across requests by one `Batcher` thread per
model, other modes run in a thread pool, so the event loop only moves bytes.
"""

import asyncio
import collections
import contextlib
import ipaddress
import json
import math
import os
import re
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .errors import UserError
from .generate import (
    Budget,
    Cancelled,
    SamplingConfig,
    Stopped,
    TimeLimitExceeded,
    budget,
)
from .writer import Generation, Request, Writer, printable

STATIC = Path(__file__).with_name("static")
SEED_MAX = 2**32 - 1  # the seeds writer.Request takes (what every engine's generator takes)
MAX_LINE_LENGTH = 50  # words of an acrostic line, characters of a verse form's clause
MAX_CLAUSES = 50  # clauses of a verse form (as writer.Writer.verse_form takes them)
MAX_BIAS = 1000.0  # nats of a bias or penalty: far past any effect, never an overflow
MAX_DRY_BASE = 10.0  # DRY's growth a repeated token: 10**64 at its longest match, still finite
MIN_TEMPERATURE = 0.01  # below, log-probabilities / temperature overflow (greedy is 0)


@dataclass
class ServeConfig:
    """How `wordlstm serve` listens and what one request may ask for."""

    host: str = "127.0.0.1"  # loopback only; 0.0.0.0 serves every interface (warned)
    port: int = 8000  # 0: any free port (printed)
    max_length: int = 2000  # words a request may generate (per sample or line)
    max_samples: int = 16  # samples or lines a request may ask for
    max_prompt: int = 4000  # characters of prompt plus prefix
    max_acrostic: int = 32  # characters of an acrostic's heads
    max_top: int = 50  # next words /api/next may list
    time_limit: float = 60.0  # seconds a request may generate before it is stopped
    max_active: int = 32  # requests generating at once (continuations share one batch)
    max_waiting: int = 32  # requests queued for a slot; beyond that, 503 + Retry-After
    max_wait: float = 30.0  # seconds a queued request waits before it gets 503
    batch: bool = True  # batch concurrent continuations into one network step
    max_body: int = 65536  # bytes of a request body
    # Host names the server answers to besides loopback ones (and IP addresses when not bound
    # to loopback): a page on another site whose name resolves here (DNS rebinding) gets 421.
    # "*": any name (behind a proxy that checks them).
    allowed_hosts: tuple[str, ...] = ()

    def __post_init__(self):
        if not (0 <= self.port <= 65535):
            raise UserError("--port must be 0-65535")
        for name in ("max_length", "max_samples", "max_prompt", "max_active", "max_top"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1")
        if self.max_waiting < 0:
            raise UserError("--max-waiting must not be negative")
        if not (math.isfinite(self.time_limit) and self.time_limit > 0):
            raise UserError("--time-limit must be a positive number of seconds")
        if not (math.isfinite(self.max_wait) and self.max_wait >= 0):
            raise UserError("--max-wait must be a number of seconds >= 0")
        names = []
        for name in self.allowed_hosts:
            clean = str(name).strip().lower().rstrip(".")
            if clean != "*" and _host_name(clean) != clean:
                raise UserError(f"--allow-host {name!r}: give a host name (example.org) or *, "
                                "without a scheme, port or path")
            names.append(clean)
        self.allowed_hosts = tuple(names)


class Busy(Exception):
    """No generation slot: the client should retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class Admission:
    """At most `max_active` requests generate at once and `max_waiting` wait for a slot (first
    come, first served); the rest are turned away at once (503, Retry-After), never left
    hanging.

    Deciding and counting are one step with no `await` between them, so requests arriving
    together cannot all see the same free slot; a freed slot is handed to the first in line,
    not left for whoever asks next. Every method runs on the event loop's thread."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.active = 0  # slots held
        self._queue: collections.deque[asyncio.Future] = collections.deque()
        self._seconds = 1.0  # running mean of a request's time in its slot

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._queue if not f.done())

    def retry_after(self) -> int:
        queued = self.waiting + max(self.active - self.config.max_active + 1, 0)
        return max(1, math.ceil(self._seconds * (1 + queued / self.config.max_active)))

    async def acquire(self) -> float:
        """Take a slot, or wait in line for one (or raise Busy); returns when it was taken,
        for `release`."""
        if self.active < self.config.max_active and not self.waiting:
            self.active += 1
            return time.monotonic()
        if self.waiting >= self.config.max_waiting:
            raise Busy(f"the server is busy ({self.active} requests generating, "
                       f"{self.waiting} waiting); try again shortly", self.retry_after())
        loop = asyncio.get_running_loop()
        slot = loop.create_future()  # True: a slot was handed over; False: timed out
        self._queue.append(slot)
        timer = loop.call_later(self.config.max_wait,
                                lambda: slot.done() or slot.set_result(False))
        try:
            handed = await slot
        except BaseException:  # cancelled (the client went away, the server stops)
            if slot.done() and not slot.cancelled() and slot.result():
                self._hand_on()  # handed a slot just as it gave up: the next in line gets it
            else:
                slot.cancel()
            raise
        finally:
            timer.cancel()
            with contextlib.suppress(ValueError):
                self._queue.remove(slot)
        if not handed:
            raise Busy(f"no generation slot came free within {self.config.max_wait:g} s; "
                       "try again shortly", self.retry_after())
        return time.monotonic()

    def release(self, taken: float) -> None:
        self._seconds = 0.8 * self._seconds + 0.2 * (time.monotonic() - taken)
        self._hand_on()

    def _hand_on(self) -> None:
        """A slot came free: it goes to the first one waiting, or back to the pool."""
        while self._queue:
            slot = self._queue.popleft()
            if not slot.done():
                slot.set_result(True)
                return
        self.active -= 1


class Clock(Budget):
    """A request's Budget whose time limit starts when it begins generating (`start`), not
    while it waits for a slot, a thread or a place in the batch."""

    def __init__(self, seconds: float):
        super().__init__(None)
        self.limit = seconds

    def start(self) -> None:
        if self.deadline is None:
            self.seconds = self.limit
            self.deadline = time.monotonic() + self.limit


class Served:
    """One model loaded for serving: its Writer, its batcher and the facts the page shows."""

    def __init__(self, model_id: str, writer: Writer, batch: bool):
        from .batcher import Batcher

        self.id, self.writer = model_id, writer
        self.batcher = Batcher(writer.gen) if batch else None
        config = writer.config
        history = _read_history(writer.model_dir)
        best = config.training.best_epoch
        bits = [e.get("val_bits_per_char") for e in history if e.get("epoch") == best]
        self.facts = {
            "id": model_id,
            "unit": writer.unit,
            "vocabulary": len(writer.vectors),
            "head": config.model.head,
            "layers": config.model.layers,
            "units": config.model.units,
            "corpus": config.training.corpus,
            "held_out_bits_per_char": round(bits[0], 4) if bits and bits[0] else None,
            "lines": config.training.lines,
            "forms": [f"{f.length}x{f.clauses}" for f in config.lines.forms] if config.lines else [],
        }


    def start(self, request: Request, cfg: SamplingConfig, stop: Clock, stream: bool, pool,
              put) -> None:
        """Start generating `request` off the event loop. `put(kind, value)` (thread-safe)
        gets ("word", {"sample", "text"}) as words come when `stream`, then ("done", a
        Generation or the exception). Plain continuations join the model's batch; the other
        modes run in `pool`. `stop`'s clock starts when the generation does."""
        writer = self.writer
        if (self.batcher is None or request.acrostic or request.n_lines is not None
                or cfg.context != "carry" or cfg.rerank):
            def on_word(word):
                put("word", {"sample": 0, "text": word})

            def run():
                stop.start()
                try:
                    with budget(stop):
                        put("done", writer.write(request, cfg, on_word=on_word
                                                 if stream and request.streams else None))
                except BaseException as err:  # noqa: BLE001 - handed to the request
                    put("done", err)

            pool.submit(run)
            return
        from .batcher import Job

        result = Generation([])
        ids, until = writer.continuation(request.prompt, request.prefix, request.until, result)
        group = writer.gen.group([ids] * request.samples, request.length, cfg, request.seed,
                                 stop=until)
        last = [None] * len(group)

        def on_step(job, nxt):
            for b, out in enumerate(group.out):
                if len(out) == group.steps:  # this stream chose a word now
                    put("word", {"sample": b, "text": _piece(writer, last[b], out[-1])})
                    last[b] = out[-1]

        def on_done(err):
            if err is None:
                writer.finish(result, group.out)
                result.texts = [request.prompt + t for t in result.texts]
            put("done", err or result)

        self.batcher.submit(Job(group, on_step=on_step if stream else None, on_done=on_done,
                                budget=stop, on_start=stop.start))


def _read_history(model_dir: Path) -> list[dict]:
    try:
        return json.loads((Path(model_dir) / "history.json").read_text("utf-8")).get("epochs", [])
    except (OSError, ValueError, AttributeError):
        return []


def load_models(model_dirs: list[str | None], batch: bool = True, log=lambda msg: None) -> dict:
    """Each model directory loaded once (None: the shipped model), by id (its folder's name)."""
    served: dict[str, Served] = {}
    for d in model_dirs or [None]:
        writer = Writer.load(d)
        base = "default" if d is None else Path(d).resolve().name or "model"
        model_id, k = base, 2
        while model_id in served:
            model_id, k = f"{base}-{k}", k + 1
        served[model_id] = Served(model_id, writer, batch)
        log(f"loaded {model_id}: {len(writer.vectors):,} words from {writer.model_dir}")
    return served


def create_app(models: dict, config: ServeConfig | None = None):
    """The ASGI application: the page, its files, and the JSON API."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, StreamingResponse
    from fastapi.staticfiles import StaticFiles
    from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
    from starlette.exceptions import HTTPException
    from starlette.requests import Request as HTTPRequest

    from . import __version__

    config = config or ServeConfig()
    S, R = SamplingConfig, Request
    JSONSafe = _json_response_class()
    default_model = next(iter(models))
    default_length = min(R.length, config.max_length)  # a request that names no length
    # As many generating threads as cores: more would only fight over them (numpy's BLAS
    # runs threads of its own; 8 threads on 2 cores made each request 100x slower).
    pool = ThreadPoolExecutor(max_workers=min(config.max_active, os.cpu_count() or 1),
                              thread_name_prefix="wordlstm")
    # Swagger's page loads from a CDN: the schema is served, the pages that need the internet
    # are not.
    app = FastAPI(title="wordlstm", version=__version__, docs_url=None, redoc_url=None,
                  default_response_class=JSONSafe,
                  description="Continue text in the style a model learned; co-write with it.")
    app.state.admission = Admission(config)

    class Body(BaseModel):
        # The schema's types, strictly: false is not 0 and "10" not 10; no NaN or Infinity
        # (Python's JSON reads them; JSON has none).
        model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

        @model_validator(mode="before")
        @classmethod
        def _whole(cls, data):
            """An integer written as a float (2.0) is that integer, as JSON Schema has it."""
            if not isinstance(data, dict):
                return data
            ints = {n for n, f in cls.model_fields.items() if f.annotation in (int, int | None)}
            return {k: int(v) if k in ints and isinstance(v, float) and v.is_integer()
                    and abs(v) < 2**63 else v for k, v in data.items()}

        @field_validator("*", mode="after")
        @classmethod
        def _text(cls, value):
            if isinstance(value, str):
                for i, c in enumerate(value):
                    if "\ud800" <= c <= "\udfff":
                        raise ValueError(f"character {i + 1} is a lone surrogate "
                                         f"(U+{ord(c):04X}), not text; send UTF-8 text")
            return value

    def doc(**schema):
        """Ranges the schema states and SamplingConfig (or the limits) enforce, in their own
        words: a request outside them gets 400 naming the field; a fuzzer of the schema finds
        any place where the two disagree."""
        return {"json_schema_extra": schema}

    ids = list(models)

    class ContinueBody(Body):
        """What `continue-text` takes, under its option names; defaults are the CLI's."""

        model: str | None = Field(None, description="Model id (GET /api/model); default: the "
                                  "first.", **doc(enum=[*ids, None]))
        prompt: str = Field(R.prompt, description="Text to continue (or a line's start).",
                            **doc(maxLength=config.max_prompt))
        length: int = Field(default_length, ge=1, description="Words to generate (the most "
                            "per line with lines; not used by acrostic or a verse form).",
                            **doc(maximum=config.max_length))
        until: str | None = Field(None, description="Stop once the text ends with this.")
        seed: int | None = Field(None, ge=0, le=SEED_MAX,
                                 description="Same seed, same text (none: drawn and returned).")
        samples: int = Field(R.samples, ge=1, description="Continuations, made as one batch.",
                             **doc(maximum=config.max_samples))
        prefix: str = Field(R.prefix, description="Fed to the model first, not returned.",
                            **doc(maxLength=config.max_prompt))
        acrostic: str | None = Field(None, description="藏头诗: one line per character.",
                                     **doc(maxLength=config.max_acrostic))
        line_length: int | None = Field(None, ge=2, le=MAX_LINE_LENGTH,
                                        description="Words per acrostic line.")
        lines: int | None = Field(None, ge=1, description="Make N whole lines (line models).",
                                  **doc(maximum=config.max_samples))
        novel_only: bool = Field(False, description="With lines: only lines not in the training file.")
        form: str | None = Field(None, description="With lines on a poem model: 5x4, 7x8, ... "
                                 "(characters a clause x clauses) or free.",
                                 **doc(pattern=f"^(free|{FORM.pattern})$"))
        greedy: bool = S.greedy
        temperature: float = Field(S.temperature, **doc(minimum=MIN_TEMPERATURE))
        top_k: int = Field(S.top_k, **doc(minimum=0))
        top_p: float = Field(S.top_p, **doc(exclusiveMinimum=0, maximum=1))
        dry: float = Field(S.dry_multiplier, ge=0, le=MAX_BIAS,
                           description="DRY loop control (0: off).")
        dry_base: float = Field(S.dry_base, ge=0, le=MAX_DRY_BASE)
        dry_allowed: int = Field(S.dry_allowed, **doc(minimum=0))
        # Nats added to log-probabilities (float32 in the network) and divided by the
        # temperature: far beyond any effect they overflowed (a 500)
        paragraph_bias: float = Field(S.paragraph_bias, ge=-MAX_BIAS, le=MAX_BIAS)
        punct_bias: float = Field(S.punct_bias, ge=-MAX_BIAS, le=MAX_BIAS)
        no_repeat_ngram: int = Field(S.no_repeat_ngram, **doc(minimum=0))
        repetition_penalty: float = Field(S.repetition_penalty, ge=0, le=MAX_BIAS)
        context: str = Field(S.context, description="carry or window",
                             **doc(enum=["carry", "window"]))
        min_p: float = Field(S.min_p, description="Min-p truncation (0: off).",
                             **doc(minimum=0, exclusiveMaximum=1))
        typical_p: float = Field(S.typical_p, description="Locally typical sampling (1: off).",
                                 **doc(exclusiveMinimum=0, maximum=1))
        rerank: int = Field(S.rerank, description="Clause candidates to choose among (0: off).",
                            **doc(minimum=0, maximum=64))
        clause_words: int = Field(S.clause_words, **doc(minimum=1, maximum=256))
        rerank_pmi: float = Field(S.rerank_pmi, **doc(minimum=0, maximum=1))
        min_count: int = Field(S.min_count, description="Never write words seen fewer times.",
                               **doc(minimum=0))
        other_scripts: bool = S.other_scripts
        headings: bool = S.headings
        cache: bool = Field(S.cache, description="Mix in the model's continuous cache.")
        adapt: bool = Field(S.adapt, description="Adapt the head to the prompt first.")
        stream: bool = Field(False, description="Answer with Server-Sent Events: a `word` event "
                             "per word, then `done` with the JSON answer (or `error`).")

    class NextBody(Body):
        model: str | None = Field(None, **doc(enum=[*ids, None]))
        text: str = Field("", description="The text so far.", **doc(maxLength=config.max_prompt))
        prefix: str = Field("", **doc(maxLength=config.max_prompt))
        k: int = Field(5, description="How many next words.",
                       **doc(minimum=1, maximum=config.max_top))

    class ErrorAnswer(BaseModel):
        error: str = Field(description="What was wrong, naming the field.")

    class ContinueAnswer(BaseModel):
        prompt: str
        model: str
        seed: int
        texts: list[str]
        words: list[int]
        unknown: list[str]
        split: list[str]
        seconds: float
        dropped_as_not_novel: int | None = Field(None, description="With lines.")

    class NextWord(BaseModel):
        text: str
        probability: float

    class NextAnswer(BaseModel):
        model: str
        words: list[NextWord]
        unknown: list[str]
        split: list[str]

    def sse(kind: str, data: dict) -> dict:
        return {"type": "object", "required": ["event", "data"],
                "properties": {"event": {"const": kind},
                               "data": {"type": "string", "contentMediaType": "application/json",
                                        "contentSchema": data}}}

    sse_event = {"description": "Each event of a streamed answer", "oneOf": [
        sse("word", {"type": "object", "required": ["sample", "text"],
                     "properties": {"sample": {"type": "integer"}, "text": {"type": "string"}}}),
        sse("done", {"$ref": "#/components/schemas/ContinueAnswer"}),
        sse("error", {"type": "object", "required": ["error", "status"],
                      "properties": {"error": {"type": "string"},
                                     "status": {"type": "integer"}}})]}

    def documented(*codes, ok=None):
        why = {400: "A request this server will not run (the field is named)",
               413: "The request body is too large",
               421: "Not a host name of this server (DNS rebinding protection)",
               422: "A field of the wrong type or range, or a body that is not JSON",
               503: "Busy, or stopped at the time limit: retry after Retry-After seconds"}
        out = {c: {"model": ErrorAnswer, "description": why[c]} for c in codes}
        if ok is not None:
            out[200] = ok
        return out

    def error(status: int, message: str, headers=None):
        return JSONSafe({"error": visible(message)}, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc):
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            return error(422, "the body is not JSON: " + str(
                (first.get("ctx") or {}).get("error", "invalid")))
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        if first.get("type") == "string_unicode":  # a lone surrogate where pydantic reads it
            where = where or f"field name {first.get('input')!r}"
            msg = "not text (a lone surrogate); send UTF-8 text"
        return error(422, f"{where}: {msg}" if where else msg)

    @app.exception_handler(HTTPException)
    async def http_error(request, exc):
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(UserError)
    async def user_error(request, exc):
        return error(400, public(str(exc)))

    @app.exception_handler(Exception)
    async def internal(request, exc):
        traceback.print_exception(exc, file=sys.stderr)
        return error(500, "internal error (the server's log has the details)")

    @app.exception_handler(Busy)
    async def busy(request, exc):
        return error(503, str(exc), {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(TimeLimitExceeded)
    async def too_long(request, exc):
        return error(503, str(exc), {"Retry-After": str(app.state.admission.retry_after())})

    names = {f: f for f in ContinueBody.model_fields} | {f: f for f in NextBody.model_fields}
    names |= {"dry_multiplier": "dry", "n_lines": "lines"}

    def api_names(message: str) -> str:
        """A message from the library under the API's names: `--top-p`, `top-p` -> top_p."""
        def name(m):
            key = m.group(2).replace("-", "_")
            if key in names and (m.group(1) or "-" in m.group(2)):
                return names[key]
            return m.group(0)

        return re.sub(r"(?<![\w-])(--)?([a-z]+(?:-[a-z]+)*)(?![\w-])", name, message)

    # Requests never name files, and answers never show them: a model's directory in a
    # message (from the library, which names paths for the CLI) becomes its id.
    paths = {}
    for m in models.values():
        for d in {str(m.writer.model_dir), str(Path(m.writer.model_dir).resolve())}:
            paths[d] = f"model {m.id!r}"

    def public(message: str) -> str:
        for d in sorted(paths, key=len, reverse=True):
            message = message.replace(d, paths[d])
        return api_names(message)

    def pick(model_id: str | None) -> Served:
        served = models.get(default_model if model_id is None else model_id)
        if served is None:
            raise UserError(f"unknown model {model_id!r}; this server has: {', '.join(models)}")
        return served

    def check_limits(body: ContinueBody, served: Served) -> None:
        """What a request asks for against this server's limits, naming its fields; each
        mode is bound by what it writes (an acrostic by its lines, a verse form by its
        clauses, not by a length it does not use)."""
        c = config
        n = len(body.prompt) + len(body.prefix)
        if n > c.max_prompt:
            what = "prompt and prefix" if body.prefix else "prompt"
            raise UserError(f"{what}: {n:,} characters{' together' if body.prefix else ''}; "
                            f"this server takes at most {c.max_prompt:,}")
        if body.samples > c.max_samples:
            raise UserError(f"samples {body.samples:,}: this server makes at most "
                            f"{c.max_samples} samples a request")
        if body.lines is not None and body.lines > c.max_samples:
            raise UserError(f"lines {body.lines:,}: this server makes at most "
                            f"{c.max_samples} lines a request")
        if (body.novel_only or body.form is not None) and body.lines is None:
            raise UserError("novel_only and form go with lines (N whole lines)")
        if body.acrostic:
            heads = body.acrostic.strip()
            if not heads:
                raise UserError("acrostic: give the characters that head its lines")
            if len(heads) > c.max_acrostic:
                raise UserError(f"acrostic: {len(heads):,} characters; this server takes at "
                                f"most {c.max_acrostic}")
            per_line = body.line_length or served.writer.config.acrostic_length
            words = len(heads) * (per_line + 1)
            if words > c.max_length:
                raise UserError(f"acrostic: {len(heads)} lines of {per_line} words (line_length)"
                                f" and a mark are {words:,} words; this server writes at most "
                                f"{c.max_length:,} words a request")
            return
        form = verse_form(body.form) if body.lines is not None else None
        if form is not None:
            words = (form[0] + 1) * form[1]
            if words > c.max_length:
                raise UserError(f"form {form[0]}x{form[1]}: {words:,} words a line (its "
                                f"clauses and their marks); this server writes at most "
                                f"{c.max_length:,} words a line")
        elif body.length > c.max_length:
            raise UserError(f"length {body.length:,}: this server writes at most "
                            f"{c.max_length:,} words {'a line' if body.lines else 'a request'}")

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/model", summary="The models this server has, its limits and the defaults",
             responses=documented(421))
    async def model_info():
        limits = {k: v for k, v in asdict(config).items()
                  if k not in ("host", "port", "allowed_hosts")}
        defaults = {"length": default_length, "temperature": S.temperature, "top_p": S.top_p,
                    "top_k": S.top_k, "samples": R.samples, "k": 5}
        return {"models": [m.facts for m in models.values()], "default": default_model,
                "limits": limits, "defaults": defaults, "version": __version__}

    @app.post("/api/next", summary="The model's likeliest next words after a text",
              responses=documented(400, 413, 421, 422, 503, ok={"model": NextAnswer}))
    async def next_words(body: NextBody, http: HTTPRequest):
        served = pick(body.model)
        if not (1 <= body.k <= config.max_top):
            raise UserError(f"k must be 1-{config.max_top}")
        n = len(body.text) + len(body.prefix)
        if n > config.max_prompt:
            what = "text and prefix" if body.prefix else "text"
            raise UserError(f"{what}: {n:,} characters{' together' if body.prefix else ''}; "
                            f"this server takes at most {config.max_prompt:,}")
        text = printable(body.text, "text")
        prefix = printable(body.prefix, "prefix")
        stop = Clock(config.time_limit)

        def run():
            stop.start()
            with budget(stop):
                return served.writer.next_words(text, body.k, prefix)

        admission = app.state.admission
        taken = await _or_gone(http.receive, admission.acquire())
        try:
            work = asyncio.get_running_loop().run_in_executor(pool, run)
            try:
                top, result = await _or_gone(http.receive, asyncio.shield(work))
            except BaseException:
                stop.cancelled = True  # the thread stops at its next check; the slot is
                with contextlib.suppress(BaseException):  # free when it has
                    await work
                raise
        finally:
            admission.release(taken)
        return {"model": served.id, "words": [{"text": t, "probability": round(p, 6)}
                                              for t, p in top],
                "unknown": result.unknown, "split": result.split}

    @app.post("/api/continue", summary="Continue a prompt (as `continue-text --json`)",
              responses=documented(400, 413, 421, 422, 503, ok={
                  "model": ContinueAnswer,
                  "content": {"text/event-stream": {"schema": sse_event}}}))
    async def continue_(body: ContinueBody, http: HTTPRequest):
        served = pick(body.model)
        check_limits(body, served)
        options = body.model_dump()
        options["n_lines"] = options.pop("lines")
        options["dry_multiplier"] = options.pop("dry")
        if options["seed"] is None:  # drawn, and returned, so any text can be made again
            options["seed"] = int.from_bytes(os.urandom(4), "little") >> 1
        cfg = SamplingConfig(**_of(options, SamplingConfig))  # their messages' option
        request = Request(**_of(options, Request)).printable()  # names: see api_names
        if cfg.temperature < MIN_TEMPERATURE:
            raise UserError(f"temperature must be at least {MIN_TEMPERATURE:g} (use greedy "
                            "for none)")
        started = time.perf_counter()

        def answer(result: Generation) -> dict:
            extra = {"dropped_as_not_novel": result.dropped} if request.n_lines is not None else {}
            return {"prompt": request.prompt, "model": served.id, "seed": request.seed,
                    "texts": result.texts, "words": result.words, "unknown": result.unknown,
                    "split": result.split, "seconds": round(time.perf_counter() - started, 4),
                    **extra}

        events: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        stop = Clock(config.time_limit)  # counts from when it generates, not while queued
        admission = app.state.admission
        taken = await _or_gone(http.receive, admission.acquire())

        def deliver(kind, value):
            if kind == "done":  # the slot is free when the generation ends, whoever listens
                admission.release(taken)
            events.put_nowait((kind, value))

        try:
            served.start(request, cfg, stop, body.stream, pool,
                         lambda kind, value: loop.call_soon_threadsafe(deliver, kind, value))
        except BaseException:
            admission.release(taken)
            raise

        if body.stream:
            return StreamingResponse(_sse(events, answer, stop, public),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})

        async def done():
            while (item := await events.get())[0] != "done":
                pass
            return item[1]

        try:
            outcome = await _or_gone(http.receive, done())
        finally:
            stop.cancelled = True  # if the client went away, stop generating for it
        if isinstance(outcome, BaseException):
            raise outcome
        return answer(outcome)

    outer = HostCheck(BodyLimit(app, config.max_body), config)
    outer.state = app.state
    return outer


FORM = re.compile(r"([0-9]+)[xX]([0-9]+)")  # a verse form: characters a clause x clauses


def verse_form(form: str | None) -> tuple[int, int] | None:
    """(clause length, clauses) of a request's `form` ("5x4"; None or "free": none), as the
    schema's pattern has it, checked under the API's name."""
    if form is None or form == "free":
        return None
    match = FORM.fullmatch(form)
    if match is None:
        raise UserError(f"form {form!r}: write it as CLAUSE_LENGTHxCLAUSES, e.g. 5x4 or 7x8, "
                        "or free")
    length, clauses = int(match[1]), int(match[2])
    if not (1 <= length <= MAX_LINE_LENGTH and 1 <= clauses <= MAX_CLAUSES):
        raise UserError(f"form {form!r}: 1-{MAX_LINE_LENGTH} characters a clause and "
                        f"1-{MAX_CLAUSES} clauses")
    return length, clauses


def visible(text: str) -> str:
    """`text` that encodes as UTF-8: a lone surrogate is shown as its escape (\\ud800)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


async def _disconnected(receive) -> None:
    """Returns when the client has gone (after the body, receive only tells that)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _or_gone(receive, awaitable):
    """`awaitable`'s result; if the client disconnects first, it is cancelled and Cancelled
    raised. Admission, generating: nothing goes on for a client that left."""
    work = asyncio.ensure_future(awaitable)
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        work.cancel()
        raise
    finally:
        gone.cancel()
    if not work.done():
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        raise Cancelled("the client went away")
    return work.result()


async def _sse(events: asyncio.Queue, answer, stop: Budget, names=lambda message: message):
    """A generation's events as Server-Sent Events: `word` events (those that came meanwhile
    in one write), then `done` with the JSON answer, or `error`. If the client goes away,
    `stop` ends the generation (and so frees its slot)."""
    try:
        while True:
            kind, value = await events.get()
            chunk = []
            while kind == "word":
                chunk.append(_event("word", value))
                if events.empty():
                    break
                kind, value = events.get_nowait()
            if chunk:
                yield b"".join(chunk)
            if kind == "word":
                continue
            if isinstance(value, Stopped):
                yield _event("error", {"error": str(value), "status": 503})
            elif isinstance(value, UserError):
                yield _event("error", {"error": names(str(value)), "status": 400})
            elif isinstance(value, BaseException):
                traceback.print_exception(value, file=sys.stderr)
                yield _event("error", {"error": "internal error (the server's log has the "
                                                "details)", "status": 500})
            else:
                yield _event("done", answer(value))
            return
    finally:
        stop.cancelled = True


def _of(options: dict, config_class) -> dict:
    names = {f.name for f in fields(config_class)}
    return {k: v for k, v in options.items() if k in names}


def _piece(writer: Writer, prev: int | None, token: int) -> str:
    """The text one more word adds (a space only between two Latin words, as render does)."""
    if prev is None:
        return writer.text([token])
    return writer.text([prev, token])[len(writer.text([prev])):]


def _event(kind: str, data: dict) -> bytes:
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    return f"event: {kind}\ndata: {text}\n\n".encode("utf-8", "backslashreplace")


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes gets 413, and is never held whole
    (read up to the limit, then handed on in one piece)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await _reject(send, self.limit)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                return await _reject(send, self.limit)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: the disconnect, when it comes
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


async def _reject(send, limit: int) -> None:
    body = json.dumps({"error": f"the request body is over {limit:,} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _json_response_class():
    from fastapi.responses import JSONResponse

    class JSONSafe(JSONResponse):
        """JSON that always encodes: a lone surrogate anywhere is written as its escape."""

        def render(self, content) -> bytes:
            return json.dumps(content, ensure_ascii=False, allow_nan=False,
                              separators=(",", ":")).encode("utf-8", "backslashreplace")

    return JSONSafe


_HOST_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def _host_name(host: str) -> str | None:
    """The name (lower case, no port, no trailing dot; an IPv6 address without brackets) a
    Host header gives, or None if it is not one."""
    host = host.strip().lower()
    if host.startswith("["):
        address, _, port = host[1:].partition("]")
        if port and not (port.startswith(":") and port[1:].isdigit()):
            return None
        try:
            return str(ipaddress.IPv6Address(address))
        except ValueError:
            return None
    name, colon, port = host.partition(":")
    if colon and not (port.isdigit() and port.isascii()):
        return None
    name = name.removesuffix(".")
    if not name or len(name) > 253 or not all(_HOST_LABEL.fullmatch(x) for x in name.split(".")):
        return None
    return name


def _is_loopback(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):  # RFC 6761: always loopback
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class HostCheck:
    """ASGI middleware against DNS rebinding: a page on another site whose name its owner
    points at this machine would otherwise drive the API and read its answers. Bound to
    loopback, the server answers only to loopback names and addresses; bound elsewhere, also
    to IP addresses (no site can own one), its own host name and `allowed_hosts`. Any other
    Host gets 421 with a JSON error."""

    def __init__(self, app, config: ServeConfig):
        self.app = app
        name = _host_name(config.host) or config.host
        self.loopback = _is_loopback(name)
        self.names = set(config.allowed_hosts)
        if not self.loopback and not _is_ip(name):  # bound to a name: that name
            self.names.add(name)

    def allows(self, name: str) -> bool:
        if "*" in self.names or name in self.names or _is_loopback(name):
            return True
        return not self.loopback and _is_ip(name)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or "*" in self.names:
            return await self.app(scope, receive, send)
        hosts = [v for k, v in scope.get("headers") or [] if k == b"host"]
        raw = hosts[0].decode("latin-1") if len(hosts) == 1 else None
        name = _host_name(raw) if raw is not None else None
        if name is not None and self.allows(name):
            return await self.app(scope, receive, send)
        if raw is None:
            why = "a request needs one Host header"
        else:
            why = f"Host {raw!r} is not a name of this server"
        where = ("localhost and loopback addresses (127.0.0.1, [::1])" if self.loopback else
                 "its IP addresses, localhost" + "".join(f", {n}" for n in sorted(self.names)))
        message = (f"{why}: it answers to {where} only, so that a page on another site cannot "
                   "use it (DNS rebinding); serve with --allow-host NAME to answer to a name")
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        body = json.dumps({"error": visible(message)}, ensure_ascii=False).encode()
        await send({"type": "http.response.start", "status": 421,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def serve(model_dirs: list[str | None], config: ServeConfig, open_browser: bool = False,
          log=print) -> None:
    """Load the models, bind, print the address, and serve until Ctrl-C."""
    import socket

    import uvicorn

    if config.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {config.host}: anyone who can reach this machine can use "
              "the model (there is no login); the default 127.0.0.1 serves this machine only",
              file=sys.stderr)
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as err:
        raise UserError(f"cannot listen on {config.host}:{config.port}: {err.strerror}") from None
    models = load_models(model_dirs, config.batch, log)  # after the port is ours
    app = create_app(models, config)
    sock.listen(2048)  # connections wait in the backlog from now on, not refused
    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    print(f"serving {', '.join(models)} at {url} (Ctrl-C to stop)", flush=True)
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           timeout_graceful_shutdown=2))
    server.run(sockets=[sock])
