// How the run learned: a slider over the epochs `cnnzoo train --snapshots` kept
// (GET /api/runs/RUN/snapshots), showing that epoch's first-layer kernels and a probe image's
// feature maps (GET /api/runs/RUN/snapshots/EPOCH), as `cnnzoo show timeline` draws them, and
// marking the epoch on the accuracy chart. A run without snapshots shows one line on how to get them.
"use strict";

const timeline = { run: null, modified: null, epochs: [], cache: new Map(), probe: 0,
  base: null, frame: null, shown: null };
const KERNEL_PX = 9, MAP_PX = 56;  // screen pixels per kernel weight; side of a feature map

async function renderTimeline(d) {
  if (d.name !== timeline.run || d.modified !== timeline.modified) {
    const name = d.name;
    Object.assign(timeline, { run: name, modified: d.modified, epochs: [], cache: new Map(),
      shown: null });
    $("#timeline").replaceChildren();
    try {
      const listed = await api(`/api/runs/${encodeURIComponent(name)}/snapshots`);
      if (name !== state.run || name !== timeline.run) return;
      timeline.epochs = listed.epochs;
      buildTimeline(listed);
    } catch (error) {
      $("#timeline").replaceChildren(el("p", { class: "muted" }, error.message));
      return;
    }
  }
  markEpoch();
}

function buildTimeline(listed) {
  if (!listed.epochs.length) {
    $("#timeline").replaceChildren(el("p", { class: "muted", "data-role": "timeline-hint" },
      listed.hint));
    return;
  }
  const last = listed.epochs.length - 1;
  const slider = el("input", { type: "range", id: "timeline-epoch", min: 0, max: last, step: 1,
    value: last, "aria-label": "epoch" });
  slider.addEventListener("input", () => showEpoch(timeline.epochs[+slider.value]));
  $("#timeline").replaceChildren(
    el("div", { class: "timeline-controls" },
      el("label", {}, `epoch ${listed.epochs[0]} `, slider, ` ${listed.epochs[last]}`),
      el("strong", { id: "timeline-label" })),
    el("div", { class: "timeline-body" },
      el("div", { class: "timeline-kernels" },
        el("h4", { id: "timeline-kernels-title" }, "first-layer kernels"),
        el("div", { id: "timeline-kernels", class: "kernels" }),
        el("p", { class: "muted small" }, "Each kernel scaled by its own largest |w|: red " +
          "positive, blue negative, white zero (RGB kernels: each to its own range).")),
      el("div", {}, el("h4", {}, "probe image"), el("div", { id: "timeline-probes" })),
      el("div", { id: "timeline-maps" })));
  showEpoch(listed.epochs[last]);
}

async function epochData(epoch) {
  if (!timeline.cache.has(epoch)) {
    const run = encodeURIComponent(timeline.run);
    timeline.cache.set(epoch, api(`/api/runs/${run}/snapshots/${epoch}`)
      .catch((error) => { timeline.cache.delete(epoch); throw error; }));
  }
  return timeline.cache.get(epoch);
}

async function showEpoch(epoch) {
  const run = timeline.run;
  let snap;
  try { snap = await epochData(epoch); } catch (error) {
    $("#timeline-label").textContent = error.message;
    return;
  }
  const slider = $("#timeline-epoch");
  if (run !== timeline.run || !slider || timeline.epochs[+slider.value] !== epoch) return;
  timeline.shown = snap;
  const accuracy = snap.test_top1 == null ? "" : ` · test accuracy ${pct(snap.test_top1)}`;
  $("#timeline-label").textContent = `epoch ${snap.epoch}` +
    (snap.epoch === 0 ? " (as initialised)" : "") + accuracy +
    ` · kernels moved ${(snap.kernel_change * 100).toFixed(1)}% from epoch ${timeline.epochs[0]}`;
  $("#timeline").dataset.epoch = String(snap.epoch);
  const [out, inputs, kh, kw] = snap.kernels.shape;
  $("#timeline-kernels-title").textContent =
    `first-layer kernels: ${snap.layer}, ${out}×${inputs}×${kh}×${kw}`;
  $("#timeline-kernels").replaceChildren(...kernelTiles(snap.kernels));
  renderProbes(snap);
  renderSnapshotMaps(snap);
  markEpoch();
}

