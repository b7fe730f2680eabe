// The explorer page: runs list (polled), drawing/upload/test image → predict, stages, training, compare.
"use strict";
const state = { runs: [], run: null, model: null, details: null, blob: null, predicted: null, seq: 0, compareSeq: 0 };
const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) (k === "class" ? (node.className = v) : node.setAttribute(k, v));
  for (const c of children) node.append(c);
  return node;
};
const pct = (v) => (Number.isFinite(v) ? `${(v * 100).toFixed(1)}%` : "–");
const thousands = (n) => (n ?? 0).toLocaleString("en");

// fetch JSON; a 503 (every inference slot busy) is retried after a moment; errors carry the server's detail.
// A wait over half a second shows the spinner (waits.js) unless `label` is false (the caller shows progress).
async function api(path, options = {}, tries = 6, label = waitLabel(path)) {
  const done = label === false ? () => {} : startWait(label);
  try {
    for (let attempt = 0; ; attempt++) {
      const response = await fetch(path, options);
      if (response.status === 503 && attempt < tries) {
        await new Promise((r) => setTimeout(r, 250 * (attempt + 1)));
        continue;
      }
      const body = await response.json().catch(() => ({ detail: response.statusText }));
      if (!response.ok) {
        throw Object.assign(new Error(body.detail || response.statusText), { status: response.status });
      }
      return body;
    }
  } finally { done(); }
}

function showError(message) {
  const box = $("#run-error");
  box.hidden = !message;
  box.textContent = message || "";
}

// ---- runs list -------------------------------------------------------------------------------------------
async function refreshRuns(label) {
  const data = await api("/api/runs", {}, 6, label);  // the background poll shows no spinner
  $("#runs-dir").textContent = `in ${data.runs_dir}/`;
  const previous = new Map(state.runs.map((r) => [r.name, r.modified]));
  state.runs = data.runs;
  const list = $("#runs");
  list.replaceChildren(...data.runs.map(runCard));
  if (!data.runs.length) list.replaceChildren(el("li", { class: "empty" }, `No runs in ${data.runs_dir}/ yet: train one with `, el("code", {}, `cnnzoo train --recipe lenet5-demo --out ${data.runs_dir}/demo`)));
  if (!state.run && data.runs.length) selectRun(data.runs.find((r) => r.has_checkpoint)?.name || data.runs[0].name);
  fillCompareSelects();
  const current = data.runs.find((r) => r.name === state.run);
  if (current && previous.has(current.name) && previous.get(current.name) !== current.modified) loadDetails();
  if (current && current.has_checkpoint && state.waiting) selectRun(current.name);  // its first epoch has ended
}

function runCard(run) {
  const epochs = run.epochs_planned ? `${run.epochs_done}/${run.epochs_planned} epochs` : `${run.epochs_done} epochs`;
  const li = el("li", { "data-run": run.name, class: run.name === state.run ? "selected" : "" },
    el("div", { class: "run-name" }, run.name, el("span", { class: `badge ${run.status}` }, run.status)),
    el("div", { class: "muted" }, `${run.model || "?"} · ${run.dataset || "?"}`),
    el("div", {}, el("strong", { class: "acc" }, pct(run.test_top1)), el("span", { class: "muted" }, ` test · ${epochs}`)),
    el("div", { class: "muted small" }, run.date));
  li.tabIndex = 0;
  li.addEventListener("click", () => selectRun(run.name));
  li.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); selectRun(run.name); } });
  return li;
}

async function selectRun(name) {
  state.run = name;
  state.seq++;  // answers still on their way for the previous run are dropped
  state.model = null;
  document.querySelectorAll("#runs li").forEach((li) => li.classList.toggle("selected", li.dataset.run === name));
  const run = state.runs.find((r) => r.name === name) || {};
  $("#run-title").textContent = `${name}: ${run.model || "?"} on ${run.dataset || "?"}`;
  showError("");
  clearResults();
  loadDetails();
  state.waiting = !run.has_checkpoint;
  if (state.waiting) {
    showError(`${name} has no checkpoint yet: it is written when the first epoch ends (this page will notice). ` +
      "Its curves grow in the Training tab meanwhile.");
    return;
  }
  try {
    state.model = await api(`/api/runs/${encodeURIComponent(name)}/model`);
    renderLayers();
    if (state.blob) predict(state.blob, state.caption);
  } catch (error) {
    if (state.run === name) showError(`This run cannot be explored: ${error.message}`);
  }
}

