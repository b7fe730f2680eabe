// Explain a position: click a map in the zoom dialog (or move with the arrow keys and press Enter)
// and the server computes that output with the real model, step by step (POST
// /api/runs/RUN/position); the page shows the receptive field on the input, the kernels, and the
// arithmetic down to the value shown.
"use strict";
const num = (v, digits = 4) => (v === null || v === undefined ? "pad" : Number(v).toFixed(digits));

function setupPositions() {
  const map = $("#zoom-map");
  map.tabIndex = 0;
  map.addEventListener("click", (e) => {
    const r = map.getBoundingClientRect(), z = state.zoomed;
    if (!z) return;
    z.y = Math.min(z.h - 1, Math.floor((e.clientY - r.top) / r.height * z.h));
    z.x = Math.min(z.w - 1, Math.floor((e.clientX - r.left) / r.width * z.w));
    explainPosition();
  });
  map.addEventListener("keydown", (e) => {
    const z = state.zoomed;
    const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    if (!z) return;
    if (moves[e.key]) {
      e.preventDefault();
      z.y = Math.max(0, Math.min(z.h - 1, (z.y ?? 0) + moves[e.key][0]));
      z.x = Math.max(0, Math.min(z.w - 1, (z.x ?? 0) + moves[e.key][1]));
      markPosition();
    } else if (e.key === "Enter") { z.y ??= 0; z.x ??= 0; explainPosition(); }
  });
}

function markPosition() {
  const z = state.zoomed, c = $("#zoom-map"), ctx = c.getContext("2d");
  paintValues(c, z.bytes, z.offset, z.h, z.w, "viridis");
  if (z.y === undefined) return;
  const cw = c.width / z.w, ch = c.height / z.h;
  ctx.lineWidth = 3; ctx.strokeStyle = "#fff"; ctx.strokeRect(z.x * cw, z.y * ch, cw, ch);
  ctx.lineWidth = 1; ctx.strokeStyle = "#000";
  ctx.strokeRect(z.x * cw + 1.5, z.y * ch + 1.5, cw - 3, ch - 3);
}

async function explainPosition() {
  const z = state.zoomed;
  markPosition();
  const units = z.stage.kind !== "maps";
  const channel = units ? z.y * z.w + z.x : z.index;
  if (units && channel >= z.stage.count) return;
  const query = new URLSearchParams({
    stage: z.stage.name, channel, y: units ? 0 : z.y, x: units ? 0 : z.x,
    prepare: $("#prepare").checked,
  });
  const form = new FormData();
  form.append("image", state.blob, state.blob.name || "image.png");
  const box = $("#position");
  box.replaceChildren(el("p", { class: "muted" }, "computing…"));
  try {
    const answer = await api(`/api/runs/${encodeURIComponent(state.run)}/position?${query}`,
      { method: "POST", body: form });
    state.position = answer;
    box.replaceChildren(...renderPosition(answer));
    drawWindowOnInput(answer.image_window);
    startConvolution(answer.animation, answer.position);
  } catch (error) { box.replaceChildren(el("p", { class: "error" }, error.message)); }
}

function renderPosition(a) {
  const p = a.position;
  const where = a.shape.length === 3
    ? `map ${p.channel}, row ${p.y}, column ${p.x}` : `unit ${p.channel}`;
  const parts = [el("h4", {}, `${a.stage} / ${a.module}: ${where}`)];
  if (a.image_window) {
    const w = a.image_window;
    parts.push(el("p", { class: "small" },
      `It sees a ${w.size}×${w.size} window of the input (rows ${w.top}…${w.bottom}, ` +
      `columns ${w.left}…${w.right}; the inspector's receptive field ${w.size}, ` +
      `step ${w.jump} px between neighbouring positions` +
      `${w.top < 0 || w.left < 0 ? "; part of it lies in the padding" : ""}).`));
  }
  for (const step of a.steps) parts.push(...renderStep(step));
  parts.push(el("p", { class: "formula result" }, "value shown = ",
    el("strong", { "data-role": "value" }, num(a.value, 6))));
  return parts;
}

