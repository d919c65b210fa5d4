"""`wordlstm serve`: the JSON API on a real server over loopback, and the co-writing page
driven in headless Chromium (Debian's chromium + chromium-driver through Selenium)."""

import asyncio
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import run

from wordlstm.sampling import SamplingConfig
from wordlstm.writer import Generation, Request, Writer

REPO = Path(__file__).resolve().parent.parent


class Server:
    """A `wordlstm serve` subprocess on a free loopback port."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wordlstm.cli", "serve", "--port", "0", "--quiet", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        line = self.proc.stdout.readline()  # "serving ... at http://127.0.0.1:PORT/ ..."
        if "http://" not in line:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line}{self.proc.stderr.read()}")
        self.url = line.split(" at ")[1].split()[0]
        parts = urlsplit(self.url)
        self.host, self.port = parts.hostname, parts.port

    def request(self, method, path, body=None, raw=None, timeout=60):
        """(status, headers, parsed JSON or text)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        text = r.read().decode("utf-8")
        conn.close()
        kind = r.getheader("Content-Type") or ""
        return r.status, dict(r.getheaders()), json.loads(text) if "json" in kind else text

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def server(poem_model):
    s = Server("--model", REPO / "models" / "default", "--model", poem_model / "m")
    yield s
    s.stop()


def events(text):
    """Server-sent events as (kind, data) pairs."""
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((fields["event"], json.loads(fields["data"])))
    return out


def test_model_facts_limits_and_openapi(server):
    status, _, info = server.request("GET", "/api/model")
    assert status == 200 and info["default"] == "default"
    default, poems = info["models"]
    assert default["vocabulary"] > 10000 and default["unit"] == "word" and not default["lines"]
    assert 5 < default["held_out_bits_per_char"] < 7
    assert poems["id"] == "m" and poems["lines"] and poems["forms"] == ["5x4"]
    assert info["defaults"]["temperature"] == SamplingConfig.temperature
    assert info["defaults"]["length"] == Request.length
    status, _, schema = server.request("GET", "/openapi.json")
    assert {"/api/continue", "/api/next", "/api/model"} <= set(schema["paths"])
    status, _, page = server.request("GET", "/")
    assert status == 200 and "<textarea" in page
    assert "http" not in page.replace('href="/openapi.json"', "")  # nothing from the internet


def test_continue_is_what_the_cli_writes(server):
    """Same keys and, with the same seed, the same text as `continue-text --json`."""
    body = {"prompt": "宝玉笑道", "length": 40, "seed": 3, "samples": 2, "until": "。"}
    status, _, got = server.post("/api/continue", body)
    assert status == 200
    cli = json.loads(run("continue-text", "宝玉笑道", "-n", 40, "--seed", 3, "--samples", 2,
                         "--until", "。", "--json").output)
    assert set(got) == set(cli)
    assert got["texts"] == cli["texts"] and got["words"] == cli["words"]
    assert got["model"] == "default" and got["seed"] == 3


def test_continue_streams_words_then_the_answer(server):
    status, headers, text = server.post("/api/continue", {"prompt": "黛玉", "length": 30,
                                                          "seed": 5, "stream": True})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    got = events(text)
    words = [d["text"] for k, d in got if k == "word"]
    assert got[-1][0] == "done" and len(words) == 30 == got[-1][1]["words"][0]
    assert "黛玉" + "".join(words) == got[-1][1]["texts"][0]
    alone = Writer.load(REPO / "models" / "default").write(
        Request(prompt="黛玉", length=30, seed=5), SamplingConfig())
    assert got[-1][1]["texts"] == alone.texts


def test_no_seed_draws_one_that_gives_the_text_again(server):
    _, _, a = server.post("/api/continue", {"prompt": "凤姐", "length": 20})
    assert isinstance(a["seed"], int)
    _, _, b = server.post("/api/continue", {"prompt": "凤姐", "length": 20, "seed": a["seed"]})
    assert a["texts"] == b["texts"]


def test_next_words_are_the_models_likeliest(server):
    status, _, got = server.post("/api/next", {"text": "黛玉听了，", "k": 5})
    assert status == 200 and len(got["words"]) == 5
    p = [w["probability"] for w in got["words"]]
    assert p == sorted(p, reverse=True) and 0 < sum(p) <= 1
    w = Writer.load(REPO / "models" / "default")
    expected, _ = w.next_words("黛玉听了，", 5)
    assert [x["text"] for x in got["words"]] == [t for t, _ in expected]


def test_line_model_modes(server):
    _, _, got = server.post("/api/continue", {"model": "m", "prompt": "春", "n_lines": 3, "seed": 1})
    assert len(got["texts"]) == 3 and all(t.startswith("春") for t in got["texts"])
    assert got["dropped_as_not_novel"] == 0
    _, _, got = server.post("/api/continue", {"model": "m", "acrostic": "春夏", "seed": 1})
    lines = got["texts"][0].split("\n")
    assert [line[0] for line in lines] == ["春", "夏"]


@pytest.mark.parametrize("body, status, words", [
    ({"prompt": "宝玉", "top_p": 2}, 400, "top_p"),
    ({"prompt": "宝玉", "temperature": "hot"}, 422, "temperature"),
    ({"prompt": "宝玉", "length": 10**6}, 400, "at most"),
    ({"prompt": "宝" * 5000}, 400, "characters"),
    ({"prompt": "宝玉", "samples": 1000}, 400, "samples"),
    ({"prompt": "宝玉", "model": "../../etc"}, 400, "unknown model"),
    ({"prompt": "宝玉", "path": "/etc/passwd"}, 422, "path"),
    ({"model": "default", "novel_only": True}, 400, "n_lines"),
    ({"acrostic": "\U0001F600"}, 400, "vocabulary"),
])
def test_bad_requests_get_one_clear_message(server, body, status, words):
    got_status, _, got = server.post("/api/continue", body)
    assert got_status == status, got
    assert set(got) == {"error"} and words in got["error"]


