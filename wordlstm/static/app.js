// The co-writing page: plain JavaScript over the JSON API (no build step, no network but
// this server). Continue streams words (Server-Sent Events over a POST); Co-write shows the
// model's likeliest next words and appends the one clicked or typed; the model view below
// draws the model's training curves (history.json) and shows its card (README.md).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { mode: "continue", models: [], origin: null, added: [], busy: null,
                nextTimer: null, nextSeq: 0, viewSeq: 0 };
const ACTION = { continue: "Write on", lines: "Write lines", acrostic: "Write poem" };
// The API's field names as this page labels them (its messages name the API's fields).
const LABELS = { length: "Length", temperature: "Temperature", top_p: "Top-p", seed: "Seed",
                 n_lines: "Lines", acrostic: "Heads", prompt: "The text", text: "The text" };

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function showNote(message) {
  $("note").textContent = message;
  $("note").hidden = !message;
}

function setStatus(message) { $("status").textContent = message; }

// A message from the server in the page's words: its fields by their labels here, and no
// advice about settings the page does not have.
function inPageWords(message) {
  let out = message.replace(/\s*\([^()]*greedy[^()]*\)/g, "");
  for (const [field, label] of Object.entries(LABELS))
    out = out.replace(new RegExp(`(^|[^\\w-])${field}(?![\\w-])`, "g"), `$1${label}`);
  return out;
}

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
    if (type.includes("json")) message = inPageWords((await response.json()).error || message);
    if (response.status === 503 && response.headers.get("Retry-After"))
      message += ` (retry after ${response.headers.get("Retry-After")} s)`;
    throw new Error(message);
  }
  return response;
}

function labelOf(input) { return input.closest("label").firstChild.textContent.trim(); }

// A number field's value, or null when empty; a value outside the field's range throws in
// the page's words before anything is sent.
function number(id) {
  const input = $(id);
  const v = input.value.trim();
  if (v === "") return null;
  const x = Number(v);
  const min = input.min === "" ? -Infinity : Number(input.min);
  const max = input.max === "" ? Infinity : Number(input.max);
  if (!Number.isFinite(x) || x < min || x > max) {
    const range = max === Infinity ? `at least ${min}` : `from ${min} to ${max}`;
    throw new Error(`${labelOf(input)} must be a number ${range}`);
  }
  return x;
}

function settings() {
  const s = { model: $("model").value, temperature: number("temperature"),
              top_p: number("top_p"), seed: number("seed") };
  if (state.mode === "continue") s.length = number("length");
  for (const k of Object.keys(s)) if (s[k] === null) delete s[k];
  return s;
}

function model() { return state.models.find((m) => m.id === $("model").value) || {}; }

function showFacts() {
  const m = model();
  const bits = m.held_out_bits_per_char ? ` · held-out ${m.held_out_bits_per_char} bits/char` : "";
  $("novel").textContent = m.title || "";
  $("facts").textContent = `${m.vocabulary.toLocaleString()} ${m.unit === "char" ? "characters" : "words"}` +
    ` · ${m.layers}×${m.units} LSTM, ${m.head} head${bits}`;
  const tab = document.querySelector('[data-mode="lines"]');
  tab.disabled = !m.lines;
  tab.title = m.lines ? "Whole lines: names, poems" :
    "This model writes prose; Lines needs a model trained one line a name or poem";
  if (!m.lines && state.mode === "lines") setMode("continue");
  else showModeHint();
  showModelView();
}

function showModeHint() {
  const m = model();
  const hint = m.lines || !state.models.length ? "" :
    state.models.some((x) => x.lines)
      ? "Lines is off: this model writes prose. Choose a line model (names, poems) above."
      : "Lines is off: this model writes prose, and this server has no line model (names, poems).";
  $("mode-hint").textContent = hint;
  $("mode-hint").hidden = !hint || state.mode !== "continue";
}

function setMode(mode) {
  state.mode = mode;
  for (const b of document.querySelectorAll(".mode"))
    b.setAttribute("aria-selected", String(b.dataset.mode === mode));
  document.body.className = mode;
  for (const label of document.querySelectorAll(".controls label"))
    label.hidden = !label.dataset.modes.split(" ").includes(mode);
  $("cowrite").hidden = mode !== "cowrite";
  $("go").hidden = $("stop").hidden = mode === "cowrite";  // co-write has nothing to stop
  $("go").textContent = ACTION[mode] || "";
  $("result").hidden = true;
  showError("");
  showNote("");
  setStatus("");
  showModeHint();
  if (mode === "cowrite") refreshNext();
}