function renderStep(s) {
  const head = (text) => el("h5", {}, `${text} (${s.module || s.type || s.op})`);
  if (s.op === "conv") return convArithmetic(s, head);
  if (s.op === "max" || s.op === "mean") {
    return [head(s.op === "max" ? "max pooling" : "average pooling"),
      valueGrid(s.window, "pool-window"),
      el("p", { class: "formula" },
        `${s.op} of the ${s.window.length}×${s.window.length} window = `,
        el("span", { "data-role": "computed" }, num(s.computed, 6)),
        `  (model: ${num(s.model_value, 6)})`)];
  }
  if (s.op === "linear") {
    const terms = s.terms.map((t) => `${num(t.x)}×${num(t.w)}`).join(" + ");
    return [head("fully connected"), el("p", { class: "formula small" },
      `Σ over ${s.inputs} inputs of x×w (largest: ${terms} + …) = `,
      el("span", { "data-role": "channel-sum" }, num(s.channel_sum, 6)),
      " ; + bias ", el("span", { "data-role": "bias" }, num(s.bias, 6)),
      " = ", el("span", { "data-role": "computed" }, num(s.computed, 6)),
      `  (model: ${num(s.model_value, 6)})`)];
  }
  return [head(s.op === "relu" ? "ReLU" : s.type || s.op),
    el("p", { class: "formula" }, pointwiseText(s))];
}

function pointwiseText(s) {
  if (s.op === "relu") return `max(0, ${num(s.input, 6)}) = ${num(s.computed, 6)}`;
  if (s.op === "batchnorm") {
    return `(${num(s.input)} − ${num(s.mean)}) / √(${num(s.var)} + ${s.eps}) × ${num(s.gamma)} ` +
      `+ ${num(s.beta)} = ${num(s.computed, 6)}`;
  }
  if (s.op === "lrn") {
    return `${num(s.input)} / (${s.k} + ${s.alpha} × ${num(s.squares)})^${s.beta} = ` +
      `${num(s.computed, 6)}  (Σ a² over channels ${s.channels[0]}…${s.channels[1]})`;
  }
  if (s.op === "inception") {
    return `${s.words}; this channel comes from ${s.from.branch} (its map ${s.from.channel}) = ` +
      num(s.value, 6);
  }
  if (s.op === "residual") {
    return `${s.words}: max(0, ${num(s.main)} + ${num(s.shortcut)}) = max(0, ${num(s.sum)}) = ` +
      num(s.value, 6);
  }
  if (s.op === "dense" || s.op === "block") return `${s.words}: value ${num(s.value, 6)}`;
  return `${s.type}(${num(s.input, 6)}) = ${num(s.model_value, 6)}`;
}

function convArithmetic(s, head) {
  const channels = s.channels.map((c) => el("div", { class: "channel" },
    el("div", { class: "small muted" }, `input channel ${c.channel}`),
    el("div", { class: "pair" }, valueGrid(c.window, "window"), el("span", { class: "times" }, "×"),
      valueGrid(c.kernel, "kernel")),
    el("div", { class: "small" }, "Σ = ",
      el("span", { "data-role": "channel-term" }, num(c.sum, 6)))));
  const total = s.channels_total;
  const more = total > s.channels.length
    ? ` (first ${s.channels.length} of ${total} shown; the sum covers all)` : "";
  const card = s.card;
  return [head(`convolution ${card.kernel}×${card.kernel}, stride ${card.stride}, ` +
      `padding ${card.padding}`),
    el("p", { class: "small" }, "window × kernel, element by element, summed over " +
      `${total} input channel${total > 1 ? "s" : ""}${more}:`),
    el("div", { class: "channels" }, ...channels),
    el("p", { class: "formula" }, "Σ channels = ",
      el("span", { "data-role": "channel-sum" }, num(s.channel_sum, 6)),
      "  + bias ", el("span", { "data-role": "bias" }, num(s.bias, 6)),
      "  = ", el("span", { "data-role": "computed" }, num(s.computed, 6)),
      el("span", { class: "muted" }, `  (model: ${num(s.model_value, 6)})`)),
    el("p", { class: "formula small" }, `output size: (W − K + 2P) / S + 1 = ${s.card.formula}`)];
}

