"""`wordlstm serve`: the co-writing page and a JSON API over models loaded once.

FastAPI (on Starlette, served by uvicorn) because it is the well-kept ASGI stack that turns
typed request bodies into validation and an OpenAPI schema with no extra code, and streams
responses (Server-Sent Events) natively; uvicorn is its reference server.

Requests never name files: models are chosen at start-up and named by id. Every request
that generates passes `Admission` (at most `max_active` at once, `max_waiting` queued, the
rest get 503 with Retry-After) and a time budget; continuations are batched across
requests by one `Batcher` thread per model, other modes run in a thread pool, so the event
loop only moves bytes.
"""

import asyncio
import json
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .errors import UserError
from .generate import Budget, SamplingConfig, Stopped, TimeLimitExceeded, budget
from .writer import Generation, Request, Writer, printable

STATIC = Path(__file__).with_name("static")


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


class Busy(Exception):
    """No generation slot: the client should retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class Admission:
    """At most `max_active` requests generate at once and `max_waiting` wait for a slot;
    the rest are turned away at once (503, Retry-After), never left hanging."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.active = 0
        self.waiting = 0
        self._slots = asyncio.Semaphore(config.max_active)
        self._seconds = 1.0  # running mean of a request's time in its slot

    def retry_after(self) -> int:
        queued = self.waiting + max(self.active - self.config.max_active + 1, 0)
        return max(1, math.ceil(self._seconds * (1 + queued / self.config.max_active)))

    async def acquire(self) -> float:
        """Wait for a slot (or raise Busy); returns when it was taken, for `release`."""
        if self.active >= self.config.max_active and self.waiting >= self.config.max_waiting:
            raise Busy(f"the server is busy ({self.active} requests generating, "
                       f"{self.waiting} waiting); try again shortly", self.retry_after())
        self.waiting += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), self.config.max_wait)
        except TimeoutError:
            raise Busy(f"no generation slot came free within {self.config.max_wait:g} s; "
                       "try again shortly", self.retry_after()) from None
        finally:
            self.waiting -= 1
        self.active += 1
        return time.monotonic()

    def release(self, taken: float) -> None:
        self.active -= 1
        self._seconds = 0.8 * self._seconds + 0.2 * (time.monotonic() - taken)
        self._slots.release()


