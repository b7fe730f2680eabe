// The explorer page: runs list (polled), drawing/upload/test image → predict, stages,
// training, compare.
"use strict";
const state = {
  runs: [], run: null, model: null, details: null, blob: null, predicted: null, seq: 0,
  compareSeq: 0,
};
const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
};
const pct = (v) => (Number.isFinite(v) ? `${(v * 100).toFixed(1)}%` : "–");
const thousands = (n) => (n ?? 0).toLocaleString("en");

// fetch JSON; a 503 (every inference slot busy) is retried after a moment; errors carry the
// server's detail. A wait over half a second shows the spinner (waits.js) unless `label` is false
// (the caller shows progress).
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
        throw Object.assign(new Error(body.detail || response.statusText),
          { status: response.status });
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

// ---- runs list ----------------------------------------------------------------------------------
async function refreshRuns(label) {
  const data = await api("/api/runs", {}, 6, label);  // the background poll shows no spinner
  $("#runs-dir").textContent = `in ${data.runs_dir}/`;
  const previous = new Map(state.runs.map((r) => [r.name, r.modified]));
  state.runs = data.runs;
  const list = $("#runs");
  list.replaceChildren(...data.runs.map(runCard));
  if (!data.runs.length) {
    list.replaceChildren(el("li", { class: "empty" },
      `No runs in ${data.runs_dir}/ yet: train one with `,
      el("code", {}, `cnnzoo train --recipe lenet5-demo --out ${data.runs_dir}/demo`)));
  }
  if (!state.run && data.runs.length) {
    selectRun(data.runs.find((r) => r.has_checkpoint && !r.closed)?.name || data.runs[0].name);
  }
  fillCompareSelects();
  const current = data.runs.find((r) => r.name === state.run);
  if (current && previous.has(current.name) && previous.get(current.name) !== current.modified) {
    loadDetails();
  }
  // its first epoch has ended
  if (current && current.has_checkpoint && state.waiting) selectRun(current.name);
}

function runCard(run) {
  const epochs = run.imported ? `imported (${run.imported})` : run.epochs_planned
    ? `${run.epochs_done}/${run.epochs_planned} epochs` : `${run.epochs_done} epochs`;
  const li = el("li", { "data-run": run.name, class: run.name === state.run ? "selected" : "" },
    el("div", { class: "run-name" }, run.name,
      el("span", { class: `badge ${run.status}` }, run.status)),
    el("div", { class: "muted" },
      `${run.variant || run.model || "?"} · `
        + `${run.dataset || (run.imported ? "no data set" : "?")}`),
    el("div", {}, el("strong", { class: "acc" }, pct(run.test_top1)),
      el("span", { class: "muted" }, ` test · ${epochs}`)),
    el("div", { class: "muted small" }, run.date));
  // an import of the user's own code, served without --run-code: listed, never opened
  if (run.closed) li.append(el("div", { class: "closed small" }, run.closed));
  li.tabIndex = 0;
  li.addEventListener("click", () => selectRun(run.name));
  li.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); selectRun(run.name); }
  });
  return li;
}

async function selectRun(name) {
  state.run = name;
  state.seq++;  // answers still on their way for the previous run are dropped
  state.model = null;
  document.querySelectorAll("#runs li")
    .forEach((li) => li.classList.toggle("selected", li.dataset.run === name));
  const run = state.runs.find((r) => r.name === name) || {};
  $("#run-title").textContent =
    `${name}: ${run.variant || run.model || "?"} on ${run.dataset || "?"}`;
  showError("");
  clearResults();
  resetUnits();  // units.js
  loadDetails();
  state.waiting = !run.has_checkpoint && !run.closed;
  if (run.closed) { showError(`${name} is not opened: ${run.closed}`); return; }
  if (state.waiting) {
    showError(`${name} has no checkpoint yet: it is written when the first epoch ends ` +
      "(this page will notice). Its curves grow in the Training tab meanwhile.");
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

// ---- input: drawing, upload, drop, random test image --------------------------------------------
const canvas = $("#canvas");
const pen = canvas.getContext("2d");
function clearCanvas() {
  pen.fillStyle = "#000";
  pen.fillRect(0, 0, canvas.width, canvas.height);
}
function setupDrawing() {
  clearCanvas();
  let drawing = false, last = null;
  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width,
      (e.clientY - r.top) * canvas.height / r.height];
  };
  canvas.addEventListener("pointerdown", (e) => {
    drawing = true; last = at(e); canvas.setPointerCapture(e.pointerId); stroke(last, last);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!drawing) return; const p = at(e); stroke(last, p); last = p;
  });
  const end = () => {
    if (!drawing) return; drawing = false; canvas.toBlob((b) => predict(b), "image/png");
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointerleave", end);
  canvas.addEventListener("dragover", (e) => e.preventDefault());
  canvas.addEventListener("drop", (e) => {
    e.preventDefault(); if (e.dataTransfer.files[0]) useFile(e.dataTransfer.files[0]);
  });
  $("#clear").addEventListener("click", () => {
    clearCanvas(); clearResults(); state.blob = null;
  });
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
  img.onload = () => {
    clearCanvas(); pen.imageSmoothingEnabled = false;
    pen.drawImage(img, 0, 0, canvas.width, canvas.height);
  };
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

// ---- prediction ---------------------------------------------------------------------------------
function clearResults() {
  clearTrust();
  clearOcclusion();
  for (const id of ["#topk", "#stages", "#neighbours"]) $(id).replaceChildren();
  for (const id of ["#seen", "#cam"]) {
    const c = $(id); c.getContext("2d").clearRect(0, 0, c.width, c.height);
  }
  $("#prepared").textContent = $("#truth").textContent = $("#seen-shape").textContent = "";
  $("#cam-caption").textContent = "Grad-CAM: where it looked";
  $("#neighbours-caption").textContent = "in the network's penultimate features; " +
    "✗ and an orange frame: another class than predicted";
  $("#softmax tbody").replaceChildren();
  $("#softmax tfoot").replaceChildren();
}

async function predict(blob, caption = "your drawing") {
  if (!state.run || !blob) return;
  state.blob = blob;
  state.caption = caption;
  const seq = ++state.seq, run = state.run;
  const form = () => {
    const f = new FormData(); f.append("image", blob, blob.name || "image.png"); return f;
  };
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
    el("span", { class: "bar" },
      el("span", { style: `width:${(p.probability * 100).toFixed(1)}%` })),
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
  clearTrust();
  clearOcclusion();
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
    $("#cam-caption").textContent =
      `Grad-CAM for ${where} is zero everywhere: no map of this layer weighs ` +
      "positively toward this class for this image (the ReLU of the weighted sum leaves " +
      "nothing), so nothing is drawn over the input.";
    return;
  }
  const overlay = document.createElement("canvas");
  overlay.width = c.width; overlay.height = c.height;
  paintValues(overlay, decodeBytes(cam.data), 0, cam.height, cam.width, "inferno", 150);
  ctx.drawImage(overlay, 0, 0);
  $("#cam-caption").textContent = `Grad-CAM for ${where}, upsampled to the input and scaled ` +
    "to its maximum (inferno: 0 → max)";
}

