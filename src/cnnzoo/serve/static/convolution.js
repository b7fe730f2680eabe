// The sliding window, step by step: the layer's input map with its padding drawn as a grey ring,
// the kernel's window moving by the stride, and the output map filling in with the model's own
// values. Play/pause, step and speed; the clicked position is outlined in the output.
"use strict";
const conv = { data: null, step: 0, timer: null, target: null };

function setupConvolution() {
  $("#conv-play").addEventListener("click",
    () => (conv.timer ? pauseConvolution() : playConvolution()));
  $("#conv-step").addEventListener("click", () => { pauseConvolution(); stepConvolution(); });
  $("#conv-speed").addEventListener("input", () => {
    if (conv.timer) { pauseConvolution(); playConvolution(); }
  });
}

function startConvolution(data, position) {
  pauseConvolution();
  conv.data = data;
  conv.step = 0;
  conv.target = position;
  $("#convolution").hidden = !data;
  if (!data) return;
  const what = data.op === "conv"
    ? `input channel ${data.input_channel} and its kernel` : `map ${data.input_channel}`;
  const op = data.op === "conv" ? "convolution" : `${data.op} pooling`;
  $("#conv-caption").textContent = `${op}: ${what}; ` +
    `K = ${data.kernel_size}, S = ${data.stride}, P = ${data.padding} (grey ring: padding). ` +
    "Output values are the layer's own (summed over all input channels, plus bias). " +
    "Colours: cividis, each map by its own range.";
  drawConvolution();
}

function playConvolution() {
  const speed = Number($("#conv-speed").value);
  conv.timer = setInterval(stepConvolution, 1000 / speed);
  $("#conv-play").textContent = "Pause";
}

function pauseConvolution() {
  clearInterval(conv.timer);
  conv.timer = null;
  $("#conv-play").textContent = "Play";
}

function stepConvolution() {
  const d = conv.data;
  if (!d) return;
  conv.step = (conv.step + 1) % (d.output.length * d.output[0].length);
  drawConvolution();
}

function cividis(v, low, high) {
  const t = high > low ? (v - low) / (high - low) : 0.5;
  const i = Math.max(0, Math.min(255, Math.round(t * 255)));
  return `rgb(${LUTS.cividis[i * 3]},${LUTS.cividis[i * 3 + 1]},${LUTS.cividis[i * 3 + 2]})`;
}

function drawGrid(ctx, grid, left, top, cell, pad) {
  const flat = grid.flat(), low = Math.min(...flat), high = Math.max(...flat);
  const h = grid.length + 2 * pad, w = grid[0].length + 2 * pad;
  const gap = cell > 4 ? 1 : 0;
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      const inside = r >= pad && c >= pad && r < h - pad && c < w - pad;
      ctx.fillStyle = inside ? cividis(grid[r - pad][c - pad], low, high) : "#c8c8c8";
      ctx.fillRect(left + c * cell, top + r * cell, cell - gap, cell - gap);
    }
  }
}

function drawConvolution() {
  const d = conv.data, c = $("#conv-canvas"), ctx = c.getContext("2d");
  const pad = d.padding || 0, span = (d.dilation || 1) * (d.kernel_size - 1) + 1;
  const inH = d.input.length + 2 * pad, outH = d.output.length, outW = d.output[0].length;
  const cell = Math.max(2, Math.floor(Math.min(300 / inH, 300 / (d.input[0].length + 2 * pad))));
  const outCell = Math.max(2, Math.floor(Math.min(260 / outH, 260 / outW)));
  const outLeft = (d.input[0].length + 2 * pad) * cell + 60;
  ctx.clearRect(0, 0, c.width, c.height);
  drawGrid(ctx, d.input, 0, 0, cell, pad);
  const r = Math.floor(conv.step / outW), q = conv.step % outW;
  // the window: magenta on cividis reads for every eye
  ctx.lineWidth = 2; ctx.strokeStyle = "#ff2d7f";
  ctx.strokeRect(q * d.stride * cell, r * d.stride * cell, span * cell, span * cell);
  ctx.fillStyle = "#c8c8c8";
  ctx.fillRect(outLeft, 0, outW * outCell, outH * outCell);
  const done = d.output.map((row, i) => row.map((v, j) => (i * outW + j <= conv.step ? v : null)));
  const flat = d.output.flat(), low = Math.min(...flat), high = Math.max(...flat);
  done.forEach((row, i) => row.forEach((v, j) => {
    if (v === null) return;
    ctx.fillStyle = cividis(v, low, high);
    ctx.fillRect(outLeft + j * outCell, i * outCell, outCell, outCell);
  }));
  ctx.strokeRect(outLeft + q * outCell, r * outCell, outCell, outCell);
  if (conv.target) {
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 1;
    ctx.strokeRect(outLeft + conv.target.x * outCell + 0.5, conv.target.y * outCell + 0.5,
      outCell - 1, outCell - 1);
  }
  ctx.fillStyle = "#1d2330"; ctx.font = FONT; ctx.textAlign = "center";
  ctx.fillText("→", outLeft - 30, Math.min(inH * cell, outH * outCell) / 2);
  $("#conv-status").textContent =
    `step ${conv.step + 1} of ${outH * outW}: window at input row ${r * d.stride - pad}, ` +
    `column ${q * d.stride - pad} (moves ${d.stride} px per step) → ` +
    `output (${r}, ${q}) = ${d.output[r][q].toFixed(4)}`;
  $("#conv-status").dataset.step = String(conv.step);
}