// ---- input: drawing, upload, drop, random test image ------------------------------------------------------
const canvas = $("#canvas");
const pen = canvas.getContext("2d");
function clearCanvas() {
  pen.fillStyle = "#000";
  pen.fillRect(0, 0, canvas.width, canvas.height);
}
function setupDrawing() {
  clearCanvas();
  let drawing = false, last = null;
  const at = (e) => { const r = canvas.getBoundingClientRect(); return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height]; };
  canvas.addEventListener("pointerdown", (e) => { drawing = true; last = at(e); canvas.setPointerCapture(e.pointerId); stroke(last, last); });
  canvas.addEventListener("pointermove", (e) => { if (!drawing) return; const p = at(e); stroke(last, p); last = p; });
  const end = () => { if (!drawing) return; drawing = false; canvas.toBlob((b) => predict(b), "image/png"); };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointerleave", end);
  canvas.addEventListener("dragover", (e) => e.preventDefault());
  canvas.addEventListener("drop", (e) => { e.preventDefault(); if (e.dataTransfer.files[0]) useFile(e.dataTransfer.files[0]); });
  $("#clear").addEventListener("click", () => { clearCanvas(); clearResults(); state.blob = null; });
  $("#file").addEventListener("change", (e) => e.target.files[0] && useFile(e.target.files[0]));
  $("#random").addEventListener("click", randomTestImage);
  $("#prepare").addEventListener("change", () => state.blob && predict(state.blob, state.caption));
}
function stroke(a, b) {
  pen.strokeStyle = "#fff";
  pen.lineWidth = 22;
  pen.lineCap = pen.lineJoin = "round";
  pen.beginPath(); pen.moveTo(...a); pen.lineTo(...b); pen.stroke();
}
function showOnCanvas(src) {
  const img = new Image();
  img.onload = () => { clearCanvas(); pen.imageSmoothingEnabled = false; pen.drawImage(img, 0, 0, canvas.width, canvas.height); };
  img.src = src;
}
function useFile(file) {
  showOnCanvas(URL.createObjectURL(file));
  predict(file, `uploaded ${file.name}`);
}
async function randomTestImage() {
  if (!state.run) return;
  try {
    const item = await api(`/api/runs/${encodeURIComponent(state.run)}/test-image`);
    const blob = await (await fetch(`data:image/png;base64,${item.png}`)).blob();
    showOnCanvas(URL.createObjectURL(blob));
    predict(blob, `test image #${item.index} of ${thousands(item.count)}: truly ${item.class}`);
  } catch (error) { showError(error.message); }
}

// ---- prediction --------------------------------------------------------------------------------------------
function clearResults() {
  for (const id of ["#topk", "#stages", "#neighbours"]) $(id).replaceChildren();
  for (const id of ["#seen", "#cam"]) { const c = $(id); c.getContext("2d").clearRect(0, 0, c.width, c.height); }
  $("#prepared").textContent = $("#truth").textContent = $("#seen-shape").textContent = "";
  $("#cam-caption").textContent = "Grad-CAM: where it looked";
  $("#neighbours-caption").textContent = "in the network's penultimate features; ✗ and an orange frame: another class than predicted";
  $("#softmax tbody").replaceChildren();
  $("#softmax tfoot").replaceChildren();
}