function remember() { if (state.origin === null) state.origin = $("text").value; }

function busy(controller) {
  state.busy = controller;
  $("go").disabled = !!controller;
  $("stop").disabled = !controller;
}

// What happened to the prompt's words the model does not have.
function notePrompt(data) {
  const parts = [];
  if (data.split && data.split.length)
    parts.push(`not in the model's vocabulary, read as their characters: ${data.split.join(" ")}`);
  if (data.unknown && data.unknown.length)
    parts.push(`not in the model's vocabulary, skipped: ${data.unknown.join(" ")}`);
  showNote(parts.length ? `Note: ${parts.join("; ")}.` : "");
}

// Continue: POST with stream=true, read "event:/data:" blocks as they arrive.
async function continueText() {
  showError("");
  showNote("");
  let body;
  try { body = { ...settings(), prompt: $("text").value, stream: true }; }
  catch (err) { showError(err.message); return; }
  remember();
  const controller = new AbortController();
  busy(controller);
  const box = $("text");
  let words = 0;
  const t0 = performance.now();
  setStatus("writing…");
  try {
    const response = await api("/api/continue", body, controller.signal);
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
          notePrompt(data);
        } else if (kind === "error") {
          throw new Error(inPageWords(data.error));
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
  showNote("");
  let body;
  try {
    body = { ...settings() };
    if (state.mode === "lines") Object.assign(body, { prompt: $("text").value, n_lines: number("nlines") || 4 });
    else Object.assign(body, { acrostic: $("heads").value });
  } catch (err) { showError(err.message); return; }
  const controller = new AbortController();
  busy(controller);
  setStatus("writing…");
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
    notePrompt(data);
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
    if (seq !== state.nextSeq || state.mode !== "cowrite") return;
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
    notePrompt(data);
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

// -- the model view: training curves and the model card ------------------------------------

const SVG = "http://www.w3.org/2000/svg";
const CURVES = [["loss", "training loss", "#8a2b1d"], ["val_bits_per_char", "held-out bits/char", "#2b5d8a"],
                ["learning_rate", "learning rate", "#5a7d2b"], ["targets_per_s", "targets / s", "#7a5a8a"]];

function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function tick(v) {
  const a = Math.abs(v);
  return a === 0 ? "0" : a >= 100 ? Math.round(v).toLocaleString("en-US") : a >= 1 ? v.toFixed(3)
    : v.toExponential(1);
}

// One panel: the curve of `key` over the epochs that have it, its range and the kept epoch.
function drawPanel(box, epochs, [key, title, colour], x0, y0, w, h, best) {
  const points = epochs.filter((e) => Number.isFinite(e[key]) && Number.isFinite(e.epoch));
  if (!points.length) return false;
  const xs = points.map((e) => e.epoch), ys = points.map((e) => e[key]);
  const [xmin, xmax] = [Math.min(...xs), Math.max(...xs)];
  let [ymin, ymax] = [Math.min(...ys), Math.max(...ys)];
  if (ymin === ymax) { ymin -= Math.abs(ymin) * 0.1 || 1; ymax += Math.abs(ymax) * 0.1 || 1; }
  const left = x0 + 58, right = x0 + w - 14, top = y0 + 26, bottom = y0 + h - 24;
  const px = (x) => xmax === xmin ? (left + right) / 2 : left + (x - xmin) / (xmax - xmin) * (right - left);
  const py = (y) => bottom - (y - ymin) / (ymax - ymin) * (bottom - top);
  box.append(svg("text", { x: x0 + 8, y: y0 + 16, class: "title" }, title));
  box.append(svg("line", { x1: left, y1: bottom, x2: right, y2: bottom, class: "axis" }));
  box.append(svg("line", { x1: left, y1: top, x2: left, y2: bottom, class: "axis" }));
  box.append(svg("text", { x: left - 4, y: top + 4, "text-anchor": "end" }, tick(ymax)));
  box.append(svg("text", { x: left - 4, y: bottom, "text-anchor": "end" }, tick(ymin)));
  box.append(svg("text", { x: left, y: bottom + 15, "text-anchor": "middle" }, `epoch ${xmin}`));
  if (xmax !== xmin) box.append(svg("text", { x: right, y: bottom + 15, "text-anchor": "end" }, `${xmax}`));
  if (best !== null && best >= xmin && best <= xmax) {
    const line = svg("line", { x1: px(best), y1: top, x2: px(best), y2: bottom, class: "best" });
    line.append(svg("title", {}, `epoch ${best}: the weights the model kept`));
    box.append(line);
  }
  const d = points.map((e, i) => `${i ? "L" : "M"}${px(e.epoch).toFixed(1)},${py(e[key]).toFixed(1)}`).join(" ");
  box.append(svg("path", { d, class: "curve", stroke: colour, "data-key": key, "data-points": points.length }));
  for (const e of points) {
    const dot = svg("circle", { cx: px(e.epoch), cy: py(e[key]), r: 2.5, fill: colour });
    dot.append(svg("title", {}, `epoch ${e.epoch}: ${e[key]}`));
    box.append(dot);
  }
  return true;
}

function drawCurves(history) {
  const box = $("curves");
  box.replaceChildren();
  const epochs = history.epochs || [];
  const shown = CURVES.filter(([key]) => epochs.some((e) => Number.isFinite(e[key])));
  const cols = 2, w = 400, h = 170, rows = Math.max(1, Math.ceil(shown.length / cols));
  box.setAttribute("viewBox", `0 0 ${cols * w} ${rows * h}`);
  shown.forEach((curve, i) =>
    drawPanel(box, epochs, curve, (i % cols) * w, Math.floor(i / cols) * h, w, h, history.best_epoch));
  $("curves-box").hidden = !shown.length;
  $("curves-caption").textContent = shown.length
    ? `${epochs.length} epochs${history.best_epoch ? `; dashed: epoch ${history.best_epoch}, the one kept` : ""}` +
      " (history.json in the model's directory)."
    : "";
}

// The card's Markdown, as far as card.py writes it: headings, lists, code blocks, paragraphs,
// `code` and **bold**; text only (never parsed as HTML).
function inline(parent, text) {
  for (const part of text.split(/(`[^`]+`|\*\*[^*]+\*\*)/)) {
    if (!part) continue;
    if (part.startsWith("`") && part.endsWith("`")) {
      const code = document.createElement("code");
      code.textContent = part.slice(1, -1);
      parent.append(code);
    } else if (part.startsWith("**") && part.endsWith("**")) {
      const b = document.createElement("strong");
      b.textContent = part.slice(2, -2);
      parent.append(b);
    } else parent.append(part);
  }
}

function drawCard(markdown) {
  const card = $("card");
  card.replaceChildren();
  let list = null, code = null, para = null;
  for (const line of (markdown || "").split("\n")) {
    if (code) {
      if (line.startsWith("```")) { card.append(code); code = null; } else code.textContent += line + "\n";
      continue;
    }
    if (line.startsWith("```")) { code = document.createElement("pre"); list = para = null; continue; }
    const heading = line.match(/^(#{1,6}) (.*)$/);
    if (heading) {
      const el = document.createElement(heading[1].length === 1 ? "h3" : "h4");
      inline(el, heading[2]);
      card.append(el);
      list = para = null;
    } else if (line.startsWith("- ")) {
      if (!list) { list = document.createElement("ul"); card.append(list); }
      const li = document.createElement("li");
      inline(li, line.slice(2));
      list.append(li);
      para = null;
    } else if (line.trim()) {
      if (!para) { para = document.createElement("p"); card.append(para); } else para.append(" ");
      inline(para, line);
      list = null;
    } else list = para = null;
  }
  if (code) card.append(code);
  card.hidden = !markdown;
}

async function showModelView() {
  const seq = ++state.viewSeq;
  const id = encodeURIComponent($("model").value);
  try {
    const [history, card] = await Promise.all([
      api(`/api/history?model=${id}`).then((r) => r.json()),
      api(`/api/card?model=${id}`).then((r) => r.json())]);
    if (seq !== state.viewSeq) return;
    drawCurves(history);
    drawCard(card.card);
  } catch (err) {
    if (seq === state.viewSeq) $("curves-caption").textContent = `the model view: ${err.message}`;
  }
}

async function start() {
  try {
    const info = await (await api("/api/model")).json();
    state.models = info.models;
    for (const m of info.models) $("model").append(new Option(m.title ? `${m.id} (${m.title})` : m.id, m.id));
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
    showNote("");
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
