// Waiting made visible: any request still unanswered after half a second shows a spinner in the
// header naming what is awaited, and the nearest-neighbour index shows its build's progress while
// the rest of the page goes on answering.
"use strict";
const WAIT_SHOWN_AFTER_MS = 500;
const waits = new Map();
let waitCount = 0;

function startWait(label) {
  const id = ++waitCount;
  const timer = setTimeout(() => { waits.set(id, label); showWaits(); }, WAIT_SHOWN_AFTER_MS);
  return () => { clearTimeout(timer); if (waits.delete(id)) showWaits(); };
}

function showWaits() {
  const box = document.querySelector("#busy");
  box.hidden = !waits.size;
  const what = [...new Set(waits.values())].join(", ");
  box.querySelector(".what").textContent = `waiting for ${what}…`;
}

// The label of a request, for the spinner: the API's last word ("predict", "neighbours",
// "position").
function waitLabel(path) {
  const words = path.split("?")[0].split("/").filter(Boolean);
  if (words.length > 3) return words[words.length - 1];
  return words.length > 2 ? "the run" : "the runs list";
}

function showIndexProgress(index) {
  const box = document.querySelector("#index-progress");
  const bar = box.querySelector("progress"), text = box.querySelector(".what");
  box.hidden = index.state === "ready" || index.state === "absent";
  if (index.state === "failed") {
    bar.hidden = true;
    text.textContent = `the index of training images could not be built: ${index.error}`;
    return;
  }
  bar.hidden = false;
  bar.max = Math.max(index.total, 1);
  bar.value = index.done;
  text.textContent = index.state === "loading"
    ? `loading the training images (${index.seconds} s)…`
    : `indexing training images: ${thousands(index.done)} of ${thousands(index.total)} ` +
      `(${index.seconds} s); predict, maps and Grad-CAM answer meanwhile`;
}

// Ask for the neighbours; while the index is built (202) show its progress, poll it, then ask
// again.
async function loadNeighbours(run, seq, form, query = "") {
  const path = `/api/runs/${encodeURIComponent(run)}`;
  for (;;) {
    const answer = await api(`${path}/neighbours${query}`, { method: "POST", body: form() });
    if (seq !== state.seq) return;
    showIndexProgress(answer.index);
    if (answer.images) { renderNeighbours(answer); return; }
    if (answer.index.state === "failed") return;
    let index = answer.index;
    while (index.state === "loading" || index.state === "building") {
      await new Promise((r) => setTimeout(r, 400));
      if (seq !== state.seq) return;
      index = (await api(`${path}/index`, {}, 6, false)).index;
      showIndexProgress(index);
    }
    if (index.state === "failed") return;
  }
}