async function predict(blob, caption = "your drawing") {
  if (!state.run || !blob) return;
  state.blob = blob;
  state.caption = caption;
  const seq = ++state.seq, run = state.run;
  const form = () => { const f = new FormData(); f.append("image", blob, blob.name || "image.png"); return f; };
  const query = $("#prepare").checked ? "" : "?prepare=false";  // --no-prepare: pixels as they are
  try {
    const url = `/api/runs/${encodeURIComponent(run)}/predict${query}`;
    const result = await api(url, { method: "POST", body: form() });
    if (seq !== state.seq) return;
    showError("");
    renderPrediction(result);
    $("#truth").textContent = caption;
    loadNeighbours(run, seq, form, query)
      .catch((error) => { $("#neighbours").textContent = error.message; });
  } catch (error) {
    if (seq === state.seq) showError(error.message);
  }
}

function renderPrediction(result) {
  state.predicted = result.top_k[0]?.class;
  $("#topk").replaceChildren(...result.top_k.map((p, i) => el("li", { class: i ? "" : "top" },
    el("span", { class: "label" }, p.class),
    el("span", { class: "bar" }, el("span", { style: `width:${(p.probability * 100).toFixed(1)}%` })),
    el("span", { class: "prob" }, pct(p.probability)))));
  const seen = $("#seen");
  const img = new Image();
  const seq = state.seq;
  img.onload = () => {
    if (seq !== state.seq) return;
    state.inputImage = img;
    const ctx = seen.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(img, 0, 0, seen.width, seen.height);
    renderCam(result.cam, img);
  };
  img.src = `data:image/png;base64,${result.input.png}`;
  $("#seen-shape").textContent = result.input.shape.join("×");
  const steps = result.prepared?.length ? result.prepared.join("; ") : "as it is";
  $("#prepared").textContent = `prepared: ${steps}`;
  if (result.warning) $("#prepared").textContent += ` ⚠ ${result.warning}`;
  renderStages(result);
  renderSoftmax(result.softmax, state.model?.classes || []);
  fillCamChoices(result);
}

function renderCam(cam, img) {
  const c = $("#cam"), ctx = c.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(img, 0, 0, c.width, c.height);
  if (cam.error) { $("#cam-caption").textContent = cam.error; return; }
  const name = state.model?.classes[cam.class_index] ?? cam.class_index;
  const where = `“${name}” at ${cam.layer} / ${cam.module} (${cam.map_size.join("×")})`;
  $("#cam").dataset.allZero = String(cam.all_zero);
  if (cam.all_zero) {
    $("#cam-caption").textContent = `Grad-CAM for ${where} is zero everywhere: no map of this layer weighs ` +
      "positively toward this class for this image (the ReLU of the weighted sum leaves nothing), so nothing is drawn over the input.";
    return;
  }
  const overlay = document.createElement("canvas");
  overlay.width = c.width; overlay.height = c.height;
  paintValues(overlay, decodeBytes(cam.data), 0, cam.height, cam.width, "inferno", 150);
  ctx.drawImage(overlay, 0, 0);
  $("#cam-caption").textContent = `Grad-CAM for ${where}, upsampled to the input and scaled to its maximum (inferno: 0 → max)`;
}

function renderNeighbours(n) {
  $("#neighbours-caption").textContent = `${n.space}, among ${thousands(n.searched)} training images; ✗ and an orange frame: another class than predicted; d: Euclidean distance`;
  $("#neighbours").replaceChildren(...n.images.map((item) => el("figure", { class: item.class === state.predicted ? "" : "other" },
    el("img", { src: `data:image/png;base64,${item.png}`, alt: item.class }),
    el("figcaption", {}, `${item.class === state.predicted ? "✓" : "✗"} ${item.class}`, el("br"), el("span", { class: "muted" }, `d = ${item.distance.toFixed(2)}`)))));
}

