// The Compare tab's report: what `cnnzoo compare A B` writes, from GET /api/compare (the same
// numbers as its --json): accuracy and cost, per-layer params and MACs side by side, first-layer
// kernels, one test image's maps in both, and the test images where the two disagree (a click opens
// one in the Explore tab). Uses explorer.js's helpers once every script has loaded.
"use strict";

const img64 = (png, alt, cls = "") => el("img", { src: `data:image/png;base64,${png}`, alt,
  class: cls });

// The report takes seconds the first time (both runs predict the whole test set): a progress bar
// with the seconds waited stands in for it meanwhile.
async function loadComparison(names, ticket) {
  const box = $("#comparison");
  if (names.length < 2) { box.replaceChildren(); return; }
  const what = el("span", { class: "small" });
  const started = performance.now();
  const tick = () => {
    const seconds = Math.round((performance.now() - started) / 1000);
    what.textContent = `comparing ${names[0]} and ${names[1]}: both predict every test image, ` +
      `then the report is drawn (${seconds} s)…`;
  };
  tick();
  box.replaceChildren(el("div", { class: "panel", id: "compare-progress", role: "status" },
    el("progress"), " ", what));
  const timer = setInterval(tick, 500);
  const query = `a=${encodeURIComponent(names[0])}&b=${encodeURIComponent(names[1])}`;
  try {
    const report = await api(`/api/compare?${query}`, {}, 6, false);
    if (ticket === state.compareSeq) renderComparison(report, names);
  } catch (error) {
    if (ticket !== state.compareSeq) return;
    box.replaceChildren(el("p", { class: "error", "data-role": "compare-error" },
      `These runs cannot be compared: ${error.message}`));
  } finally { clearInterval(timer); }
}

function renderComparison(report, names) {
  const [a, b] = report.runs;
  const label = names.map((name, i) => `${"AB"[i]}: ${name}`);
  renderCompareSummary(report, label);
  $("#comparison").replaceChildren(
    el("div", { class: "row" }, ...report.runs.map((run, i) => layersPanel(run, label[i]))),
    kernelsPanel(report, label), mapsPanel(report, label), disagreementsPanel(report, label));
  $("#comparison").dataset.disagree = String(report.disagree);
}

// The summary, as compare.md's first table; it replaces the quicker one drawn from the runs' pages.
function renderCompareSummary(r, label) {
  const [a, b] = r.runs;
  const both = (f) => [f(a), f(b)];
  const rows = [["", ...label], ["model", ...both((x) => x.variant || x.model)],
    ["data set", r.dataset, r.dataset],
    [`test top-1 (${thousands(r.test_images)} images, centre view)`,
      ...both((x) => pct(x.test_top1))],
    ["best epoch's test top-1", ...both((x) => pct(x.best_epoch_top1))],
    ["epochs, seconds of training",
      ...both((x) => `${x.epochs}, ${Math.round(x.train_seconds)} s`)],
    ["parameters", ...both((x) => thousands(x.params))],
    ["multiply-adds per image", ...both((x) => thousands(x.macs))]];
  const table = $("#compare-table");
  table.dataset.source = "report";
  table.replaceChildren(...rows.map((row, i) => el("tr", {},
    ...row.map((cell, j) => el(i ? (j ? "td" : "th") : "th", { class: i && j ? "num" : "" },
      cell)))));
}

function layersPanel(run, label) {
  const head = el("tr", {}, ...["layer", "type", "output", "params", "MACs"]
    .map((h, i) => el("th", { class: i > 2 ? "num" : "" }, h)));
  const rows = run.layers.map((l) => el("tr", {}, el("td", {}, l.name), el("td", {}, l.type),
    el("td", {}, l.output.join("×")), el("td", { class: "num" }, thousands(l.params)),
    el("td", { class: "num" }, thousands(l.macs))));
  const total = el("tr", {}, el("th", {}, "total"), el("td"), el("td"),
    el("th", { class: "num" }, thousands(run.params)),
    el("th", { class: "num" }, thousands(run.macs)));
  return el("div", { class: "panel grow compare-layers" },
    el("h3", {}, `${label}: parameters and multiply-adds per layer`),
    el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows), el("tfoot", {}, total)),
    el("p", { class: "muted small" }, "as cnnzoo summary lists them; the total counts trainable " +
      "parameters, as cnnzoo list does"));
}