def test_bad_bodies(server):
    status, _, got = server.post("/api/continue", None, raw=b"{not json")
    assert status == 422 and "error" in got
    status, _, got = server.post("/api/continue", None, raw=b"x" * 100_000)
    assert status == 413 and "bytes" in got["error"]
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)  # no length given
    conn.request("POST", "/api/continue", body=iter([b"x" * 40_000] * 3), encode_chunked=True,
                 headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    r = conn.getresponse()
    assert r.status == 413 and "bytes" in json.loads(r.read())["error"]
    conn.close()
    status, _, got = server.post("/api/next", {"text": "宝玉", "k": 0})
    assert status == 400 and "k must" in got["error"]


def test_concurrent_requests_all_succeed(server):
    results = []

    def client(k):
        results.append(server.post("/api/continue", {"prompt": "宝玉", "length": 60, "seed": k}))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 8 and all(status == 200 for status, _, _ in results)
    assert len({r[2]["texts"][0] for r in results}) == 8


def test_busy_server_answers_503_with_retry_after_and_time_limit():
    """One slot, no queue: a second request while the first generates gets 503 and a
    Retry-After at once; a request past the time limit is stopped with a clear message; a
    client that goes away frees its slot."""
    s = Server("--max-active", "1", "--max-waiting", "0", "--time-limit", "1.5")
    try:
        slow = {"prompt": "宝玉", "length": 2000, "samples": 16}
        first = []
        t = threading.Thread(target=lambda: first.append(s.post("/api/continue", slow)))
        t.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        status, headers, got = s.post("/api/continue", {"prompt": "宝玉", "length": 5})
        assert status == 503 and int(headers["retry-after"]) >= 1 and "busy" in got["error"]
        assert time.monotonic() - t0 < 1  # turned away, not left hanging
        t.join(30)
        status, headers, got = first[0]
        assert status == 503 and "time limit" in got["error"] and "retry-after" in headers
        # A streaming client that disconnects after its first word frees the slot.
        conn = http.client.HTTPConnection(s.host, s.port, timeout=10)
        conn.request("POST", "/api/continue", json.dumps({**slow, "stream": True}),
                     {"Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 200 and r.readline().startswith(b"event: word")
        conn.close()
        deadline = time.monotonic() + 1.2  # well inside the 1.5 s time limit
        while True:
            status, _, got = s.post("/api/continue", {"prompt": "宝玉", "length": 5})
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert status == 200, got
    finally:
        s.stop()


def test_serve_refuses_a_bad_model_and_warns_on_all_interfaces(tmp_path):
    result = subprocess.run([sys.executable, "-m", "wordlstm.cli", "serve", "--model",
                             str(tmp_path), "--port", "0"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 1 and result.stderr.count("error:") == 1
    assert "Traceback" not in result.stderr
    s = Server("--host", "0.0.0.0")
    try:
        s.proc.terminate()
        _, err = s.proc.communicate(timeout=10)
        assert "warning: serving on 0.0.0.0" in err
    finally:
        s.stop()


# -- in-process: the ASGI application called directly, requests as simultaneous as asyncio
# makes them ---------------------------------------------------------------------------------


async def call(app, method, path, body=None, *, raw=None, host="127.0.0.1:8000", leave=None):
    """One request to the ASGI `app`: (status, headers, parsed JSON or text). The client is
    gone (receive answers http.disconnect) once `leave` (an asyncio.Event) is set."""
    path, _, query = path.partition("?")
    data = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
    if isinstance(data, str):
        data = data.encode("utf-8")
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(data)).encode())]
    if host is not None:
        headers.append((b"host", host.encode("latin-1")))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": query.encode(), "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
    gone = leave or asyncio.Event()
    sent = False
    response = {"status": None, "headers": {}, "body": b""}

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": data, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            response["status"] = message["status"]
            response["headers"] = {k.decode().lower(): v.decode()
                                   for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            response["body"] += message.get("body", b"")

    try:
        await app(scope, receive, send)
    except Exception:
        if response["status"] is None:  # raised after its 500 answer, as uvicorn logs it
            raise
    finally:
        gone.set()
    text = response["body"].decode("utf-8")  # always valid UTF-8
    kind = response["headers"].get("content-type", "")
    return response["status"], response["headers"], json.loads(text) if "json" in kind else text


def ask(app, method, path, body=None, **kw):
    return asyncio.run(call(app, method, path, body, **kw))


def admission_of(app):
    while not hasattr(app, "state"):  # through the middleware to the FastAPI app
        app = app.app
    return app.state.admission


@pytest.fixture(scope="module")
def tiny(model_dir, poem_model):
    """The tiny prose model ("model", the default) and the poem model ("m"), loaded once."""
    from wordlstm.serve import load_models

    return load_models([model_dir, poem_model / "m"])


def app_of(models, **config):
    from wordlstm.serve import ServeConfig, create_app

    return create_app(models, ServeConfig(**config))


@pytest.mark.parametrize("active, waiting, n", [(1, 0, 4), (2, 2, 8), (1, 1, 6), (3, 0, 3)])
def test_admission_is_atomic(active, waiting, n):
    """n requests at once: `active` take a slot, `waiting` queue, the rest are turned away,
    and never more than `active` hold a slot (issue 20, item 8)."""
    from wordlstm.serve import Admission, Busy, ServeConfig

    adm = Admission(ServeConfig(max_active=active, max_waiting=waiting, max_wait=30))
    peak = 0

    async def main():
        hold = asyncio.Event()

        async def client():
            nonlocal peak
            try:
                taken = await adm.acquire()
            except Busy:
                return "busy"
            peak = max(peak, adm.active)
            await hold.wait()
            adm.release(taken)
            return "ok"

        tasks = [asyncio.create_task(client()) for _ in range(n)]
        await asyncio.sleep(0.2)  # every one of them has asked
        counts = (adm.active, adm.waiting)
        hold.set()
        return counts, await asyncio.gather(*tasks)

    counts, got = asyncio.run(main())
    assert counts == (active, waiting)
    assert got.count("busy") == n - active - waiting and peak <= active
    assert (adm.active, adm.waiting) == (0, 0)


def test_admission_passes_on_a_slot_given_up_while_queued():
    """A queued request that gives up (timed out, or its client left) leaves the queue, and a
    slot handed to it just as it gave up goes to the next in line."""
    from wordlstm.serve import Admission, Busy, ServeConfig

    adm = Admission(ServeConfig(max_active=1, max_waiting=2, max_wait=0.2))

    async def main():
        taken = await adm.acquire()
        with pytest.raises(Busy, match="within"):
            await adm.acquire()  # waits 0.2 s, then gives up
        assert adm.waiting == 0
        a = asyncio.create_task(adm.acquire())
        b = asyncio.create_task(adm.acquire())
        await asyncio.sleep(0)
        adm.release(taken)  # the slot goes to a ...
        a.cancel()  # ... which gives up before it runs: b must get it
        got = await b
        assert adm.active == 1 and adm.waiting == 0
        adm.release(got)
        assert adm.active == 0

    asyncio.run(main())


@pytest.fixture(scope="module")
def one_slot():
    """A server with one generation slot and no queue."""
    s = Server("--max-active", "1", "--max-waiting", "0", "--time-limit", "60")
    yield s
    s.stop()


def test_simultaneous_requests_at_admission(one_slot):
    """Four requests released together by a barrier against one slot and no queue: one is
    served, three are turned away at once (issue 20, item 8: all four got 200)."""
    barrier = threading.Barrier(4)
    results = []

    def client():
        conn = http.client.HTTPConnection(one_slot.host, one_slot.port, timeout=120)
        conn.connect()
        barrier.wait()
        conn.request("POST", "/api/continue", json.dumps({"prompt": "宝玉", "length": 100}),
                     {"Content-Type": "application/json"})
        r = conn.getresponse()
        results.append((r.status, r.getheader("Retry-After"), json.loads(r.read())))
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(status for status, _, _ in results) == [200, 503, 503, 503], results
    for status, retry, got in results:
        if status == 503:
            assert "busy" in got["error"] and int(retry) >= 1


@pytest.mark.parametrize("body", [{"prompt": "宝玉", "length": 2000, "samples": 16},
                                  {"prompt": "宝玉", "length": 2000, "context": "window"}],
                         ids=["batched", "thread-pool"])
def test_a_client_that_goes_away_stops_its_generation(one_slot, body):
    """A non-streaming request whose client disconnects stops generating and frees its slot
    (issue 20, item 9: it went on for the whole time limit)."""
    data = json.dumps(body).encode()
    sock = socket.create_connection((one_slot.host, one_slot.port), timeout=10)
    sock.sendall(b"POST /api/continue HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\n"
                 b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
    time.sleep(1)  # it is generating
    sock.close()
    deadline = time.monotonic() + 20  # the request alone takes minutes, the time limit is 60 s
    while True:
        status, _, got = one_slot.post("/api/continue", {"prompt": "宝玉", "length": 5})
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status == 200, got


@pytest.mark.parametrize("path, body", [("/api/continue", {"prompt": "老王", "length": 5}),
                                        ("/api/next", {"text": "老王"})])
def test_a_queued_client_that_goes_away_leaves_the_queue(tiny, path, body):
    """Connect-and-drop requests must not hold the queue (issue 20, item 9) either."""
    app = app_of(tiny, max_active=1, max_waiting=1, max_wait=60)
    admission = admission_of(app)

    async def main():
        taken = await admission.acquire()  # another request holds the only slot
        leave = asyncio.Event()
        queued = asyncio.create_task(call(app, "POST", path, body, leave=leave))
        await asyncio.sleep(0.2)
        assert admission.waiting == 1
        leave.set()
        await asyncio.wait_for(queued, 10)  # not the 60 s it would wait for a slot
        assert admission.waiting == 0
        admission.release(taken)
        assert admission.active == 0

    asyncio.run(main())


@pytest.mark.parametrize("extra", [{}, {"context": "window"}], ids=["batched", "thread-pool"])
def test_time_limit_counts_generating_time_not_the_queue(tiny, extra):
    """A request queued for longer than the time limit still gets its whole time limit once
    it generates (issue 20, item 23: the clock started when it arrived)."""
    app = app_of(tiny, max_active=1, max_waiting=1, time_limit=1.0)
    admission = admission_of(app)

    async def main():
        taken = await admission.acquire()  # another request holds the only slot
        queued = asyncio.create_task(call(app, "POST", "/api/continue",
                                          {"prompt": "老王", "length": 5, **extra}))
        await asyncio.sleep(1.5)  # past the time limit, while queued
        admission.release(taken)
        return await queued

    status, _, got = asyncio.run(main())
    assert status == 200, got
    assert got["words"] == [5]


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "127.0.0.1", "localhost", "LocalHost:80",
                                  "localhost.:8000", "[::1]:8000", "127.0.0.2:8000"])
def test_loopback_names_are_accepted_when_bound_to_loopback(tiny, host):
    status, _, got = ask(app_of(tiny), "GET", "/api/model", host=host)
    assert status == 200, got


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "localhost.evil.example",
                                  "127.0.0.1.nip.io", "192.168.1.5:8000", "", None])