function kernelTiles(packed) {
  const [out, inputs, kh, kw] = packed.shape, values = floatValues(packed.data);
  const size = kh * kw, tiles = [];
  for (let o = 0; o < out; o++) {
    const kernel = values.subarray(o * inputs * size, (o + 1) * inputs * size);
    const c = el("canvas", { width: kw, height: kh, title: `kernel ${o}` });
    c.style.width = `${kw * KERNEL_PX}px`; c.style.height = `${kh * KERNEL_PX}px`;
    if (inputs === 3) paintRgbKernel(c, kernel, kh, kw);
    else {
      let most = 0;
      for (let i = 0; i < size; i++) most = Math.max(most, Math.abs(kernel[i]));
      const bytes = new Uint8Array(size);
      for (let i = 0; i < size; i++) bytes[i] = Math.round((kernel[i] / (most || 1) + 1) * 127.5);
      paintValues(c, bytes, 0, kh, kw, "signed");  // the first input channel
    }
    tiles.push(c);
  }
  return tiles;
}

function paintRgbKernel(canvas, kernel, kh, kw) {
  let low = Infinity, high = -Infinity;
  for (const v of kernel) { low = Math.min(low, v); high = Math.max(high, v); }
  const span = high - low || 1, size = kh * kw;
  const img = canvas.getContext("2d").createImageData(kw, kh);
  for (let i = 0; i < size; i++) {
    for (let ch = 0; ch < 3; ch++) img.data[i * 4 + ch] = (kernel[ch * size + i] - low) / span * 255;
    img.data[i * 4 + 3] = 255;
  }
  canvas.getContext("2d").putImageData(img, 0, 0);
}

function renderProbes(snap) {
  const classes = state.model?.classes || [];
  timeline.probe = Math.min(timeline.probe, snap.probe.png.length - 1);
  $("#timeline-probes").replaceChildren(...snap.probe.png.map((png, i) => {
    const name = classes[snap.probe.labels[i]] ?? snap.probe.labels[i];
    const button = el("button", { class: i === timeline.probe ? "probe chosen" : "probe",
      title: `probe image ${i}: a test image of “${name}”` },
    el("img", { src: `data:image/png;base64,${png}`, alt: `probe ${i}` }), el("span", {}, name));
    button.addEventListener("click", () => {
      timeline.probe = i;
      renderProbes(timeline.shown);
      renderSnapshotMaps(timeline.shown);
    });
    return button;
  }));
}

function renderSnapshotMaps(snap) {
  const bytes = snap.stages.map((s) => decodeBytes(s.data));
  $("#timeline-maps").replaceChildren(...snap.stages.map((stage, si) => {
    const maps = [];
    for (let m = 0; m < stage.count; m++) {
      const c = el("canvas", { width: MAP_PX, height: MAP_PX, class: "snapshot-map",
        title: `${stage.name} map ${m}` });
      const at = (timeline.probe * stage.count + m) * stage.height * stage.width;
      paintValues(c, bytes[si], at, stage.height, stage.width, "viridis");
      maps.push(c);
    }
    return el("div", { class: "timeline-stage" },
      el("h4", {}, `${stage.name} maps (${stage.height}×${stage.width}; ${stage.count} kept)`),
      el("div", { class: "timeline-grid" }, ...maps));
  }), el("p", { class: "muted small" }, "Each map scaled to its own range; viridis: low (dark) → " +
    "high (yellow)."));
}

// A red line on the accuracy chart at the shown epoch (the chart's own pixels kept beneath it).
function markEpoch() {
  const canvas = $("#acc-chart"), f = canvas.chartFrame, snap = timeline.shown;
  if (!f) return;
  const ctx = canvas.getContext("2d");
  if (timeline.frame !== f) {
    timeline.frame = f;
    timeline.base = ctx.getImageData(0, 0, canvas.width, canvas.height);
  } else ctx.putImageData(timeline.base, 0, 0);
  if (!snap || snap.run !== timeline.run || snap.run !== state.details?.name) return;
  const x = Math.max(f.x(snap.epoch), f.m.left);  // epoch 0 (as initialised): the left edge
  ctx.save();
  ctx.strokeStyle = "#c0392b"; ctx.lineWidth = 2;
  ctx.beginPath(); ctx.moveTo(x, f.m.top); ctx.lineTo(x, f.m.top + f.H); ctx.stroke();
  ctx.font = FONT; ctx.fillStyle = "#c0392b"; ctx.textBaseline = "top";
  const text = snap.epoch === 0 ? "epoch 0 (init)" : `epoch ${snap.epoch}`;
  ctx.textAlign = x > f.m.left + f.W - 90 ? "right" : "left";
  ctx.fillText(text, x + (ctx.textAlign === "left" ? 5 : -5), f.m.top + 4);
  if (snap.test_top1 != null) {
    ctx.beginPath(); ctx.arc(f.x(snap.epoch), f.y(snap.test_top1), 5, 0, 7); ctx.stroke();
  }
  ctx.restore();
}
