// The AMCL demo page: loads the weights, reads the user's images and shows what the wasm module
// (crates/amcl-web, see bindings.rs) computes. Query parameters: ?weights=URL (another model
// trained with amcl-train and exported), ?embed=1 (compact layout for iframes), ?cpu=1 (skip
// WebGPU), and the page's state, which the page keeps in its URL so that a link reproduces it:
// a= and b= (an example such as photos/cat-1.jpg, or an image URL), augs=, seed=, the explorer's
// strengths crop=, jitter=, blur= (when not the authors'), lesson=1 (the lesson shown),
// matrix=photos (the several-images panel showing the example photographs) and hide=
// (panels to hide, comma-separated: inputs, explorer, lesson, views, scores, matrix).

const params = new URLSearchParams(location.search);
const weightsUrl = params.get("weights") || "model.bpk";
if (params.get("embed") === "1") document.body.classList.add("embed");
const $ = (id) => document.getElementById(id);

let wasm = null; // the module's exports
let model = null; // the loaded weights on their device (a wasm `Model`)
let ready = false;
const chosen = { a: null, b: null }; // { bytes: Uint8Array, name }

let notice = ""; // a lasting notice (the GPU was lost), shown when there is no error

function message(text, kind = "error") {
  const el = $("message");
  if (!text && notice) [text, kind] = [notice, "notice"];
  el.textContent = text;
  el.className = kind;
  el.hidden = !text;
}

function bindings() {
  if (window.wasmBindings) return Promise.resolve(window.wasmBindings);
  return new Promise((resolve) =>
    addEventListener("TrunkApplicationStarted", () => resolve(window.wasmBindings), { once: true }));
}

const megabytes = (n) => `${(n / 1e6).toFixed(1)} MB`;

// The page's wasm module, as the browser fetched it (size on the wire when the server compressed
// it), or 0 when the browser does not say.
function wasmBytes() {
  const entry = performance.getEntriesByType("resource").find((e) => /\.wasm(\?|$)/.test(e.name));
  return entry ? entry.encodedBodySize || entry.transferSize || 0 : 0;
}

// The weights at `url`, with the download's progress in the status line.
async function fetchWeights(url, done) {
  let response;
  try {
    response = await fetch(url);
  } catch {
    throw new Error(`could not fetch the weights at ${url}`);
  }
  if (!response.ok) {
    throw new Error(`could not load the weights at ${url}: HTTP ${response.status} ${response.statusText}`);
  }
  const total = Number(response.headers.get("Content-Length")) || 0;
  const parts = [];
  let got = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done: end, value } = await reader.read();
    if (end) break;
    parts.push(value);
    got += value.length;
    $("progress").value = total ? got / total : 0;
    $("loading").textContent = `${done}; weights ${megabytes(got)}${total ? ` of ${megabytes(total)}` : ""}`;
  }
  const bytes = new Uint8Array(got);
  let at = 0;
  for (const p of parts) { bytes.set(p, at); at += p.length; }
  return bytes;
}

async function load() {
  $("progress").hidden = false;
  $("progress").removeAttribute("value");
  const wasmSize = wasmBytes();
  const done = wasmSize ? `program ${megabytes(wasmSize)}` : "program loaded";
  $("loading").textContent = `${done}; fetching the weights`;
  try {
    const webgpu = params.get("cpu") !== "1" && "gpu" in navigator;
    const weights = await fetchWeights(weightsUrl, done);
    $("loading").textContent = `${done}; weights ${megabytes(weights.length)}; starting the model`;
    const loaded = await wasm.load_bytes(weights, weightsUrl, webgpu);
    model?.free();
    model = loaded;
    const info = JSON.parse(model.info());
    $("backend").textContent = info.backend;
    $("loading").textContent = `downloaded: ${done}, weights ${megabytes(weights.length)}`;
    $("model-info").textContent =
      `${info.method}, ${info.backbone}, ${info.heads} heads, d = ${info.dim}, ` +
      `${(info.params / 1e6).toFixed(2)} M parameters, beta = ${info.beta}`;
    ready = true;
    message("");
  } catch (e) {
    $("backend").textContent = "no model";
    $("loading").textContent = "";
    message(e instanceof Error ? e.message : String(e));
  } finally {
    $("progress").hidden = true;
  }
}