@pytest.mark.parametrize("method, path", [("GET", "/api/model"), ("GET", "/"),
                                          ("GET", "/static/app.js"), ("GET", "/openapi.json"),
                                          ("POST", "/api/continue"), ("POST", "/api/next")])
def test_other_host_names_are_refused_dns_rebinding(tiny, host, method, path):
    """A page on another origin whose name resolves to this machine cannot drive the API
    (issue 20, item 18: any Host was accepted)."""
    body = {"prompt": "老王"} if method == "POST" else None
    status, _, got = ask(app_of(tiny), method, path, body, host=host)
    assert status == 421, got
    assert set(got) == {"error"} and "Host" in got["error"]


def test_configured_names_are_accepted_when_bound_elsewhere(tiny):
    app = app_of(tiny, host="0.0.0.0", allowed_hosts=("Wordlstm.LAN",))
    for host in ("wordlstm.lan:8000", "192.168.1.5:8000", "[fe80::1]:8000", "localhost"):
        status, _, got = ask(app, "GET", "/api/model", host=host)
        assert status == 200, (host, got)
    status, _, got = ask(app, "GET", "/api/model", host="evil.example")
    assert status == 421 and "allow-host" in got["error"]
    status, _, _ = ask(app_of(tiny, host="0.0.0.0", allowed_hosts=("*",)), "GET", "/api/model",
                       host="evil.example")
    assert status == 200