// ---- stages (CNN-Explainer style) ----------------------------------------------------------------------------
function renderStages(result) {
  const cards = [];
  for (const stage of result.stages) {
    const bytes = decodeBytes(stage.data);
    const card = el("div", { class: `stage ${stage.kind}`, "data-stage": stage.name });
    const what = stage.layer ? `${stage.layer.type} ${stage.layer.kernel}×${stage.layer.kernel}` : stage.module;
    card.append(el("h4", {}, stage.name, el("span", { class: "muted" }, ` ${stage.shape.join("×")}`)),
      el("div", { class: "muted small" }, what + (stage.shown < stage.count ? ` · first ${stage.shown} of ${stage.count}` : "")));
    const grid = el("div", { class: "maps" });
    if (stage.kind === "maps") {
      const size = stage.shown > 16 ? 30 : stage.shown > 8 ? 40 : 52;
      const columns = stage.shown <= 8 ? 2 : Math.ceil(Math.sqrt(stage.shown));
      grid.style.gridTemplateColumns = `repeat(${columns}, ${size}px)`;
      for (let i = 0; i < stage.shown; i++) {
        const c = el("canvas", { class: "map", width: size, height: size, title: `${stage.name} map ${i}`, tabindex: "0", role: "button" });
        paintValues(c, bytes, i * stage.height * stage.width, stage.height, stage.width, "viridis");
        c.addEventListener("click", () => zoom(stage, bytes, i));
        c.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); zoom(stage, bytes, i); } });
        grid.append(c);
      }
    } else {
      const side = Math.ceil(Math.sqrt(stage.shown));
      const padded = new Uint8Array(side * side);
      padded.set(bytes.subarray(0, stage.shown));
      const c = el("canvas", { class: "map units", width: 120, height: 120, title: `${stage.name}: ${stage.count} units, row by row`, tabindex: "0", role: "button" });
      paintValues(c, padded, 0, side, side, "viridis");
      c.addEventListener("click", () => zoom(stage, padded, 0, side));
      c.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); zoom(stage, padded, 0, side); } });
      grid.append(c);
    }
    card.append(grid);
    cards.push(card, el("div", { class: "arrow" }, "→"));
  }
  const out = el("div", { class: "stage output" }, el("h4", {}, "output"),
    el("div", { class: "muted small" }, "softmax"),
    el("ol", {}, ...result.top_k.slice(0, 5).map((p) => el("li", {}, `${p.class} ${pct(p.probability)}`))));
  $("#stages").replaceChildren(...cards, out);
}

function zoom(stage, bytes, index, side) {
  const h = side || stage.height, w = side || stage.width;
  state.zoomed = { stage, bytes, index, h, w, offset: index * h * w };
  paintValues($("#zoom-map"), bytes, index * h * w, h, w, "viridis");
  $("#position").replaceChildren(el("p", { class: "muted" }, "Click a position in the map (or focus it, move with the arrow keys, press Enter) to see how the model computed it."));
  startConvolution(null);
  drawWindowOnInput(null);
  const kind = stage.kind === "maps" ? `map ${index} of ${stage.count} (numbered from 0)` : `${stage.count} units, row by row`;
  $("#zoom-title").textContent = `${stage.name} (${stage.module}): ${kind}`;
  $("#zoom-range").textContent = `values ${stage.min[index].toFixed(3)} (dark) … ${stage.max[index].toFixed(3)} (yellow)`;
  $("#zoom-layer").replaceChildren(...layerExplanation(stage, index));
  $("#zoom").showModal();
  $("#zoom-map").focus();
}