function renderNeighbours(n) {
  $("#neighbours-caption").textContent = `${n.space}, among ${thousands(n.searched)} training ` +
    "images; ✗ and an orange frame: another class than predicted; d: Euclidean distance";
  $("#neighbours").replaceChildren(...n.images.map((item) => el("figure",
    { class: item.class === state.predicted ? "" : "other" },
    el("img", { src: `data:image/png;base64,${item.png}`, alt: item.class }),
    el("figcaption", {}, `${item.class === state.predicted ? "✓" : "✗"} ${item.class}`, el("br"),
      el("span", { class: "muted" }, `d = ${item.distance.toFixed(2)}`)))));
}

// ---- stages (CNN-Explainer style) ---------------------------------------------------------------
function renderStages(result) {
  const cards = [];
  for (const stage of result.stages) {
    const bytes = decodeBytes(stage.data);
    const card = el("div", { class: `stage ${stage.kind}`, "data-stage": stage.name });
    const what = stage.layer
      ? `${stage.layer.type} ${stage.layer.kernel}×${stage.layer.kernel}` : stage.module;
    const some = stage.shown < stage.count ? ` · first ${stage.shown} of ${stage.count}` : "";
    card.append(el("h4", {}, stage.name,
      el("span", { class: "muted" }, ` ${stage.shape.join("×")}`)),
      el("div", { class: "muted small" }, what + some));
    const grid = el("div", { class: "maps" });
    if (stage.kind === "maps") {
      const size = stage.shown > 16 ? 30 : stage.shown > 8 ? 40 : 52;
      const columns = stage.shown <= 8 ? 2 : Math.ceil(Math.sqrt(stage.shown));
      grid.style.gridTemplateColumns = `repeat(${columns}, ${size}px)`;
      for (let i = 0; i < stage.shown; i++) {
        const c = el("canvas", { class: "map", width: size, height: size,
          title: `${stage.name} map ${i}`, tabindex: "0", role: "button" });
        paintValues(c, bytes, i * stage.height * stage.width, stage.height, stage.width, "viridis");
        c.addEventListener("click", () => zoom(stage, bytes, i));
        c.addEventListener("keydown", (e) => {
          if (e.key === "Enter" || e.key === " ") { e.preventDefault(); zoom(stage, bytes, i); }
        });
        grid.append(c);
      }
    } else {
      const side = Math.ceil(Math.sqrt(stage.shown));
      const padded = new Uint8Array(side * side);
      padded.set(bytes.subarray(0, stage.shown));
      const c = el("canvas", { class: "map units", width: 120, height: 120,
        title: `${stage.name}: ${stage.count} units, row by row`, tabindex: "0", role: "button" });
      paintValues(c, padded, 0, side, side, "viridis");
      c.addEventListener("click", () => zoom(stage, padded, 0, side));
      c.addEventListener("keydown", (e) => {
        if (e.key !== "Enter" && e.key !== " ") return;
        e.preventDefault(); zoom(stage, padded, 0, side);
      });
      grid.append(c);
    }
    card.append(grid);
    cards.push(card, el("div", { class: "arrow" }, "→"));
  }
  const out = el("div", { class: "stage output" }, el("h4", {}, "output"),
    el("div", { class: "muted small" }, "softmax"),
    el("ol", {}, ...result.top_k.slice(0, 5)
      .map((p) => el("li", {}, `${p.class} ${pct(p.probability)}`))));
  // a compiled program (TorchScript, .pt2): no stages to draw, and one line saying why
  const note = result.stages_note
    ? [el("p", { class: "muted small", "data-role": "stages-note" }, result.stages_note)] : [];
  $("#stages").replaceChildren(...note, ...cards, out);
}

// ---- tabs and start -----------------------------------------------------------------------------
function setupTabs() {
  document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => {
    document.querySelectorAll("#tabs button")
      .forEach((x) => x.classList.toggle("active", x === b));
    document.querySelectorAll(".tab")
      .forEach((t) => t.classList.toggle("active", t.id === b.dataset.tab));
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
setupTrust();
setupOcclusion();
refreshRuns().catch((error) => showError(error.message));
setInterval(() => refreshRuns(false).catch(() => {}), 3000);