def test_a_live_server_refuses_another_host(one_slot):
    conn = http.client.HTTPConnection(one_slot.host, one_slot.port, timeout=30)
    conn.request("GET", "/api/model", headers={"Host": "rebind.example:8000"})
    r = conn.getresponse()
    assert r.status == 421 and "Host" in json.loads(r.read())["error"]
    conn.close()


@pytest.mark.parametrize("body, words", [
    ({"n_lines": 1, "form": "50x50"}, ["form 50x50", "2,550 words", "2,000"]),
    ({"n_lines": 16, "form": "40x50"}, ["form 40x50", "2,050 words"]),
    ({"n_lines": 1, "form": "five"}, ["form", "5x4"]),
    ({"n_lines": 1, "form": "0x4"}, ["form"]),
    ({"n_lines": 1, "form": ""}, ["form", "5x4"]),  # found by the fuzzer: "" was taken as none
    ({"n_lines": 1, "form": " 5x4"}, ["form", "5x4"]),
    ({"form": ""}, ["form", "n_lines"]),
])
def test_verse_forms_are_bound_by_the_servers_limits(tiny, body, words):
    """A form's line is as many words as its clauses make: bound by max_length like any line
    (issue 20, item 19: 50x50 wrote 2,550 words in one line)."""
    status, _, got = ask(app_of(tiny), "POST", "/api/continue", {"model": "m", **body})
    assert status == 400, got
    for w in words:
        assert w in got["error"]


def test_verse_form_within_a_small_limit(tiny):
    app = app_of(tiny, max_length=20)
    status, _, got = ask(app, "POST", "/api/continue",
                         {"model": "m", "n_lines": 2, "form": "5x2", "seed": 1})
    assert status == 200 and len(got["texts"]) == 2, got
    status, _, got = ask(app, "POST", "/api/continue", {"model": "m", "n_lines": 1, "form": "5x4"})
    assert status == 400 and "form 5x4" in got["error"] and "24 words" in got["error"]


@pytest.mark.parametrize("path, body, words", [
    ("/api/continue", {"acrostic": "春" * 40}, ["acrostic", "40 characters", "32"]),
    ("/api/continue", {"acrostic": "春夏秋冬", "line_length": 20}, ["acrostic", "line_length",
                                                                "84 words", "50"]),
    ("/api/continue", {"prompt": "春", "n_lines": 20}, ["n_lines 20", "16"]),
    ("/api/continue", {"prompt": "春", "samples": 20}, ["samples 20", "16"]),
    ("/api/continue", {"prompt": "春", "length": 51}, ["length 51", "50"]),
    ("/api/continue", {"prompt": "春", "length": 0}, ["length"]),
    ("/api/continue", {"prompt": "春", "samples": 0}, ["samples"]),
    ("/api/continue", {"prompt": "春", "n_lines": 0}, ["n_lines"]),
    ("/api/continue", {"acrostic": "春夏", "line_length": 1}, ["line_length"]),
    ("/api/continue", {"prompt": "春", "form": "5x4"}, ["form", "n_lines"]),
    ("/api/continue", {"prompt": "春", "prefix": "夏" * 4000}, ["prompt and prefix",
                                                              "4,001 characters", "4,000"]),
    ("/api/next", {"text": "春", "prefix": "夏" * 4000}, ["text and prefix", "4,001 characters",
                                                        "4,000"]),
    ("/api/next", {"text": "春" * 4001}, ["text", "4,001 characters"]),
    ("/api/next", {"text": "春", "k": 51}, ["k", "50"]),
])
def test_limit_messages_name_the_field(tiny, path, body, words):
    """Each refusal names the field the request got wrong, as the API spells it (issue 20,
    item 26: an acrostic was refused for its unused length, a long prefix was counted as the
    text's length)."""
    status, _, got = ask(app_of(tiny, max_length=50), "POST", path, {"model": "m", **body})
    assert 400 <= status < 500 and set(got) == {"error"}, got
    for w in words:
        assert w in got["error"], got["error"]


