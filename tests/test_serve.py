"""`wordlstm serve`: the JSON API on a real server over loopback, and the co-writing page
driven in headless Chromium (Debian's chromium + chromium-driver through Selenium)."""

import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import run

from wordlstm.generate import SamplingConfig
from wordlstm.writer import Request, Writer

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
    _, _, got = server.post("/api/continue", {"model": "m", "prompt": "春", "lines": 3, "seed": 1})
    assert len(got["texts"]) == 3 and all(t.startswith("春") for t in got["texts"])
    assert got["dropped_as_not_novel"] == 0
    _, _, got = server.post("/api/continue", {"model": "m", "acrostic": "春夏", "seed": 1})
    lines = got["texts"][0].split("\n")
    assert [line[0] for line in lines] == ["春", "夏"]


@pytest.mark.parametrize("body, status, words", [
    ({"prompt": "宝玉", "top_p": 2}, 400, "top-p"),
    ({"prompt": "宝玉", "temperature": "hot"}, 422, "temperature"),
    ({"prompt": "宝玉", "length": 10**6}, 400, "at most"),
    ({"prompt": "宝" * 5000}, 400, "characters"),
    ({"prompt": "宝玉", "samples": 1000}, 400, "samples"),
    ({"prompt": "宝玉", "model": "../../etc"}, 400, "unknown model"),
    ({"prompt": "宝玉", "path": "/etc/passwd"}, 422, "path"),
    ({"model": "default", "novel_only": True}, 400, "lines"),
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


def test_page_shows_a_bad_request_clearly(browser, server):
    el = _page(browser, server)
    _fill(el, "#temperature", "0")
    el("#go").click()
    _wait(browser, lambda d: not el("#error").get_property("hidden"))
    assert "temperature must be a positive number" in el("#error").text
    assert el("#go").is_enabled()  # the page is usable again


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