async function fileBytes(file) {
  return { bytes: new Uint8Array(await file.arrayBuffer()), name: file.name };
}

function drawView(canvas, view) {
  canvas.width = view.side;
  canvas.height = view.side;
  const ctx = canvas.getContext("2d");
  ctx.putImageData(new ImageData(new Uint8ClampedArray(view.rgba), view.side, view.side), 0, 0);
}

const fmt = (x) => (Math.abs(x) >= 1000 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(3) : x.toFixed(4));

function showScores(report) {
  const rows = $("heads");
  rows.textContent = "";
  const largest = Math.max(1e-9, ...report.heads.map((h) => Math.abs(h.scaled)));
  for (const h of report.heads) {
    const tr = document.createElement("tr");
    const cell = (testid, value) => {
      const td = document.createElement("td");
      if (testid) td.dataset.testid = `${testid}-${h.head}`;
      td.textContent = value;
      td.title = String(value);
      tr.appendChild(td);
      return td;
    };
    cell(null, String(h.head));
    cell("head-similarity", fmt(h.similarity)).dataset.value = h.similarity;
    cell("head-tau", fmt(h.tau_pos)).dataset.value = h.tau_pos;
    cell("head-scaled", fmt(h.scaled)).dataset.value = h.scaled;
    cell("head-omega", fmt(h.omega)).dataset.value = h.omega;
    const bar = document.createElement("td");
    bar.className = "bar";
    const fill = document.createElement("div");
    fill.className = h.scaled >= 0 ? "fill" : "fill negative";
    fill.style.width = `${(100 * Math.abs(h.scaled)) / largest}%`;
    fill.title = `s/tau+ = ${h.scaled}`;
    bar.appendChild(fill);
    tr.appendChild(bar);
    rows.appendChild(tr);
  }
  $("amcl-score").textContent = fmt(report.amcl_score);
  $("amcl-score").dataset.value = report.amcl_score;
  $("simclr-score").textContent =
    `${fmt(report.simclr.score)} (s = ${fmt(report.simclr.similarity)} / ${report.simclr.temperature})`;
  $("simclr-score").dataset.value = report.simclr.score;
  drawView($("view-a"), report.views[0]);
  drawView($("view-b"), report.views[1]);
}

// A lost GPU device (driver reset, GPU process crash, GPUDevice.destroy()): reload the weights on
// the CPU and go on there. wgpu creates the device inside the wasm module, so the page watches
// GPUAdapter.requestDevice for the device's `lost` promise; an error on WebGPU that names the
// device, or a trap in the module, counts as a loss too.
let cpuSwitch = null; // the reload on the CPU, once the GPU device is lost

function gpuLost(reason) {
  if (cpuSwitch || $("backend").textContent !== "WebGPU") return;
  console.warn(`WebGPU device lost (${reason}); continuing on the CPU`);
  cpuSwitch = (async () => {
    notice = "The GPU device was lost; continuing on the CPU.";
    wasm.use_cpu();
    model?.free();
    model = null;
    ready = false;
    await load();
  })();
}

if (globalThis.GPUAdapter) {
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await requestDevice.apply(this, args);
    device.lost.then((info) => gpuLost(`${info.reason}: ${info.message}`));
    return device;
  };
}

async function withFallback(run) {
  if (cpuSwitch) await cpuSwitch;
  try {
    return await run();
  } catch (e) {
    const onGpu = $("backend").textContent === "WebGPU";
    if (!onGpu || !(cpuSwitch || /lost|device|unreachable/i.test(String(e)))) throw e;
    gpuLost(String(e));
    await cpuSwitch;
    return await run();
  }
}