def test_modes_that_do_not_use_length_are_not_refused_for_it(tiny):
    """On a server writing at most 50 words, an acrostic (of 16 words) and a continuation
    that does not ask for a length (the default, 100, is cut to the server's 50) are fine."""
    app = app_of(tiny, max_length=50)
    status, _, got = ask(app, "POST", "/api/continue", {"model": "m", "acrostic": "春夏",
                                                        "seed": 2})
    assert status == 200, got
    assert [line[0] for line in got["texts"][0].split("\n")] == ["春", "夏"]
    status, _, got = ask(app, "POST", "/api/continue", {"prompt": "老王", "seed": 2})
    assert status == 200 and got["words"] == [50], got
    _, _, info = ask(app, "GET", "/api/model")
    assert info["defaults"]["length"] == 50


@pytest.mark.parametrize("path, raw, field", [
    ("/api/continue", '{"prompt": "\\ud800宝玉"}', "prompt"),
    ("/api/continue", '{"prompt": "老王", "prefix": "\\udfff"}', "prefix"),
    ("/api/continue", '{"prompt": "老王", "until": "\\ud800"}', "until"),
    ("/api/continue", '{"model": "m", "acrostic": "春\\ud800"}', "acrostic"),
    ("/api/continue", '{"model": "\\ud800"}', "model"),
    ("/api/continue", '{"model": "m", "n_lines": 1, "form": "5x\\ud800"}', "form"),
    ("/api/continue", '{"prompt": "老王", "context": "\\ud800"}', "context"),
    ("/api/continue", '{"\\ud800": 1}', "field name '\\ud800'"),
    ("/api/next", '{"text": "\\ud800"}', "text"),
    ("/api/next", '{"text": "老王", "prefix": "\\ud800"}', "prefix"),
    ("/api/next", '{"text": "老王", "model": "\\ud800"}', "model"),
    ("/api/continue", '{"prompt": "老王", "seed": -1}', "seed"),
    ("/api/continue", '{"prompt": "老王", "seed": 18446744073709551616}', "seed"),
    ("/api/continue", '{"prompt": "老王", "seed": 1.5}', "seed"),
])
def test_bad_text_and_seeds_get_a_clear_error_not_500(tiny, path, raw, field):
    """Lone surrogates (JSON "\\ud800") in any text field, a negative or huge seed: a 4xx
    naming the field, never a 500 (issue 20, items 13 and 14)."""
    status, _, got = ask(app_of(tiny), "POST", path, raw=raw)
    assert 400 <= status < 500 and set(got) == {"error"}, (status, got)
    assert got["error"].startswith(field), got["error"]


def test_an_internal_error_does_not_leak_its_repr(tiny, monkeypatch):
    from wordlstm.serve import ServedModel

    def broken(*a, **kw):
        raise RuntimeError("secret detail at /home/user")

    monkeypatch.setattr(ServedModel, "start", broken)
    status, _, got = ask(app_of(tiny), "POST", "/api/continue", {"prompt": "老王"})
    assert status == 500 and set(got) == {"error"}
    assert "secret" not in got["error"] and "RuntimeError" not in got["error"]


def test_the_api_takes_every_library_field_under_its_name(tiny):
    """/api/continue's fields are Request's and SamplingConfig's, none renamed or left out
    (issue 21, item 2: `lines`, `dry` and six sampling settings), with their defaults."""
    from dataclasses import fields

    _, _, schema = ask(app_of(tiny), "GET", "/openapi.json")
    body = schema["components"]["schemas"]["ContinueBody"]["properties"]
    library = {f.name: f.default for c in (Request, SamplingConfig) for f in fields(c)}
    assert set(body) == set(library) | {"model", "stream"}
    for name, default in library.items():
        if name != "length" and default is not None:
            assert body[name]["default"] == default, name


@pytest.mark.parametrize("raw, message", [
    ("{not json", "the body is not JSON: Expecting property name"),
    ('{"prompt": "老王",}', "at character 17"),
    ("[1]", "the body must be a JSON object"),
    ("", "the body must be a JSON object of fields (it is empty)"),
    ('{"lines": 2}', "lines: no such field; it is n_lines now"),
    ('{"dry": 1}', "dry: no such field; it is dry_multiplier now"),
    ('{"nonsense": 1}', "nonsense: no such field"),
])
def test_a_body_that_is_not_what_it_should_be_says_so(tiny, raw, message):
    """Invalid JSON said "0: JSON decode error" (issue 23); a renamed field says its name."""
    status, _, got = ask(app_of(tiny), "POST", "/api/continue", raw=raw)
    assert status == 422 and message in got["error"], got


def test_library_messages_are_said_in_the_apis_field_names(tiny):
    """The library speaks the CLI's flags; an API client reads its own field names, taken
    from continue-text's options (--lines sets n_lines, --dry dry_multiplier)."""
    from wordlstm.serve import PublicMessages

    public = PublicMessages(tiny, ["n_lines", "dry_multiplier", "top_p", "length"])
    assert public("--lines needs </s>; --dry 2, top-p, --length, --model, lines") == \
        "n_lines needs </s>; dry_multiplier 2, top_p, length, --model, lines"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("raised, status", [
    ("cancelled", 503), ("time", 503), ("user", 400), ("bug", 500)])
