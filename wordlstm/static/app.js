// The co-writing page: plain JavaScript over the JSON API (no build step, no network but
// this server). Continue streams words (Server-Sent Events over a POST); Co-write shows the
// model's likeliest next words and appends the one clicked or typed.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { mode: "continue", models: [], origin: null, added: [], busy: null,
                nextTimer: null, nextSeq: 0 };

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function setStatus(message) { $("status").textContent = message; }

async function api(path, body, signal) {
  const response = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  const type = response.headers.get("Content-Type") || "";
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    if (type.includes("json")) message = (await response.json()).error || message;
    if (response.status === 503 && response.headers.get("Retry-After"))
      message += ` (retry after ${response.headers.get("Retry-After")} s)`;
    throw new Error(message);
  }
  return response;
}

function number(id) {
  const v = $(id).value.trim();
  return v === "" ? null : Number(v);
}

function settings() {
  const s = { model: $("model").value, length: number("length"),
              temperature: number("temperature"), top_p: number("top_p") };
  const seed = number("seed");
  if (seed !== null) s.seed = seed;
  for (const k of Object.keys(s)) if (s[k] === null || Number.isNaN(s[k])) delete s[k];
  return s;
}

function model() { return state.models.find((m) => m.id === $("model").value) || {}; }

function showFacts() {
  const m = model();
  const bits = m.held_out_bits_per_char ? `, held-out ${m.held_out_bits_per_char} bits/char` : "";
  const corpus = m.corpus ? ` · trained on ${m.corpus}` : "";
  $("facts").textContent = `${m.vocabulary.toLocaleString()} ${m.unit === "char" ? "characters" : "words"}` +
    `, ${m.layers}×${m.units} LSTM, ${m.head} head${bits}${corpus}`;
  document.querySelector('[data-mode="lines"]').disabled = !m.lines;
  if (!m.lines && state.mode === "lines") setMode("continue");
}

function setMode(mode) {
  state.mode = mode;
  for (const b of document.querySelectorAll(".mode"))
    b.setAttribute("aria-selected", String(b.dataset.mode === mode));
  document.body.className = mode;
  $("cowrite").hidden = mode !== "cowrite";
  $("go").hidden = mode === "cowrite";
  $("go").textContent = { continue: "Continue", lines: "Write lines", acrostic: "Write poem" }[mode] || "";
  $("result").hidden = true;
  showError("");
  if (mode === "cowrite") refreshNext();
}

function remember() { if (state.origin === null) state.origin = $("text").value; }

function busy(controller) {
  state.busy = controller;
  $("go").disabled = !!controller;
  $("stop").disabled = !controller;
}

// Continue: POST with stream=true, read "event:/data:" blocks as they arrive.
async function continueText() {
  showError("");
  remember();
  const controller = new AbortController();
  busy(controller);
  const box = $("text");
  let words = 0;
  const t0 = performance.now();
  setStatus("writing…");
  try {
    const response = await api("/api/continue",
      { ...settings(), prompt: box.value, stream: true }, controller.signal);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const kind = (block.match(/^event: (.*)$/m) || [])[1];
        const data = JSON.parse((block.match(/^data: (.*)$/m) || [])[1] || "{}");
        if (kind === "word") {
          box.value += data.text;
          box.scrollTop = box.scrollHeight;
          words += 1;
          setStatus(`writing… ${words} words`);
        } else if (kind === "done") {
          const secs = (performance.now() - t0) / 1000;
          setStatus(`${data.words[0]} words in ${secs.toFixed(2)} s · seed ${data.seed}`);
          if (data.unknown.length) showError(`not in the vocabulary, skipped: ${data.unknown.join(" ")}`);
        } else if (kind === "error") {
          throw new Error(data.error);
        }
      }
    }
  } catch (err) {
    if (err.name === "AbortError") setStatus(`stopped after ${words} words`);
    else { showError(err.message); setStatus(""); }
  } finally {
    busy(null);
  }
}