function kernelsPanel(report, label) {
  const figures = report.pictures.kernels.map((k, i) => (k.error
    ? el("figure", {}, el("p", { class: "muted small" }, `${label[i]}: ${k.error}`))
    : el("figure", {}, img64(k.png, `${label[i]}'s first-layer kernels`, "kernels"),
      el("figcaption", {}, `${label[i]}: ${k.layer} (${k.shape.join("×")})`))));
  return el("div", { class: "panel" }, el("h3", {}, "First-layer kernels"),
    el("div", { class: "compare-figures" }, ...figures),
    el("p", { class: "muted small" }, "each kernel on its own scale: red positive, blue " +
      "negative, white zero (colour kernels: RGB, scaled to [0, 1]); the first 32 kernels"));
}

function mapsPanel(report, label) {
  const maps = report.pictures.maps;
  const said = maps.predicted.map((p, i) => `${"AB"[i]} says ${p}`).join(", ");
  const stages = maps.runs.flatMap((run, i) => run.map((s) => el("figure", {},
    img64(s.png, `${label[i]} ${s.stage}`, "maps"),
    el("figcaption", {}, `${"AB"[i]} ${s.stage}`, el("br"),
      el("span", { class: "muted" }, s.shape.join("×"))))));
  return el("div", { class: "panel" },
    el("h3", {}, `Test image #${maps.image}, truly ${maps.class} (${said}): feature maps in both`),
    el("div", { class: "compare-figures" },
      el("figure", {}, img64(maps.input, "the test image", "maps"),
        el("figcaption", {}, "the image")), ...stages),
    el("p", { class: "muted small" }, "at the stages train --snapshots keeps; the first 16 " +
      "maps of each, every map on its own scale (viridis: low dark → high yellow)"));
}

function disagreementsPanel(report, label) {
  const [a, b] = report.runs;
  const tallies = [["both right", report.both_right, "right"],
    [`only A (${a.name}) right`, report.a_right, "a"],
    [`only B (${b.name}) right`, report.b_right, "b"],
    ["both wrong", report.both_wrong + report.both_wrong_alike, "wrong"]];
  const pictures = report.pictures.disagreements;
  const rows = new Map(report.disagreements.map((row) => [row.index, row]));
  const strip = pictures.map((p) => disagreementFigure(rows.get(p.index), p.png));
  const cut = pictures.length < report.disagree
    ? ` (the first ${thousands(pictures.length)} shown; compare --json lists them all)` : "";
  return el("div", { class: "panel", id: "compare-disagreements" },
    el("h3", {}, `Where they disagree: ${thousands(report.disagree)} of ` +
      `${thousands(report.test_images)} test images${cut}`),
    el("div", { class: "tallies" }, ...tallies.map(([what, n, cls]) => el("div",
      { class: `tally ${cls}` }, el("strong", {}, thousands(n)), el("span", {}, what)))),
    el("p", { class: "muted small" }, `both wrong: ${thousands(report.both_wrong)} differently, ` +
      `${thousands(report.both_wrong_alike)} alike. Below, each image where ${label[0]} and ` +
      `${label[1]} answer differently: the true class, then each run's answer (✓ right, ✗ ` +
      "wrong). Click one to open it in the Explore tab."),
    el("div", { class: "strip" }, ...strip));
}

function disagreementFigure(row, png) {
  const mark = (answer) => `${answer === row.true ? "✓" : "✗"} ${answer}`;
  const figure = el("figure", { tabindex: "0", role: "button", "data-index": row.index,
    title: `open test image #${row.index} in the Explore tab` },
  img64(png, `test image #${row.index}, truly ${row.true}`),
  el("figcaption", {}, el("strong", {}, `#${row.index}`), el("br"), `true ${row.true}`, el("br"),
    el("span", { class: row.a === row.true ? "right" : "wrong" }, `A ${mark(row.a)}`), el("br"),
    el("span", { class: row.b === row.true ? "right" : "wrong" }, `B ${mark(row.b)}`)));
  const open = () => exploreTestImage(row.index);
  figure.addEventListener("click", open);
  figure.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); }
  });
  return figure;
}

// A test image in the Explore tab, predicted by the selected run if it is A or B, else by A.
async function exploreTestImage(index) {
  const pair = [$("#compare-a").value, $("#compare-b").value];
  const run = pair.includes(state.run) ? state.run : pair[0];
  $("#tabs button[data-tab='explore']").click();
  if (state.run !== run) await selectRun(run);
  try {
    const item = await api(`/api/runs/${encodeURIComponent(run)}/test-image?index=${index}`);
    const blob = await (await fetch(`data:image/png;base64,${item.png}`)).blob();
    showOnCanvas(URL.createObjectURL(blob));
    predict(blob, `test image #${item.index} of ${thousands(item.count)}: truly ${item.class}`);
  } catch (error) { showError(error.message); }
}