def test_one_table_says_what_an_exception_answers(tiny, monkeypatch, stream, raised, status):
    """A JSON answer and a streamed `error` event give an exception the same status (issue
    21: Cancelled was 400 in one and 503 in the other); a 500 shows nothing of the error."""
    from wordlstm.budget import Cancelled, TimeLimitExceeded
    from wordlstm.errors import UserError
    from wordlstm.serve import ServedModel

    err = {"cancelled": Cancelled("the server is shutting down"), "time": TimeLimitExceeded(2),
           "user": UserError("prompt: no good"), "bug": RuntimeError("secret at /home/x")}[raised]
    monkeypatch.setattr(ServedModel, "start", lambda self, *a: a[-1]("done", err))
    got_status, headers, got = ask(app_of(tiny), "POST", "/api/continue",
                                   {"prompt": "老王", "stream": stream})
    if stream:
        assert got_status == 200
        (kind, got), = events(got)
        assert kind == "error" and got["status"] == status
    else:
        assert got_status == status and ("retry-after" in headers) == (status == 503)
    assert ("secret" in got["error"]) is False and got["error"] == (
        "internal error (the server's log has the details)" if status == 500 else str(err))


def test_the_model_view_routes_give_the_card_and_the_history(tiny, model_dir):
    app = app_of(tiny)
    status, _, got = ask(app, "GET", "/api/history?model=model")
    epochs = json.loads((model_dir / "history.json").read_text())["epochs"]
    assert status == 200 and got["model"] == "model" and got["epochs"] == epochs
    status, _, got = ask(app, "GET", "/api/card")  # the first model's
    from wordlstm.card import model_card

    assert status == 200 and got["card"] == model_card(model_dir) and "# " in got["card"]
    status, _, got = ask(app, "GET", "/api/card?model=nope")
    assert status == 400 and "unknown model" in got["error"]


@pytest.mark.parametrize("card, corpus, title", [
    ("# models/default: 红楼梦, fine-tuned from the base\n\ntext", "hongloumeng.seg.txt", "红楼梦"),
    ("# novel\n\nA wordlstm model", "shuihu.seg.txt", "shuihu"),
    (None, "/x/y/三国.txt", "三国"),
    (None, None, None),
])
def test_the_header_names_the_novel_not_a_file(card, corpus, title):
    from wordlstm.serve import novel_title

    assert novel_title(card, corpus) == title


# Found by tests/test_serve_fuzz.py (schemathesis) -------------------------------------------


@pytest.mark.parametrize("body, field", [
    ({"prompt": "老王", "paragraph_bias": 3.4028235677973366e+38}, "paragraph_bias"),
    ({"prompt": "老王", "punct_bias": 1e39}, "punct_bias"),
    ({"prompt": "老王", "punct_bias": -1e39}, "punct_bias"),
    ({"prompt": "老王", "length": 20, "min_count": 200, "repetition_penalty": 5.6e306,
      "temperature": 0.03125, "typical_p": 0.5}, "repetition_penalty"),  # all -inf: ValueError
    ({"prompt": "老王" * 30, "length": 60, "dry_multiplier": 1, "dry_base": 1e300, "dry_allowed": 0},
     "dry_base"),  # dry_base ** 2: OverflowError
    ({"prompt": "老王", "dry_multiplier": 1e306, "temperature": 0.01}, "dry_multiplier"),
])
def test_huge_sampling_numbers_are_refused_by_name(tiny, body, field):
    """Biases and penalties are nats added to log-probabilities and divided by the temperature:
    beyond any effect they overflowed (paragraph_bias 3.4e38: IndexError, 500; found by the
    fuzzer)."""
    status, _, got = ask(app_of(tiny), "POST", "/api/continue", body)
    assert 400 <= status < 500 and got["error"].startswith(field), (status, got)


def test_an_empty_model_id_is_unknown_not_the_default(tiny):
    for path, body in (("/api/continue", {"prompt": "老王"}), ("/api/next", {"text": "老王"})):
        status, _, got = ask(app_of(tiny), "POST", path, {"model": "", **body})
        assert status == 400 and "unknown model" in got["error"], got


def test_errors_never_show_the_servers_paths(tiny, model_dir):
    """A model without training lines asked for novel_only: the library's message names the
    model's directory; the server names the model."""
    for stream in (False, True):
        _, _, got = ask(app_of(tiny), "POST", "/api/continue",
                             {"prompt": "老王", "n_lines": 1, "novel_only": True, "stream": stream})
        text = json.dumps(got, ensure_ascii=False)
        assert "novel_only" in text and str(model_dir) not in text and "/tmp" not in text, text


@pytest.mark.parametrize("raw, field", [
    ('{"prompt": "老王", "dry_base": false}', "dry_base"),
    ('{"prompt": "老王", "temperature": true}', "temperature"),
    ('{"prompt": "老王", "length": "10"}', "length"),
    ('{"prompt": "老王", "stream": 1}', "stream"),
    ('{"prompt": 5}', "prompt"),
    ('{"prompt": "老王", "top_p": NaN}', "top_p"),
    ('{"prompt": "老王", "temperature": Infinity}', "temperature"),
])
def test_values_of_another_type_are_refused_not_coerced(tiny, raw, field):
    """The schema's types are the API's: false is not the number 0, "10" is not 10 (they
    were coerced and accepted)."""
    status, _, got = ask(app_of(tiny), "POST", "/api/continue", raw=raw)
    assert status == 422 and got["error"].startswith(field), (status, got)