function layerExplanation(stage, index) {
  const L = stage.layer;
  if (!L) return [el("p", { class: "muted" }, stage.kind === "units" ? "A fully connected stage: each unit weighs every value of the stage before it." : "A block of several layers (its output is shown).")];
  const parts = [el("p", {}, `${L.type}: kernel ${L.kernel}×${L.kernel}, stride ${L.stride}, padding ${L.padding}` + (L.dilation > 1 ? `, dilation ${L.dilation}` : "")),
    el("p", { class: "formula" }, "output width = (W − K + 2P) / S + 1"),
    el("p", { class: "formula" }, L.formula),
    el("p", { class: "muted small" }, `W = ${L.in_width} input width, K = ${L.kernel} kernel, P = ${L.padding} padding, S = ${L.stride} stride` + (L.ceil_mode ? "; this pool rounds up" : "; rounded down"))];
  if (L.kernels && index < L.kernels.shape[0]) {
    const [, inputs, k] = L.kernels.shape;
    const bytes = decodeBytes(L.kernels.data);
    const row = el("div", { class: "kernels" });
    for (let j = 0; j < inputs; j++) {
      const c = el("canvas", { width: 44, height: 44, title: `input channel ${j + 1}` });
      paintValues(c, bytes, (index * inputs + j) * k * k, k, k, "signed");
      row.append(c);
    }
    parts.push(el("h4", {}, `its kernels for this map (one per input channel${L.weight_shape[1] > inputs ? `, first ${inputs} of ${L.weight_shape[1]}` : ""})`),
      row, el("p", { class: "muted small" }, `weights ${L.weight_shape.join("×")}; red +, white 0, blue −, scaled by max |w| = ${L.kernels.max_abs[index].toPrecision(3)}`));
  }
  return parts;
}

// ---- training tab ------------------------------------------------------------------------------------------
async function loadDetails() {
  const name = state.run;
  try {
    const details = await api(`/api/runs/${encodeURIComponent(name)}`);
    if (name !== state.run) return;
    state.details = details;
    renderTraining(details);
  } catch (error) { showError(error.message); }
}

function series(metrics, key, label, colour, dashed) {
  return { label, colour, dashed, points: metrics.filter((m) => Number.isFinite(m[key])).map((m) => [m.epoch, m[key]]) };
}

function renderTraining(d) {
  lineChart($("#loss-chart"), [series(d.metrics, "train_loss", "train", PALETTE[0], true), series(d.metrics, "test_loss", "test", PALETTE[1])], { xLabel: "epoch", yLabel: "cross-entropy loss" });
  lineChart($("#acc-chart"), [series(d.metrics, "train_top1", "train", PALETTE[0], true), series(d.metrics, "test_top1", "test", PALETTE[1])], { xLabel: "epoch", yLabel: "top-1 accuracy", percent: true });
  const classes = Object.keys(d.per_class);
  const chart = $("#class-chart");
  if (!classes.length) {
    const ctx = chart.getContext("2d");
    ctx.clearRect(0, 0, chart.width, chart.height);
    ctx.font = FONT; ctx.fillStyle = "#666"; ctx.textAlign = "center";
    ctx.fillText("per_class.csv is written when training ends", chart.width / 2, chart.height / 2);
  } else barChart(chart, classes, [{ label: "test accuracy", colour: PALETTE[0], values: classes.map((c) => d.per_class[c]) }], { yLabel: "accuracy", percent: true, bottom: 64 });
  $("#confusion").replaceChildren(d.figures.includes("confusion.png")
    ? confusionImage(d)
    : el("p", { class: "muted" }, "written when training ends"));
}

// The confusion matrix's numbers are 7 pt at 110 dpi (10.7 px at the PNG's own size): shown at 1.05× its
// width they are 11.2 px, the least that reads comfortably on a laptop screen.
const CONFUSION_SCALE = 1.05, CONFUSION_NUMBER_PX = 7 * 110 / 72;
function confusionImage(d) {
  const img = el("img", { src: `/api/runs/${encodeURIComponent(d.name)}/figures/confusion.png?t=${d.modified}`,
    alt: "confusion matrix of the test set, each row normalised" });
  img.addEventListener("load", () => {
    img.style.width = `${Math.round(img.naturalWidth * CONFUSION_SCALE)}px`;
    img.dataset.numberPx = (CONFUSION_NUMBER_PX * CONFUSION_SCALE).toFixed(1);
  });
  return img;
}