// Lines and acrostic answer as JSON: their texts go in the result list.
async function writeLines() {
  showError("");
  const controller = new AbortController();
  busy(controller);
  setStatus("writing…");
  const body = { ...settings() };
  if (state.mode === "lines") Object.assign(body, { prompt: $("text").value, lines: number("nlines") || 4 });
  else Object.assign(body, { acrostic: $("heads").value });
  delete body.length;
  try {
    const data = await (await api("/api/continue", body, controller.signal)).json();
    const list = $("result");
    list.replaceChildren();
    const texts = state.mode === "acrostic" ? data.texts[0].split("\n") : data.texts;
    for (const t of texts) {
      const li = document.createElement("li");
      li.textContent = t;
      list.appendChild(li);
    }
    list.hidden = false;
    setStatus(`${texts.length} lines in ${data.seconds.toFixed(2)} s · seed ${data.seed}`);
  } catch (err) {
    if (err.name === "AbortError") setStatus("stopped");
    else { showError(err.message); setStatus(""); }
  } finally {
    busy(null);
  }
}

// Co-write: the next words for the text as it stands (the latest answer wins).
async function refreshNext() {
  const seq = ++state.nextSeq;
  const choices = $("choices");
  try {
    const data = await (await api("/api/next",
      { model: $("model").value, text: $("text").value, k: 5 })).json();
    if (seq !== state.nextSeq) return;
    choices.replaceChildren();
    for (const w of data.words) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "choice";
      b.dataset.text = w.text;
      b.append(w.text === "\n" ? "↵" : w.text);
      const p = document.createElement("small");
      p.textContent = `${(100 * w.probability).toFixed(1)}%`;
      b.append(p);
      b.title = w.text === "\n" ? "new paragraph" : w.text;
      b.addEventListener("click", () => addWord(w.text));
      choices.appendChild(b);
    }
    showError("");
  } catch (err) {
    if (seq === state.nextSeq) showError(err.message);
  }
}

function addWord(text) {
  if (!text) return;
  remember();
  $("text").value += text;
  state.added.push(text);
  refreshNext();
}

function go() {
  if (state.mode === "continue") continueText();
  else if (state.mode === "lines" || state.mode === "acrostic") writeLines();
}

async function start() {
  try {
    const info = await (await api("/api/model")).json();
    state.models = info.models;
    for (const m of info.models) $("model").append(new Option(m.id, m.id));
    $("model").value = info.default;
    const d = info.defaults;
    $("length").value = d.length;
    $("temperature").value = d.temperature;
    $("top_p").value = d.top_p;
    showFacts();
  } catch (err) {
    showError(`cannot reach the server: ${err.message}`);
  }
  for (const b of document.querySelectorAll(".mode"))
    b.addEventListener("click", () => setMode(b.dataset.mode));
  $("model").addEventListener("change", () => { showFacts(); if (state.mode === "cowrite") refreshNext(); });
  $("go").addEventListener("click", go);
  $("stop").addEventListener("click", () => state.busy && state.busy.abort());
  $("copy").addEventListener("click", async () => {
    const text = $("result").hidden ? $("text").value
      : [...$("result").children].map((li) => li.textContent).join("\n");
    try { await navigator.clipboard.writeText(text); setStatus("copied"); }
    catch { $("text").select(); document.execCommand("copy"); setStatus("copied"); }
  });
  $("reset").addEventListener("click", () => {
    if (state.busy) state.busy.abort();
    $("text").value = state.origin || "";
    state.origin = null;
    state.added = [];
    $("result").hidden = true;
    showError("");
    setStatus("");
    if (state.mode === "cowrite") refreshNext();
  });
  $("own-form").addEventListener("submit", (e) => {
    e.preventDefault();
    addWord($("own").value);
    $("own").value = "";
  });
  $("undo").addEventListener("click", () => {
    const last = state.added.pop();
    const box = $("text");
    if (last && box.value.endsWith(last)) box.value = box.value.slice(0, -last.length);
    refreshNext();
  });
  $("text").addEventListener("input", () => {
    if (state.mode !== "cowrite") return;
    clearTimeout(state.nextTimer);
    state.nextTimer = setTimeout(refreshNext, 250);
  });
  $("text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); go(); }
  });
  setMode("continue");
}

start();