def test_a_whole_number_written_as_a_float_is_an_integer(tiny):
    status, _, got = ask(app_of(tiny), "POST", "/api/continue",
                         {"model": "m", "n_lines": 2.0, "length": 30.0, "seed": 3.0})
    assert status == 200 and len(got["texts"]) == 2 and got["seed"] == 3, got


@pytest.mark.parametrize("body", [{"prompt": "老王", "temperature": 5e-324, "typical_p": 0.5},
                                  {"prompt": "老王", "temperature": 1e-300}])
def test_a_temperature_too_small_to_divide_by_is_refused(tiny, body):
    """Log-probabilities divided by 5e-324 are all infinite (ValueError, 500)."""
    status, _, got = ask(app_of(tiny), "POST", "/api/continue", body)
    assert status == 400 and got["error"].startswith("temperature"), (status, got)


# -- the page, in headless Chromium -----------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("no chromium + chromedriver here (Debian: apt-get install chromium "
                    "chromium-driver; .ci/run installs them)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1000,900",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def _wait(driver, condition, timeout=20):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def _fill(el, css, text):
    """The field at `css` emptied and typed into."""
    field = el(css)
    field.clear()
    field.send_keys(text)
    return field


def _page(browser, server):
    from selenium.webdriver.common.by import By

    browser.get(server.url)
    _wait(browser, lambda d: "bits/char" in d.find_element(By.ID, "facts").text)
    return lambda css: browser.find_element(By.CSS_SELECTOR, css)


def test_page_continue_streams_text(browser, server):
    el = _page(browser, server)
    box = _fill(el, "#text", "宝玉笑道")
    _fill(el, "#length", "300")
    # Record the text box's length every few milliseconds while it is written.
    browser.execute_script("window.seen = []; setInterval(() => "
                           "window.seen.push(document.getElementById('text').value.length), 2)")
    el("#go").click()
    _wait(browser, lambda d: "seed" in el("#status").text)
    text = box.get_property("value")
    assert text.startswith("宝玉笑道") and len(text) > len("宝玉笑道") + 100
    seen = browser.execute_script("return window.seen")
    partial = {n for n in seen if len("宝玉笑道") < n < len(text)}
    assert len(partial) >= 3, "the text should appear word by word, not all at once"
    assert el("#error").get_property("hidden")


def test_page_cowrite_appends_the_clicked_word(browser, server):
    from selenium.webdriver.common.by import By

    el = _page(browser, server)
    el('[data-mode="cowrite"]').click()
    box = _fill(el, "#text", "黛玉听了，")
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".choice")) == 5)
    time.sleep(0.4)  # the refresh after the last keystroke
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".choice")) == 5)
    choice = browser.find_elements(By.CSS_SELECTOR, ".choice")[1]
    word = choice.get_attribute("data-text")
    assert "%" in choice.text
    choice.click()
    _wait(browser, lambda d: box.get_property("value") == "黛玉听了，" + word)
    own = el("#own")
    own.send_keys("笑道")
    el("#own-form button[type=submit]").click()
    _wait(browser, lambda d: box.get_property("value") == "黛玉听了，" + word + "笑道")
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".choice")) == 5)
    el('[data-mode="continue"]').click()
    _fill(el, "#length", "60")
    el("#go").click()
    _wait(browser, lambda d: "seed" in el("#status").text)
    el('[data-mode="cowrite"]').click()
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".choice")) == 5)
    shot = Path(os.environ.get("WORDLSTM_SCREENSHOT") or
                Path(browser.capabilities.get("chrome", {}).get("userDataDir", "/tmp")) / "page.png")
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


@pytest.mark.parametrize("field, value, message", [
    ("#temperature", "0", "Temperature must be a number from 0.01 to 100"),  # the page's check
    ("#length", "5000", "Length 5,000: this server writes at most 2,000 words"),  # the server's
])
def test_page_shows_a_bad_request_in_its_own_words(browser, server, field, value, message):
    """Errors name the page's fields, never CLI flags, API names or greedy (issue 23)."""
    el = _page(browser, server)
    _fill(el, field, value)
    el("#go").click()
    _wait(browser, lambda d: not el("#error").get_property("hidden"))
    text = el("#error").text
    assert message in text and "--" not in text and "greedy" not in text, text
    assert el("#go").is_enabled()  # the page is usable again


def _shown(el, css) -> bool:
    return el(css).is_displayed()


def test_page_modes_show_what_they_use_and_say_why_lines_is_off(browser, server):
    """Issue 23's trip-overs: two identical dark-red "Continue" buttons, the Lines tab greyed
    out with no hint, fields shown in modes that ignore them, a stale status line."""
    el = _page(browser, server)
    tab, action = el('[data-mode="continue"]'), el("#go")
    assert tab.text != action.text
    assert tab.value_of_css_property("background-color") != \
        action.value_of_css_property("background-color")
    assert not el('[data-mode="lines"]').is_enabled()
    assert _shown(el, "#mode-hint") and "Lines" in el("#mode-hint").text
    assert "prose" in el('[data-mode="lines"]').get_attribute("title")
    uses = {"continue": {"#length", "#temperature", "#top_p", "#seed"},
            "cowrite": set(), "acrostic": {"#temperature", "#top_p", "#seed", "#heads"}}
    _fill(el, "#text", "宝玉")
    _fill(el, "#length", "5")
    el("#go").click()
    _wait(browser, lambda d: "seed" in el("#status").text)
    for mode, fields in uses.items():
        el(f'[data-mode="{mode}"]').click()
        assert el("#status").text == ""  # nothing left from another mode
        for css in ("#length", "#temperature", "#top_p", "#seed", "#nlines", "#heads"):
            assert _shown(el, css) == (css in fields), (mode, css)
    from selenium.webdriver.support.ui import Select

    Select(el("#model")).select_by_value("m")  # a line model: Lines is on, no hint
    _wait(browser, lambda d: el('[data-mode="lines"]').is_enabled())
    el('[data-mode="continue"]').click()
    assert not _shown(el, "#mode-hint")


