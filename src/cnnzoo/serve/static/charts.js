// Small, labelled charts on <canvas>: line charts (curves per epoch) and grouped bar charts
// (per class).
"use strict";
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];
const FONT = "12px system-ui, sans-serif";

function niceTicks(low, high, count = 5) {
  const span = high - low || 1;
  const step0 = span / count;
  const mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count) || step0;
  const ticks = [];
  for (let v = Math.ceil(low / step) * step; v <= high + 1e-9; v += step) {
    ticks.push(+v.toFixed(10));
  }
  return ticks;
}

function frame(canvas, opts, xRange, yRange) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const m = { left: 58, right: 14, top: 28, bottom: opts.bottom || 44 };
  const W = canvas.width - m.left - m.right, H = canvas.height - m.top - m.bottom;
  const x = (v) => m.left + ((v - xRange[0]) / (xRange[1] - xRange[0] || 1)) * W;
  const y = (v) => m.top + H - ((v - yRange[0]) / (yRange[1] - yRange[0] || 1)) * H;
  ctx.font = FONT;
  ctx.strokeStyle = "#ddd";
  ctx.fillStyle = "#444";
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  const ticks = niceTicks(yRange[0], yRange[1]);
  const step = ticks.length > 1 ? ticks[1] - ticks[0] : 1;
  // as many decimals as the step has: 2.5% steps read 52.5%
  const scaled = opts.percent ? step * 100 : step;
  const digits = [0, 1, 2, 3]
    .find((d) => Math.abs(scaled * 10 ** d - Math.round(scaled * 10 ** d)) < 1e-6) ?? 3;
  for (const t of ticks) {
    ctx.beginPath(); ctx.moveTo(m.left, y(t)); ctx.lineTo(m.left + W, y(t)); ctx.stroke();
    const label = opts.percent ? `${(t * 100).toFixed(digits)}%` : String(+t.toFixed(digits));
    ctx.fillText(label, m.left - 6, y(t));
  }
  ctx.strokeStyle = "#888";
  ctx.strokeRect(m.left, m.top, W, H);
  ctx.save();
  ctx.translate(14, m.top + H / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.fillText(opts.yLabel || "", 0, 0);
  ctx.restore();
  ctx.textAlign = "center";
  ctx.fillText(opts.xLabel || "", m.left + W / 2, canvas.height - 10);
  return { ctx, m, W, H, x, y };
}

function legend(ctx, items, left, top) {
  ctx.font = FONT;
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  let at = left;
  for (const it of items) {
    ctx.fillStyle = it.colour;
    ctx.fillRect(at, top - 5, 14, it.dashed ? 3 : 10);
    ctx.fillStyle = "#222";
    ctx.fillText(it.label, at + 18, top);
    at += 26 + ctx.measureText(it.label).width;
  }
}

// series: [{label, colour, dashed, points: [[x, y], ...]}]
function lineChart(canvas, series, opts = {}) {
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter((v) => Number.isFinite(v));
  const ctx = canvas.getContext("2d");
  canvas.chartFrame = null;  // where epochs and values fall, for marks drawn later (timeline.js)
  if (!ys.length) {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.font = FONT; ctx.fillStyle = "#666"; ctx.textAlign = "center";
    ctx.fillText("no finished epoch yet", canvas.width / 2, canvas.height / 2);
    return;
  }
  const xMax = Math.max(...xs, 2);
  let yLow = opts.yMin ?? Math.min(...ys), yHigh = opts.yMax ?? Math.max(...ys);
  if (opts.yMin === undefined) yLow -= (yHigh - yLow) * 0.05 || 0.05;
  if (opts.yMax === undefined) yHigh += (yHigh - yLow) * 0.05 || 0.05;
  const f = frame(canvas, opts, [1, xMax], [yLow, yHigh]);
  f.ctx.fillStyle = "#444"; f.ctx.textAlign = "center"; f.ctx.textBaseline = "top";
  const step = Math.max(1, Math.ceil(xMax / 10));
  for (let e = 1; e <= xMax; e += step) f.ctx.fillText(String(e), f.x(e), f.m.top + f.H + 6);
  for (const s of series) {
    f.ctx.strokeStyle = f.ctx.fillStyle = s.colour;
    f.ctx.lineWidth = 2;
    f.ctx.setLineDash(s.dashed ? [6, 4] : []);
    f.ctx.beginPath();
    s.points.forEach(([px, py], i) => (i ? f.ctx.lineTo(f.x(px), f.y(py))
      : f.ctx.moveTo(f.x(px), f.y(py))));
    f.ctx.stroke();
    f.ctx.setLineDash([]);
    for (const [px, py] of s.points) {
      f.ctx.beginPath(); f.ctx.arc(f.x(px), f.y(py), 3, 0, 7); f.ctx.fill();
    }
  }
  f.ctx.lineWidth = 1;
  legend(f.ctx, series, f.m.left, 12);
  canvas.chartFrame = f;
}

// groups: [{label, colour, values: [...] (one per category)}]
function barChart(canvas, categories, groups, opts = {}) {
  const f = frame(canvas, opts, [0, categories.length], [0, opts.yMax ?? 1]);
  const slot = f.W / Math.max(categories.length, 1);
  const bar = (slot * 0.8) / Math.max(groups.length, 1);
  groups.forEach((g, gi) => {
    f.ctx.fillStyle = g.colour;
    g.values.forEach((v, ci) => {
      if (!Number.isFinite(v)) return;
      const left = f.m.left + ci * slot + slot * 0.1 + gi * bar;
      f.ctx.fillRect(left, f.y(v), bar - 1, f.y(0) - f.y(v));
    });
  });
  f.ctx.fillStyle = "#333"; f.ctx.textAlign = "center"; f.ctx.textBaseline = "top";
  f.ctx.font = categories.length > 12 ? "10px system-ui, sans-serif" : FONT;
  const widest = Math.max(...categories.map((c) => f.ctx.measureText(String(c)).width));
  categories.forEach((c, i) => {
    const cx = f.m.left + (i + 0.5) * slot, cy = f.m.top + f.H + 6;
    if (widest <= slot - 4) { f.ctx.fillText(String(c), cx, cy); return; }
    f.ctx.save();  // names wider than their slot are written at a slant
    f.ctx.translate(cx, cy);
    f.ctx.rotate(-Math.PI / 7);
    f.ctx.textAlign = "right";
    f.ctx.fillText(String(c), 0, 0);
    f.ctx.restore();
  });
  legend(f.ctx, groups, f.m.left, 12);
}