class Served:
    """One model loaded for serving: its Writer, its batcher and the facts the page shows."""

    def __init__(self, model_id: str, writer: Writer, batch: bool):
        from .batcher import Batcher

        self.id, self.writer = model_id, writer
        self.batcher = Batcher(writer.gen) if batch else None
        config = writer.config
        history = _read_history(writer.model_dir)
        best = config.get("training", {}).get("best_epoch")
        bits = [e.get("val_bits_per_char") for e in history if e.get("epoch") == best]
        self.facts = {
            "id": model_id,
            "unit": writer.unit,
            "vocabulary": len(writer.vectors),
            "head": config["model"].get("head", "vector"),
            "layers": config["model"].get("layers", 1),
            "units": config["model"]["units"],
            "corpus": config.get("training", {}).get("corpus"),
            "held_out_bits_per_char": round(bits[0], 4) if bits and bits[0] else None,
            "lines": bool(config.get("training", {}).get("lines")),
            "forms": [f"{f[0]}x{f[1]}" for f in (config.get("lines") or {}).get("forms") or []],
        }


    def start(self, request: Request, cfg: SamplingConfig, stop: Budget, stream: bool, pool,
              put) -> None:
        """Start generating `request` off the event loop. `put(kind, value)` (thread-safe)
        gets ("word", {"sample", "text"}) as words come when `stream`, then ("done", a
        Generation or the exception). Plain continuations join the model's batch; the other
        modes run in `pool`."""
        writer = self.writer
        if (self.batcher is None or request.acrostic or request.n_lines is not None
                or cfg.context != "carry" or cfg.rerank):
            def on_word(word):
                put("word", {"sample": 0, "text": word})

            def run():
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
                                budget=stop))


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
    from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
    from fastapi.staticfiles import StaticFiles
    from pydantic import BaseModel, ConfigDict, Field
    from starlette.exceptions import HTTPException

    from . import __version__

    config = config or ServeConfig()
    S, R = SamplingConfig, Request
    default_model = next(iter(models))
    # As many generating threads as cores: more would only fight over them (numpy's BLAS
    # runs threads of its own; 8 threads on 2 cores made each request 100x slower).
    pool = ThreadPoolExecutor(max_workers=min(config.max_active, os.cpu_count() or 1),
                              thread_name_prefix="wordlstm")
    # Swagger's page loads from a CDN: the schema is served, the pages that need the internet
    # are not.
    app = FastAPI(title="wordlstm", version=__version__, docs_url=None, redoc_url=None,
                  description="Continue text in the style a model learned; co-write with it.")
    app.state.admission = Admission(config)

    class ContinueBody(BaseModel):
        """What `continue-text` takes, under its option names; defaults are the CLI's."""

        model_config = ConfigDict(extra="forbid")
        model: str | None = Field(None, description="Model id (GET /api/model); default: the first.")
        prompt: str = Field(R.prompt, description="Text to continue (or a line's start).")
        length: int = Field(R.length, description="Words to generate (the most per line with lines).")
        until: str | None = Field(None, description="Stop once the text ends with this.")
        seed: int | None = Field(None, description="Same seed, same text (none: drawn and returned).")
        samples: int = Field(R.samples, description="Continuations, made as one batch.")
        prefix: str = Field(R.prefix, description="Fed to the model first, not returned.")
        acrostic: str | None = Field(None, description="藏头诗: one line per character.")
        line_length: int | None = Field(None, description="Words per acrostic line.")
        lines: int | None = Field(None, description="Make N whole lines (line models).")
        novel_only: bool = Field(False, description="With lines: only lines not in the training file.")
        form: str | None = Field(None, description="With lines on a poem model: 5x4, 7x8, ... or free.")
        greedy: bool = S.greedy
        temperature: float = S.temperature
        top_k: int = S.top_k
        top_p: float = S.top_p
        dry: float = Field(S.dry_multiplier, description="DRY loop control (0: off).")
        dry_base: float = S.dry_base
        dry_allowed: int = S.dry_allowed
        paragraph_bias: float = S.paragraph_bias
        punct_bias: float = S.punct_bias
        no_repeat_ngram: int = S.no_repeat_ngram
        repetition_penalty: float = S.repetition_penalty
        context: str = Field(S.context, description="carry or window")
        min_p: float = Field(S.min_p, description="Min-p truncation (0: off).")
        typical_p: float = Field(S.typical_p, description="Locally typical sampling (1: off).")
        rerank: int = Field(S.rerank, description="Clause candidates to choose among (0: off).")
        clause_words: int = S.clause_words
        rerank_pmi: float = S.rerank_pmi
        min_count: int = Field(S.min_count, description="Never write words seen fewer times.")
        other_scripts: bool = S.other_scripts
        headings: bool = S.headings
        cache: bool = Field(S.cache, description="Mix in the model's continuous cache.")
        adapt: bool = Field(S.adapt, description="Adapt the head to the prompt first.")
        stream: bool = Field(False, description="Answer with Server-Sent Events: a `word` event "
                             "per word, then `done` with the JSON answer (or `error`).")

    class NextBody(BaseModel):
        model_config = ConfigDict(extra="forbid")
        model: str | None = None
        text: str = Field("", description="The text so far.")
        prefix: str = ""
        k: int = Field(5, description="How many next words.")

    def error(status: int, message: str, headers=None):
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return error(422, f"{where}: {first.get('msg', 'invalid')}" if where else
                     first.get("msg", "invalid request"))

    @app.exception_handler(HTTPException)
    async def http_error(request, exc):
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(UserError)
    async def user_error(request, exc):
        return error(400, str(exc))

    @app.exception_handler(Exception)
    async def internal(request, exc):
        return error(500, f"internal error: {exc!r}")

    @app.exception_handler(Busy)
    async def busy(request, exc):
        return error(503, str(exc), {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(TimeLimitExceeded)
    async def too_long(request, exc):
        return error(503, str(exc), {"Retry-After": str(app.state.admission.retry_after())})

    def pick(model_id: str | None) -> Served:
        served = models.get(model_id or default_model)
        if served is None:
            raise UserError(f"unknown model {model_id!r}; this server has: {', '.join(models)}")
        return served

    def check_limits(body: ContinueBody) -> None:
        c = config
        if len(body.prompt) + len(body.prefix) > c.max_prompt:
            raise UserError(f"the prompt and prefix are {len(body.prompt) + len(body.prefix):,} "
                            f"characters; this server takes at most {c.max_prompt:,}")
        if body.length > c.max_length:
            raise UserError(f"length {body.length:,}: this server writes at most "
                            f"{c.max_length:,} words a request")
        if body.samples > c.max_samples or (body.lines or 0) > c.max_samples:
            raise UserError(f"this server makes at most {c.max_samples} samples or lines a request")
        if body.acrostic and len(body.acrostic) > c.max_acrostic:
            raise UserError(f"an acrostic of at most {c.max_acrostic} characters")
        if body.line_length is not None and body.line_length > 50:
            raise UserError("line_length: at most 50")

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/model", summary="The models this server has, its limits and the defaults")
    async def model_info():
        limits = {k: v for k, v in asdict(config).items() if k not in ("host", "port")}
        defaults = {"length": R.length, "temperature": S.temperature, "top_p": S.top_p,
                    "top_k": S.top_k, "samples": R.samples, "k": 5}
        return {"models": [m.facts for m in models.values()], "default": default_model,
                "limits": limits, "defaults": defaults, "version": __version__}

    @app.post("/api/next", summary="The model's likeliest next words after a text")
    async def next_words(body: NextBody):
        served = pick(body.model)
        if not (1 <= body.k <= config.max_top):
            raise UserError(f"k must be 1-{config.max_top}")
        if len(body.text) + len(body.prefix) > config.max_prompt:
            raise UserError(f"the text is {len(body.text):,} characters; this server takes at "
                            f"most {config.max_prompt:,}")
        text = printable(body.text, "text")
        prefix = printable(body.prefix, "prefix")

        def run():
            with budget(Budget(config.time_limit)):
                return served.writer.next_words(text, body.k, prefix)

        taken = await app.state.admission.acquire()
        try:
            top, result = await asyncio.get_running_loop().run_in_executor(pool, run)
        finally:
            app.state.admission.release(taken)
        return {"model": served.id, "words": [{"text": t, "probability": round(p, 6)}
                                              for t, p in top],
                "unknown": result.unknown, "split": result.split}

    @app.post("/api/continue", summary="Continue a prompt (as `continue-text --json`)",
              responses={200: {"content": {"text/event-stream": {}}}})
    async def continue_(body: ContinueBody):
        served = pick(body.model)
        check_limits(body)
        options = body.model_dump()
        options["n_lines"] = options.pop("lines")
        options["dry_multiplier"] = options.pop("dry")
        if options["seed"] is None:  # drawn, and returned, so any text can be made again
            options["seed"] = int.from_bytes(os.urandom(4), "little") >> 1
        cfg = SamplingConfig(**_of(options, SamplingConfig))
        request = Request(**_of(options, Request)).printable()
        started = time.perf_counter()

        def answer(result: Generation) -> dict:
            extra = {"dropped_as_not_novel": result.dropped} if request.n_lines is not None else {}
            return {"prompt": request.prompt, "model": served.id, "seed": request.seed,
                    "texts": result.texts, "words": result.words, "unknown": result.unknown,
                    "split": result.split, "seconds": round(time.perf_counter() - started, 4),
                    **extra}

        events: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        stop = Budget(config.time_limit)
        admission = app.state.admission
        taken = await admission.acquire()

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
            return StreamingResponse(_sse(events, answer, stop), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        try:
            while (item := await events.get())[0] != "done":
                pass
        finally:
            stop.cancelled = True  # if the client went away, stop generating for it
        if isinstance(item[1], BaseException):
            raise item[1]
        return answer(item[1])

    return BodyLimit(app, config.max_body)



async def _sse(events: asyncio.Queue, answer, stop: Budget):
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
                yield _event("error", {"error": str(value), "status": 400})
            elif isinstance(value, BaseException):
                yield _event("error", {"error": f"internal error: {value!r}", "status": 500})
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
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


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