def test_page_names_the_novel_and_notes_spelled_words(browser, server):
    """The header shows the novel (the card's), not its file; a prompt word the model lacks
    is said to be read as its characters (issue 23)."""
    el = _page(browser, server)
    assert el("#novel").text == "红楼梦" and ".txt" not in el("header").text
    result = Generation([])
    Writer.load(REPO / "models" / "default").encode("宝玉用电脑", result)
    assert result.split == ["电脑"]  # a word of its own, spelled with the vocabulary's characters
    _fill(el, "#text", "宝玉用电脑")
    _fill(el, "#length", "5")
    el("#go").click()
    _wait(browser, lambda d: "seed" in el("#status").text)
    assert _shown(el, "#note") and "read as their characters: 电脑" in el("#note").text
    assert not _shown(el, "#error")


def test_page_model_view_draws_the_training_curves_and_the_card(browser, server):
    """The model view: one curve per figure history.json has, a point per epoch, loss going
    down where it went down, and the model's card below (issue 23)."""
    from selenium.webdriver.common.by import By

    el = _page(browser, server)
    epochs = json.loads((REPO / "models" / "default" / "history.json").read_text())["epochs"]
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#curves path.curve"))
    paths = browser.find_elements(By.CSS_SELECTOR, "#curves path.curve")
    keys = {k for e in epochs for k in e} & {"loss", "val_bits_per_char", "learning_rate",
                                              "targets_per_s"}
    assert {p.get_attribute("data-key") for p in paths} == keys and len(paths) == len(keys)
    for p in paths:
        d = p.get_attribute("d")
        assert d.count("M") + d.count("L") == len(epochs) == int(p.get_attribute("data-points"))
        if p.get_attribute("data-key") == "loss":  # lower loss is lower on the chart
            ys = [float(xy.split(",")[1]) for xy in d.replace("M", "L").split("L")[1:]]
            losses = [e["loss"] for e in epochs]
            assert sorted(range(len(ys)), key=ys.__getitem__) == \
                sorted(range(len(losses)), key=lambda i: -losses[i])
    card = (REPO / "models" / "default" / "README.md").read_text(encoding="utf-8")
    _wait(browser, lambda d: el("#card h3").text)
    assert el("#card h3").text == card.splitlines()[0][2:]
    assert "wordlstm train" in el("#card pre").text
    shot = os.environ.get("WORDLSTM_MODEL_VIEW_SHOT")
    if shot:  # README's picture: WORDLSTM_MODEL_VIEW_SHOT=docs/model-view.png
        browser.set_window_size(1200, 900)
        _fill(el, "#text", "宝玉笑道")
        _fill(el, "#length", "60")
        _fill(el, "#seed", "3")
        el("#go").click()
        _wait(browser, lambda d: "seed" in el("#status").text)
        try:
            height = browser.execute_script("return document.documentElement.scrollHeight")
            browser.set_window_size(1200, min(height + 40, 2400))
            time.sleep(0.3)
            assert browser.save_screenshot(shot)
        finally:
            browser.set_window_size(1000, 900)


def test_page_cowrite_choices_fit_a_narrow_window(browser, server):
    """At ~500 px wide the co-write choices fell below the fold (issue 23)."""
    from selenium.webdriver.common.by import By

    browser.set_window_size(500, 850)
    try:
        el = _page(browser, server)
        el('[data-mode="cowrite"]').click()
        _fill(el, "#text", "黛玉听了，")
        _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".choice")) == 5)
        bottom = browser.execute_script(
            "return Math.max(...[...document.querySelectorAll('.choice')]"
            ".map((b) => b.getBoundingClientRect().bottom))")
        assert bottom <= browser.execute_script("return window.innerHeight")
        shot = os.environ.get("WORDLSTM_NARROW_SHOT")
        if shot:
            browser.save_screenshot(shot)
    finally:
        browser.set_window_size(1000, 900)


def test_page_acrostic_and_lines(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    el = _page(browser, server)
    assert not el('[data-mode="lines"]').is_enabled()  # the novel's model writes prose
    Select(el("#model")).select_by_value("m")
    _wait(browser, lambda d: el('[data-mode="lines"]').is_enabled())
    el('[data-mode="acrostic"]').click()
    el("#heads").send_keys("春夏秋冬")
    el("#go").click()
    _wait(browser, lambda d: not el("#result").get_property("hidden"))
    lines = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#result li")]
    assert [line[0] for line in lines] == list("春夏秋冬")
    el('[data-mode="lines"]').click()
    _fill(el, "#text", "春")
    el("#go").click()
    _wait(browser, lambda d: "lines in" in el("#status").text)
    lines = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#result li")]
    assert len(lines) == 4 and all(line.startswith("春") for line in lines)