// The explorer's strengths (amcl_core::augment::Strengths) as the module takes them.
const STRENGTHS = { crop: ["crop_scale_min", 0.08], jitter: ["jitter_strength", 0.5], blur: ["blur_sigma_max", 2] };
function strengths() {
  return JSON.stringify(Object.fromEntries(Object.entries(STRENGTHS).map(([id, [key]]) => [key, Number($(id).value)])));
}

// Live scoring for the explorer: the latest request wins; at most one score runs at a time.
let scoring = null;
let again = false;
async function scoreLive() {
  if (scoring) { again = true; return; }
  scoring = score();
  await scoring;
  scoring = null;
  if (again) { again = false; scoreLive(); }
}

// The explorer's checkboxes and the augmentation letters field stay in step.
function lettersFromBoxes() {
  $("augs").value = [...document.querySelectorAll("[data-letter]")].filter((b) => b.checked).map((b) => b.dataset.letter).join("");
}
function boxesFromLetters() {
  const letters = $("augs").value;
  for (const box of document.querySelectorAll("[data-letter]")) box.checked = letters.includes(box.dataset.letter);
}

function setupExplorer() {
  boxesFromLetters();
  $("augs").addEventListener("input", boxesFromLetters);
  for (const box of document.querySelectorAll("[data-letter]")) {
    box.addEventListener("change", () => { lettersFromBoxes(); saveState(); if (chosen.a) scoreLive(); });
  }
  for (const id of Object.keys(STRENGTHS)) {
    $(id).addEventListener("input", () => {
      $(`${id}-value`).textContent = $(id).value;
      if (chosen.a) scoreLive();
    });
    $(id).addEventListener("change", saveState);
  }
}

