// Explain a position: click a map in the zoom dialog (or move with the arrow keys and press Enter) and the
// server computes that output with the real model, step by step (POST /api/runs/RUN/position); the page
// shows the receptive field on the input, the kernels, and the arithmetic down to the value shown.
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
    const z = state.zoomed, moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
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
  ctx.lineWidth = 1; ctx.strokeStyle = "#000"; ctx.strokeRect(z.x * cw + 1.5, z.y * ch + 1.5, cw - 3, ch - 3);
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
    const answer = await api(`/api/runs/${encodeURIComponent(state.run)}/position?${query}`, { method: "POST", body: form });
    state.position = answer;
    box.replaceChildren(...renderPosition(answer));
    drawWindowOnInput(answer.image_window);
    startConvolution(answer.animation, answer.position);
  } catch (error) { box.replaceChildren(el("p", { class: "error" }, error.message)); }
}

function renderPosition(a) {
  const where = a.shape.length === 3 ? `map ${a.position.channel}, row ${a.position.y}, column ${a.position.x}` : `unit ${a.position.channel}`;
  const parts = [el("h4", {}, `${a.stage} / ${a.module}: ${where}`)];
  if (a.image_window) {
    const w = a.image_window;
    parts.push(el("p", { class: "small" }, `It sees a ${w.size}×${w.size} window of the input (rows ${w.top}…${w.bottom}, ` +
      `columns ${w.left}…${w.right}; the inspector's receptive field ${w.size}, step ${w.jump} px between neighbouring positions` +
      `${w.top < 0 || w.left < 0 ? "; part of it lies in the padding" : ""}).`));
  }
  for (const step of a.steps) parts.push(...renderStep(step));
  parts.push(el("p", { class: "formula result" }, "value shown = ", el("strong", { "data-role": "value" }, num(a.value, 6))));
  return parts;
}

function renderStep(s) {
  const head = (text) => el("h5", {}, `${text} (${s.module || s.type || s.op})`);
  if (s.op === "conv") return convArithmetic(s, head);
  if (s.op === "max" || s.op === "mean") {
    return [head(s.op === "max" ? "max pooling" : "average pooling"), valueGrid(s.window, "pool-window"),
      el("p", { class: "formula" }, `${s.op} of the ${s.window.length}×${s.window.length} window = `,
        el("span", { "data-role": "computed" }, num(s.computed, 6)), `  (model: ${num(s.model_value, 6)})`)];
  }
  if (s.op === "linear") {
    const terms = s.terms.map((t) => `${num(t.x)}×${num(t.w)}`).join(" + ");
    return [head("fully connected"), el("p", { class: "formula small" }, `Σ over ${s.inputs} inputs of x×w (largest: ${terms} + …) = `,
      el("span", { "data-role": "channel-sum" }, num(s.channel_sum, 6)), " ; + bias ", el("span", { "data-role": "bias" }, num(s.bias, 6)),
      " = ", el("span", { "data-role": "computed" }, num(s.computed, 6)), `  (model: ${num(s.model_value, 6)})`)];
  }
  return [head(s.op === "relu" ? "ReLU" : s.type || s.op), el("p", { class: "formula" }, pointwiseText(s))];
}

function pointwiseText(s) {
  if (s.op === "relu") return `max(0, ${num(s.input, 6)}) = ${num(s.computed, 6)}`;
  if (s.op === "batchnorm") return `(${num(s.input)} − ${num(s.mean)}) / √(${num(s.var)} + ${s.eps}) × ${num(s.gamma)} + ${num(s.beta)} = ${num(s.computed, 6)}`;
  if (s.op === "lrn") return `${num(s.input)} / (${s.k} + ${s.alpha} × ${num(s.squares)})^${s.beta} = ${num(s.computed, 6)}  (Σ a² over channels ${s.channels[0]}…${s.channels[1]})`;
  if (s.op === "inception") return `${s.words}; this channel comes from ${s.from.branch} (its map ${s.from.channel}) = ${num(s.value, 6)}`;
  if (s.op === "residual") return `${s.words}: max(0, ${num(s.main)} + ${num(s.shortcut)}) = max(0, ${num(s.sum)}) = ${num(s.value, 6)}`;
  if (s.op === "dense" || s.op === "block") return `${s.words}: value ${num(s.value, 6)}`;
  return `${s.type}(${num(s.input, 6)}) = ${num(s.model_value, 6)}`;
}

function convArithmetic(s, head) {
  const channels = s.channels.map((c) => el("div", { class: "channel" }, el("div", { class: "small muted" }, `input channel ${c.channel}`),
    el("div", { class: "pair" }, valueGrid(c.window, "window"), el("span", { class: "times" }, "×"), valueGrid(c.kernel, "kernel")),
    el("div", { class: "small" }, "Σ = ", el("span", { "data-role": "channel-term" }, num(c.sum, 6)))));
  const more = s.channels_total > s.channels.length ? ` (first ${s.channels.length} of ${s.channels_total} shown; the sum covers all)` : "";
  return [head(`convolution ${s.card.kernel}×${s.card.kernel}, stride ${s.card.stride}, padding ${s.card.padding}`),
    el("p", { class: "small" }, `window × kernel, element by element, summed over ${s.channels_total} input channel${s.channels_total > 1 ? "s" : ""}${more}:`),
    el("div", { class: "channels" }, ...channels),
    el("p", { class: "formula" }, "Σ channels = ", el("span", { "data-role": "channel-sum" }, num(s.channel_sum, 6)),
      "  + bias ", el("span", { "data-role": "bias" }, num(s.bias, 6)), "  = ", el("span", { "data-role": "computed" }, num(s.computed, 6)),
      el("span", { class: "muted" }, `  (model: ${num(s.model_value, 6)})`)),
    el("p", { class: "formula small" }, `output size: (W − K + 2P) / S + 1 = ${s.card.formula}`)];
}

// A small table of numbers, coloured by sign and size (cividis), so a window and a kernel can be read.
function valueGrid(rows, role) {
  const flat = rows.flat().filter((v) => v !== null), top = Math.max(...flat.map(Math.abs), 1e-12);
  const table = el("table", { class: `grid ${role}`, "data-role": role });
  for (const row of rows) {
    table.append(el("tr", {}, ...row.map((v) => {
      const cell = el("td", { class: v === null || v === 0 ? "pad" : "" }, v === null ? "·" : Number(v).toFixed(2));
      if (v !== null) cell.style.background = `rgba(${v >= 0 ? "0,71,171" : "190,110,0"},${(Math.abs(v) / top * 0.45).toFixed(2)})`;
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
  if (!w) { $("#zoom-input-caption").textContent = "input as the model sees it (no spatial window: a fully connected stage)"; return; }
  const sx = c.width / img.width, sy = c.height / img.height;
  ctx.lineWidth = 2; ctx.strokeStyle = "#fde725"; ctx.setLineDash([4, 3]);
  ctx.strokeRect(w.left * sx, w.top * sy, w.size * sx, w.size * sy);
  ctx.setLineDash([]);
  $("#zoom-input-caption").textContent = `input as the model sees it; dashed: the ${w.size}×${w.size} receptive field of the chosen position`;
}