function renderLayers() {
  const m = state.model;
  // the trainable count, as `cnnzoo list` shows it; fixed ones (LeNet-1998's RBF prototypes) apart
  const fixed = m.fixed_params
    ? ` (trainable; ${thousands(m.fixed_params)} fixed, ${thousands(m.total_params)} in all)` : "";
  $("#layers-total").textContent = `${m.model}: ${thousands(m.params)} parameters${fixed}, `
    + `${thousands(m.total_macs)} multiply-adds per image`;
  $("#layers tbody").replaceChildren(...m.layers.map((l) => el("tr", {}, el("td", {}, l.stage ? `${l.stage} / ${l.name}` : l.name), el("td", {}, l.type),
    el("td", {}, l.output_shape.join("×")), el("td", { class: "num" }, thousands(l.params)),
    el("td", { class: "num" }, thousands(l.macs)), el("td", { class: "num" }, l.receptive_field ?? "–"))));
}

// ---- compare tab -------------------------------------------------------------------------------------------
function fillCompareSelects() {
  for (const [id, fallback] of [["#compare-a", 0], ["#compare-b", 1]]) {
    const select = $(id), chosen = select.value;
    select.replaceChildren(...state.runs.map((r) => el("option", { value: r.name }, `${r.name} (${r.model}, ${pct(r.test_top1)})`)));
    select.value = chosen || state.runs[Math.min(fallback, state.runs.length - 1)]?.name || "";
  }
}

async function renderCompare() {
  const ticket = ++state.compareSeq;  // two quick choices: the answers can come back in either order
  const names = [$("#compare-a").value, $("#compare-b").value].filter(Boolean);
  const runs = await Promise.all(names.map((n) => api(`/api/runs/${encodeURIComponent(n)}`)));
  if (ticket !== state.compareSeq) return;  // a newer choice is being drawn
  const label = (r, i) => `${"AB"[i]}: ${r.name}`;
  lineChart($("#compare-acc"), runs.map((r, i) => series(r.metrics, "test_top1", label(r, i), PALETTE[i])), { xLabel: "epoch", yLabel: "test top-1 accuracy", percent: true });
  lineChart($("#compare-loss"), runs.map((r, i) => series(r.metrics, "test_loss", label(r, i), PALETTE[i])), { xLabel: "epoch", yLabel: "test loss" });
  const classes = [...new Set(runs.flatMap((r) => Object.keys(r.per_class)))];
  barChart($("#compare-classes"), classes, runs.map((r, i) => ({ label: label(r, i), colour: PALETTE[i], values: classes.map((c) => r.per_class[c]) })), { yLabel: "accuracy", percent: true, bottom: 64 });
  const rows = [["", ...runs.map(label)], ["model", ...runs.map((r) => r.model)], ["data set", ...runs.map((r) => r.dataset)],
    ["test top-1 (last epoch)", ...runs.map((r) => pct(r.test_top1))], ["best test top-1", ...runs.map((r) => pct(r.best_test_top1))],
    ["epochs", ...runs.map((r) => String(r.epochs_done))], ["parameters", ...runs.map((r) => thousands(r.summary.params))],
    ["training time", ...runs.map((r) => (r.summary.train_seconds ? `${r.summary.train_seconds} s` : "–"))]];
  $("#compare-table").replaceChildren(...rows.map((row, i) => el("tr", {}, ...row.map((cell) => el(i ? "td" : "th", {}, cell)))));
}

// ---- tabs and start ----------------------------------------------------------------------------------------
function setupTabs() {
  document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => {
    document.querySelectorAll("#tabs button").forEach((x) => x.classList.toggle("active", x === b));
    document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.id === b.dataset.tab));
    if (b.dataset.tab === "compare") renderCompare();
    if (b.dataset.tab === "training" && state.details) renderTraining(state.details);
  }));
  $("#compare-a").addEventListener("change", renderCompare);
  $("#compare-b").addEventListener("change", renderCompare);
  $("#zoom-close").addEventListener("click", () => $("#zoom").close());
  $("#zoom").addEventListener("close", () => pauseConvolution());
}

setupDrawing();
setupTabs();
setupPositions();
setupConvolution();
setupCamChoices();
refreshRuns().catch((error) => showError(error.message));
setInterval(() => refreshRuns(false).catch(() => {}), 3000);