async function score() {
  if (!ready) return message("The model is not loaded yet.");
  if (!chosen.a) return message("Choose image A first.");
  $("score").disabled = true;
  try {
    const augs = $("augs").value.trim();
    const seed = Math.max(0, parseInt($("seed").value || "0", 10) || 0);
    const b = chosen.b || { bytes: new Uint8Array(), name: "" };
    const started = performance.now();
    const report = await withFallback(async () =>
      JSON.parse(await model.score(chosen.a.bytes, chosen.a.name, b.bytes, b.name, augs, seed, strengths())));
    const ms = performance.now() - started;
    showScores(report);
    $("score-time").textContent = `scored in ${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
    $("score-time").dataset.value = ms;
    saveState();
    message("");
    // Hooks for tests and embedding pages: how many pairs were scored, and image A's name.
    document.body.dataset.scoredA = chosen.a.name;
    document.body.dataset.scored = String(Number(document.body.dataset.scored || 0) + 1);
  } catch (e) {
    message(String(e));
  } finally {
    $("score").disabled = false;
  }
}

// The lesson (examples/lessons.json, chosen by examples/pick_photos.py): three pairs scored with
// the same augmentations and seed, side by side. The sentences on the similarities are static
// (the photographs are chosen for them); the one on the temperatures is chosen from the numbers
// (temperatureSentence), so that it is true of whichever weights are loaded. The browser test
// checks that the numbers bear every sentence out.
async function lesson() {
  if (!ready) return message("The model is not loaded yet.");
  $("lesson-button").disabled = true;
  try {
    const response = await fetch("examples/lessons.json");
    if (!response.ok) throw new Error(`examples/lessons.json: HTTP ${response.status}`);
    const plan = await response.json();
    const photo = (name) => loadExample(`photos/${name}`, name);
    const taus = {};
    for (const pair of plan.pairs) {
      const a = await photo(pair.a);
      const b = pair.b ? await photo(pair.b) : { bytes: new Uint8Array(), name: "" };
      const report = await withFallback(async () =>
        JSON.parse(await model.score(a.bytes, a.name, b.bytes, b.name, plan.augs, plan.seed, "")));
      const figure = document.querySelector(`.lesson-pair[data-kind=${pair.kind}]`);
      const views = figure.querySelector(".lesson-views");
      views.textContent = "";
      for (const [i, view] of report.views.entries()) {
        const canvas = document.createElement("canvas");
        canvas.setAttribute("role", "img");
        canvas.setAttribute("aria-label", `view ${i + 1}: ${i === 0 || !pair.b ? pair.a : pair.b}`);
        drawView(canvas, view);
        views.appendChild(canvas);
      }
      const table = figure.querySelector("table");
      table.innerHTML = "<thead><tr><th>head</th><th><i>s</i></th><th>&tau;<sup>+</sup></th><th><i>s</i>/&tau;<sup>+</sup></th></tr></thead>";
      const body = document.createElement("tbody");
      for (const h of report.heads) {
        const tr = document.createElement("tr");
        for (const [key, value] of [["head", h.head], ["s", h.similarity], ["tau", h.tau_pos], ["scaled", h.scaled]]) {
          const td = document.createElement("td");
          td.textContent = key === "head" ? String(value) : fmt(value);
          if (key !== "head") {
            td.dataset.testid = `lesson-${key}-${pair.kind}-${h.head}`;
            td.dataset.value = value;
          }
          tr.appendChild(td);
        }
        body.appendChild(tr);
      }
      table.appendChild(body);
      const total = document.createElement("caption");
      total.textContent = `AMCL score ${fmt(report.amcl_score)}`;
      table.prepend(total);
      taus[pair.kind] = report.heads.map((h) => h.tau_pos);
    }
    const [claim, html] = temperatureSentence(taus);
    const sentence = document.querySelector("[data-testid=lesson-sentence-other_class]");
    sentence.innerHTML = html;
    sentence.dataset.claim = claim;
    $("lesson-pairs").classList.add("shown");
    document.body.dataset.lesson = String(Number(document.body.dataset.lesson || 0) + 1);
    saveState();
    message("");
  } catch (e) {
    message(e instanceof Error ? e.message : String(e));
  } finally {
    $("lesson-button").disabled = false;
  }
}

// The lesson's sentence on tau+, from the three pairs' temperatures (per kind, one per head):
// "one-level" when tau+ moves by less than a fifth across the pairs in every head; "sharpens" when
// it rises from two views of one photo to one class to two classes in every head; else "varies".
function temperatureSentence(taus) {
  const kinds = ["views", "same_class", "other_class"];
  const heads = taus.views.map((_, h) => h);
  const flat = heads.every((h) => {
    const t = kinds.map((k) => taus[k][h]);
    return Math.max(...t) < 1.2 * Math.min(...t);
  });
  if (flat) {
    return ["one-level", "The lowest <i>s</i>. Across the three pairs &tau;<sup>+</sup> moves by less " +
      "than a fifth in every head: this model learned mostly one temperature level for all pairs, so " +
      "<i>s</i> decides the score."];
  }
  if (heads.every((h) => taus.views[h] < taus.same_class[h] && taus.same_class[h] < taus.other_class[h])) {
    return ["sharpens", "The lowest <i>s</i>, and the highest &tau;<sup>+</sup> in every head: this " +
      "model gives pairs that look alike a low temperature, which sharpens their score, and unlike " +
      "pairs a high one. The objective's hard cases, similar pairs, weigh most."];
  }
  return ["varies", "The lowest <i>s</i>. &tau;<sup>+</sup> differs by a fifth or more between the " +
    "pairs in at least one head, but not in the same order in every head: compare the tables."];
}

function heat(value) {
  // -1 (blue) .. 0 (white) .. 1 (red)
  const t = Math.max(-1, Math.min(1, value));
  const r = t > 0 ? 255 : Math.round(255 * (1 + t));
  const b = t < 0 ? 255 : Math.round(255 * (1 - t));
  const g = Math.round(255 * (1 - Math.abs(t)));
  return `rgb(${r},${g},${b})`;
}

// Several images: per head, the similarity matrix (view A of each image against view B of each)
// and the views' embeddings on their two principal components, the two views of an image joined.
// `items`: [{ bytes, name, group }], group (a photo's class) colouring the points.
async function matrix(items) {
  if (!ready) return message("The model is not loaded yet.");
  if (items.length < 2) return message("Choose at least two images for the matrix.");
  try {
    const total = items.reduce((n, it) => n + it.bytes.length, 0);
    const bytes = new Uint8Array(total);
    let at = 0;
    for (const it of items) { bytes.set(it.bytes, at); at += it.bytes.length; }
    const lengths = new Uint32Array(items.map((it) => it.bytes.length));
    const seed = Math.max(0, parseInt($("seed").value || "0", 10) || 0);
    const report = await withFallback(async () => JSON.parse(await model.matrix(
      bytes, lengths, items.map((it) => it.name), $("augs").value.trim(), seed, strengths())));
    const groups = [...new Set(items.map((it) => it.group ?? it.name))];
    const colour = (i) => `hsl(${Math.round((360 * groups.indexOf(items[i].group ?? items[i].name)) / groups.length)},70%,42%)`;
    const out = $("matrices");
    out.textContent = "";
    for (const h of report.heads) {
      const fig = document.createElement("figure");
      fig.append(heatmap(h, report.n), scatter(h, report.n, colour, items));
      const caption = document.createElement("figcaption");
      const [x, y] = h.projection.explained.map((v) => `${Math.round(100 * v)} %`);
      caption.textContent = `head ${h.head}: principal components ${x} and ${y} of the variance; ` +
        "hardest negative per row (tau-): " +
        h.hardest.map((j, i) => `${i}->${j} (${h.tau[i * report.n + j].toFixed(3)})`).join(", ");
      fig.append(caption);
      out.appendChild(fig);
    }
    $("matrix-legend").textContent = groups.length < items.length
      ? `Colours: ${groups.join(", ")}.` : "Each image has its own colour.";
    document.body.dataset.matrix = String(Number(document.body.dataset.matrix || 0) + 1);
    message("");
  } catch (e) {
    message(e instanceof Error ? e.message : String(e));
  }
}

// One head's similarity matrix; each row's hardest negative ringed.
function heatmap(h, n) {
  const cellSize = Math.max(12, Math.min(48, Math.floor(240 / n)));
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = n * cellSize;
  canvas.dataset.testid = `matrix-${h.head}`;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `head ${h.head}: similarity of view A of each image (rows) to view B of each (columns)`);
  const ctx = canvas.getContext("2d");
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      ctx.fillStyle = heat(h.similarity[i * n + j]);
      ctx.fillRect(j * cellSize, i * cellSize, cellSize, cellSize);
    }
    const j = h.hardest[i];
    ctx.strokeStyle = "#000";
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc((j + 0.5) * cellSize, (i + 0.5) * cellSize, cellSize * 0.35, 0, 2 * Math.PI);
    ctx.stroke();
  }
  return canvas;
}

// One head's embeddings in the plane of their two principal components: view A a dot, view B a
// ring, the two views of one image (a positive pair) joined by a line.
function scatter(h, n, colour, items) {
  const side = 240;
  const pad = 10;
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = side;
  canvas.dataset.testid = `pca-${h.head}`;
  canvas.dataset.points = JSON.stringify(h.projection.points);
  canvas.setAttribute("role", "img");
  const ctx = canvas.getContext("2d");
  const p = h.projection.points;
  const reach = Math.max(1e-6, ...p.flat().map(Math.abs));
  const at = ([x, y]) => [side / 2 + ((side / 2 - pad) * x) / reach, side / 2 - ((side / 2 - pad) * y) / reach];
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, side, side);
  ctx.strokeStyle = "#e4e4ec";
  ctx.beginPath();
  ctx.moveTo(side / 2, 0); ctx.lineTo(side / 2, side); ctx.moveTo(0, side / 2); ctx.lineTo(side, side / 2);
  ctx.stroke();
  let spread = 0;
  for (let i = 0; i < n; i++) {
    const [a, b] = [at(p[i]), at(p[n + i])];
    spread += Math.hypot(p[i][0] - p[n + i][0], p[i][1] - p[n + i][1]);
    ctx.strokeStyle = colour(i);
    ctx.fillStyle = colour(i);
    ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.moveTo(...a); ctx.lineTo(...b); ctx.stroke();
    ctx.beginPath(); ctx.arc(...a, 4, 0, 2 * Math.PI); ctx.fill();
    ctx.beginPath(); ctx.arc(...b, 4, 0, 2 * Math.PI); ctx.stroke();
  }
  canvas.setAttribute("aria-label", `head ${h.head}: the ${n} images' two views on the embeddings' two principal ` +
    `components; the average line joining an image's two views is ${(spread / n / reach).toFixed(2)} of the plot's half-width`);
  canvas.title = items.map((it, i) => `${i}: ${it.name}`).join("\n");
  return canvas;
}

let matrixSource = null; // "photos" when the matrix shows the example photographs (matrix= in the URL)

// The example photographs (examples/photos.json), each coloured by its class.
async function matrixPhotos() {
  try {
    const photos = await photoList();
    const items = await Promise.all(photos.map(async (p) =>
      ({ ...(await loadExample(`photos/${p.name}`, p.name)), group: p.class })));
    matrixSource = "photos";
    saveState();
    await matrix(items);
  } catch (e) {
    message(e instanceof Error ? e.message : String(e));
  }
}
function dropZone(zone, slot, input) {
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files.length) { chosen[slot] = await fileBytes(e.dataTransfer.files[0]); score(); }
  });
  input.addEventListener("change", async () => {
    chosen[slot] = input.files.length ? await fileBytes(input.files[0]) : null;
    if (chosen.a) score();
  });
}

// The examples: CIFAR-10 test photographs (examples/photos.json) and drawings unlike the
// training data. A click makes the example image A, or image B when A is already chosen alone.
async function loadExample(path, name) {
  const response = await fetch(`examples/${path}`);
  if (!response.ok) throw new Error(`could not load examples/${path}`);
  return { bytes: new Uint8Array(await response.arrayBuffer()), name, source: path };
}

// An image named in the URL: an example's path (photos/cat-1.jpg) or an image URL.
async function loadSource(source) {
  if (!/^(https?:|\/)/.test(source)) return loadExample(source, source.split("/").pop());
  let response;
  try {
    response = await fetch(source);
  } catch {
    throw new Error(`could not fetch the image at ${source}`);
  }
  if (!response.ok) throw new Error(`could not load the image at ${source}: HTTP ${response.status}`);
  const name = decodeURIComponent(new URL(source, location.href).pathname.split("/").pop() || "image");
  return { bytes: new Uint8Array(await response.arrayBuffer()), name, source };
}

// The page's state as its URL's query: what a link needs to show the same views and numbers.
// Uploaded files have no address, so they leave a= and b= out.
function stateUrl() {
  const q = new URLSearchParams();
  for (const key of ["weights", "embed", "cpu"]) if (params.has(key)) q.set(key, params.get(key));
  if (chosen.a?.source) q.set("a", chosen.a.source);
  if (chosen.a?.source && chosen.b?.source) q.set("b", chosen.b.source);
  q.set("augs", $("augs").value.trim());
  q.set("seed", String(Math.max(0, parseInt($("seed").value || "0", 10) || 0)));
  for (const [id, [, fallback]] of Object.entries(STRENGTHS)) {
    if (Number($(id).value) !== fallback) q.set(id, $(id).value);
  }
  if (document.body.dataset.lesson) q.set("lesson", "1");
  if (matrixSource) q.set("matrix", matrixSource);
  if (hidden.length) q.set("hide", hidden.join(","));
  return `${location.pathname}?${q.toString().replace(/%2F/g, "/").replace(/%2C/g, ",")}`;
}

function saveState() {
  history.replaceState(null, "", stateUrl());
}

const PANELS = ["inputs", "explorer", "lesson", "views", "scores", "matrix"];
const hidden = (params.get("hide") || "").split(",").map((p) => p.trim()).filter((p) => PANELS.includes(p));

// Restores the state a link carries (after the model has loaded).
async function restoreState() {
  for (const panel of hidden) document.querySelector(`section.${panel}`).hidden = true;
  if (params.has("augs")) $("augs").value = params.get("augs");
  if (params.has("seed")) $("seed").value = params.get("seed");
  for (const id of Object.keys(STRENGTHS)) {
    if (params.has(id)) { $(id).value = params.get(id); $(`${id}-value`).textContent = $(id).value; }
  }
  boxesFromLetters();
  try {
    if (params.get("a")) {
      chosen.a = await loadSource(params.get("a"));
      chosen.b = params.get("b") ? await loadSource(params.get("b")) : null;
      await score();
    }
  } catch (e) {
    message(e instanceof Error ? e.message : String(e));
  }
  if (params.get("lesson") === "1") await lesson();
  if (params.get("matrix") === "photos") await matrixPhotos();
}

async function copyLink() {
  saveState();
  const link = location.href;
  try {
    await navigator.clipboard.writeText(link);
    $("copied").textContent = "link copied";
  } catch {
    // No clipboard permission (e.g. in some iframes): show the link to copy by hand.
    $("copied").textContent = link;
  }
  $("copied").dataset.link = link;
}

function exampleButton(path, label, name, thumbnail) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = thumbnail ? "example photo" : "example";
  button.dataset.testid = `example-${name}`;
  button.setAttribute("aria-label", `use ${label} as an image`);
  if (thumbnail) {
    const img = document.createElement("img");
    img.src = `examples/${path}`;
    img.alt = "";
    img.width = img.height = 32;
    button.append(img);
  }
  button.append(label);
  button.addEventListener("click", async () => {
    try {
      const item = await loadExample(path, name);
      if (!chosen.a || chosen.b) { chosen.a = item; chosen.b = null; } else { chosen.b = item; }
      score();
    } catch (e) {
      message(String(e));
    }
  });
  return button;
}

// The list of example photographs (examples/photos.json), fetched once (again after a failure).
let photoListing = null;
function photoList() {
  photoListing ??= fetch("examples/photos.json").then((response) => {
    if (!response.ok) throw new Error(`examples/photos.json: HTTP ${response.status}`);
    return response.json();
  }).catch((e) => { photoListing = null; throw e; }); // a failed fetch is tried again next time
  return photoListing;
}

async function examples() {
  const photos = $("photos");
  try {
    for (const p of await photoList()) {
      const label = p.name.replace(".jpg", "").replace("-", " ");
      photos.appendChild(exampleButton(`photos/${p.name}`, label, p.name, true));
    }
  } catch (e) {
    photos.textContent = `(no photographs: ${e})`;
  }
  for (const name of ["disc.png", "stripes.png", "checker.png", "ring.png"]) {
    $("examples").appendChild(exampleButton(name, name.replace(".png", ""), name, false));
  }
}

async function main() {
  wasm = await bindings();
  dropZone($("drop-a"), "a", $("image-a"));
  dropZone($("drop-b"), "b", $("image-b"));
  $("score").addEventListener("click", score);
  $("lesson-button").addEventListener("click", lesson);
  $("copy-link").addEventListener("click", copyLink);
  setupExplorer();
  for (const id of ["augs", "seed"]) $(id).addEventListener("change", saveState);
  $("images").addEventListener("change", async () => {
    matrixSource = null;
    saveState();
    await matrix(await Promise.all([...$("images").files].map(fileBytes)));
  });
  $("matrix-photos").addEventListener("click", matrixPhotos);
  examples();
  await load();
  if (ready) await restoreState();
  document.body.dataset.ready = "1";
}

main();