// A small table of numbers, coloured by sign and size, so a window and a kernel can be read.
function valueGrid(rows, role) {
  const flat = rows.flat().filter((v) => v !== null);
  const top = Math.max(...flat.map(Math.abs), 1e-12);
  const table = el("table", { class: `grid ${role}`, "data-role": role });
  for (const row of rows) {
    table.append(el("tr", {}, ...row.map((v) => {
      const cell = el("td", { class: v === null || v === 0 ? "pad" : "" },
        v === null ? "·" : Number(v).toFixed(2));
      if (v !== null) {
        const alpha = (Math.abs(v) / top * 0.45).toFixed(2);
        cell.style.background = `rgba(${v >= 0 ? "0,71,171" : "190,110,0"},${alpha})`;
      }
      return cell;
    })));
  }
  return table;
}

function drawWindowOnInput(w) {
  const c = $("#zoom-input"), ctx = c.getContext("2d"), img = state.inputImage;
  if (!img) return;
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(img, 0, 0, c.width, c.height);
  if (!w) {
    $("#zoom-input-caption").textContent =
      "input as the model sees it (no spatial window: a fully connected stage)";
    return;
  }
  const sx = c.width / img.width, sy = c.height / img.height;
  ctx.lineWidth = 2; ctx.strokeStyle = "#fde725"; ctx.setLineDash([4, 3]);
  ctx.strokeRect(w.left * sx, w.top * sy, w.size * sx, w.size * sy);
  ctx.setLineDash([]);
  $("#zoom-input-caption").textContent = "input as the model sees it; dashed: the " +
    `${w.size}×${w.size} receptive field of the chosen position`;
}

// The zoom dialog: one map enlarged, with its layer explained (kernel, stride, padding).
function zoom(stage, bytes, index, side) {
  const h = side || stage.height, w = side || stage.width;
  state.zoomed = { stage, bytes, index, h, w, offset: index * h * w };
  paintValues($("#zoom-map"), bytes, index * h * w, h, w, "viridis");
  $("#position").replaceChildren(el("p", { class: "muted" }, "Click a position in the map " +
    "(or focus it, move with the arrow keys, press Enter) to see how the model computed it."));
  startConvolution(null);
  drawWindowOnInput(null);
  const kind = stage.kind === "maps"
    ? `map ${index} of ${stage.count} (numbered from 0)` : `${stage.count} units, row by row`;
  $("#zoom-title").textContent = `${stage.name} (${stage.module}): ${kind}`;
  $("#zoom-range").textContent =
    `values ${stage.min[index].toFixed(3)} (dark) … ${stage.max[index].toFixed(3)} (yellow)`;
  $("#zoom-layer").replaceChildren(...layerExplanation(stage, index));
  $("#zoom").showModal();
  $("#zoom-map").focus();
}

function layerExplanation(stage, index) {
  const L = stage.layer;
  if (!L) {
    return [el("p", { class: "muted" }, stage.kind === "units"
      ? "A fully connected stage: each unit weighs every value of the stage before it."
      : "A block of several layers (its output is shown).")];
  }
  const parts = [el("p", {}, `${L.type}: kernel ${L.kernel}×${L.kernel}, stride ${L.stride}, ` +
      `padding ${L.padding}` + (L.dilation > 1 ? `, dilation ${L.dilation}` : "")),
    el("p", { class: "formula equation" }, "output width = (W − K + 2P) / S + 1"),
    el("p", { class: "formula equation" }, L.formula),
    el("p", { class: "muted small" }, `W = ${L.in_width} input width, K = ${L.kernel} kernel, ` +
      `P = ${L.padding} padding, S = ${L.stride} stride` +
      (L.ceil_mode ? "; this pool rounds up" : "; rounded down"))];
  if (L.kernels && index < L.kernels.shape[0]) {
    const [, inputs, k] = L.kernels.shape;
    const bytes = decodeBytes(L.kernels.data);
    const row = el("div", { class: "kernels" });
    for (let j = 0; j < inputs; j++) {
      const c = el("canvas", { width: 44, height: 44, title: `input channel ${j + 1}` });
      paintValues(c, bytes, (index * inputs + j) * k * k, k, k, "signed");
      row.append(c);
    }
    const some = L.weight_shape[1] > inputs ? `, first ${inputs} of ${L.weight_shape[1]}` : "";
    parts.push(el("h4", {}, `its kernels for this map (one per input channel${some})`),
      row, el("p", { class: "muted small" }, `weights ${L.weight_shape.join("×")}; red +, ` +
        `white 0, blue −, scaled by max |w| = ${L.kernels.max_abs[index].toPrecision(3)}`));
  }
  return parts;
}
