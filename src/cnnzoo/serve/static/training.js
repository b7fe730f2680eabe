// The Training and Compare tabs: a run's curves, per-class accuracy, confusion matrix and layer
// table, and two runs side by side. Called once every script has loaded (explorer.js's helpers).
"use strict";

// ---- training tab -------------------------------------------------------------------------------
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
  const points = metrics.filter((m) => Number.isFinite(m[key])).map((m) => [m.epoch, m[key]]);
  return { label, colour, dashed, points };
}

function renderTraining(d) {
  lineChart($("#loss-chart"), [series(d.metrics, "train_loss", "train", PALETTE[0], true),
    series(d.metrics, "test_loss", "test", PALETTE[1])],
  { xLabel: "epoch", yLabel: "cross-entropy loss" });
  lineChart($("#acc-chart"), [series(d.metrics, "train_top1", "train", PALETTE[0], true),
    series(d.metrics, "test_top1", "test", PALETTE[1])],
  { xLabel: "epoch", yLabel: "top-1 accuracy", percent: true });
  const classes = Object.keys(d.per_class);
  const chart = $("#class-chart");
  if (!classes.length) {
    const ctx = chart.getContext("2d");
    ctx.clearRect(0, 0, chart.width, chart.height);
    ctx.font = FONT; ctx.fillStyle = "#666"; ctx.textAlign = "center";
    ctx.fillText("per_class.csv is written when training ends", chart.width / 2, chart.height / 2);
  } else {
    const values = classes.map((c) => d.per_class[c]);
    barChart(chart, classes, [{ label: "test accuracy", colour: PALETTE[0], values }],
      { yLabel: "accuracy", percent: true, bottom: 64 });
  }
  $("#confusion").replaceChildren(d.figures.includes("confusion.png")
    ? confusionImage(d)
    : el("p", { class: "muted" }, "written when training ends"));
  renderTimeline(d);
}

// The confusion matrix's numbers are 7 pt at 110 dpi (10.7 px at the PNG's own size): shown at
// 1.05× its width they are 11.2 px, the least that reads comfortably on a laptop screen.
const CONFUSION_SCALE = 1.05, CONFUSION_NUMBER_PX = 7 * 110 / 72;
function confusionImage(d) {
  const src = `/api/runs/${encodeURIComponent(d.name)}/figures/confusion.png?t=${d.modified}`;
  const img = el("img", { src, alt: "confusion matrix of the test set, each row normalised" });
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
  $("#layers-total").textContent = `${m.variant || m.model}: ${thousands(m.params)} parameters`
    + `${fixed}, ${thousands(m.total_macs)} multiply-adds per image` + (m.note ? `; ${m.note}` : "");
  $("#layers tbody").replaceChildren(...m.layers.map((l) => el("tr", {},
    el("td", {}, l.stage ? `${l.stage} / ${l.name}` : l.name), el("td", {}, l.type),
    el("td", {}, l.output_shape.join("×")), el("td", { class: "num" }, thousands(l.params)),
    el("td", { class: "num" }, thousands(l.macs)),
    el("td", { class: "num" }, l.receptive_field ?? "–"))));
}

// ---- compare tab --------------------------------------------------------------------------------
function fillCompareSelects() {
  for (const [id, fallback] of [["#compare-a", 0], ["#compare-b", 1]]) {
    const select = $(id), chosen = select.value;
    select.replaceChildren(...state.runs.map((r) => el("option", { value: r.name },
      `${r.name} (${r.variant || r.model}, ${pct(r.test_top1)})`)));
    select.value = chosen || state.runs[Math.min(fallback, state.runs.length - 1)]?.name || "";
  }
}

async function renderCompare() {
  // two quick choices: the answers can come back in either order
  const ticket = ++state.compareSeq;
  const names = [$("#compare-a").value, $("#compare-b").value].filter(Boolean);
  $("#compare-table").dataset.source = "";
  loadComparison(names, ticket);  // compare's report (comparison.js): seconds the first time
  const runs = await Promise.all(names.map((n) => api(`/api/runs/${encodeURIComponent(n)}`)));
  if (ticket !== state.compareSeq) return;  // a newer choice is being drawn
  const label = (r, i) => `${"AB"[i]}: ${r.name}`;
  const curves = (key) => runs.map((r, i) => series(r.metrics, key, label(r, i), PALETTE[i]));
  lineChart($("#compare-acc"), curves("test_top1"),
    { xLabel: "epoch", yLabel: "test top-1 accuracy", percent: true });
  lineChart($("#compare-loss"), curves("test_loss"), { xLabel: "epoch", yLabel: "test loss" });
  const classes = [...new Set(runs.flatMap((r) => Object.keys(r.per_class)))];
  barChart($("#compare-classes"), classes, runs.map((r, i) => ({
    label: label(r, i), colour: PALETTE[i], values: classes.map((c) => r.per_class[c]),
  })), { yLabel: "accuracy", percent: true, bottom: 64 });
  const rows = [["", ...runs.map(label)], ["model", ...runs.map((r) => r.model)],
    ["data set", ...runs.map((r) => r.dataset)],
    ["test top-1 (last epoch)", ...runs.map((r) => pct(r.test_top1))],
    ["best test top-1", ...runs.map((r) => pct(r.best_test_top1))],
    ["epochs", ...runs.map((r) => String(r.epochs_done))],
    ["parameters", ...runs.map((r) => thousands(r.summary.params))],
    ["training time",
      ...runs.map((r) => (r.summary.train_seconds ? `${r.summary.train_seconds} s` : "–"))]];
  if ($("#compare-table").dataset.source === "report") return;  // the report's table came first
  $("#compare-table").replaceChildren(...rows.map((row, i) => el("tr", {},
    ...row.map((cell) => el(i ? "td" : "th", {}, cell)))));
}
