// The last step, with its numbers: logits → exp → sum → probabilities; and Grad-CAM for any
// class the student picks, at any convolutional stage (POST /api/runs/RUN/cam), an all-zero map
// said in words.
"use strict";

function renderSoftmax(table, classes) {
  const order = table.probabilities.map((p, i) => i)
    .sort((a, b) => table.probabilities[b] - table.probabilities[a]);
  const rows = order.map((i) => el("tr", {}, el("td", {}, classes[i] ?? String(i)),
    el("td", { class: "num" }, table.logits[i].toFixed(4)),
    el("td", { class: "num" }, (table.logits[i] - table.max).toFixed(4)),
    el("td", { class: "num" }, table.exp[i].toPrecision(4)),
    el("td", { class: "num", "data-role": "probability" }, table.probabilities[i].toFixed(6))));
  const total = table.probabilities.reduce((a, b) => a + b, 0);
  $("#softmax tbody").replaceChildren(...rows);
  $("#softmax tfoot").replaceChildren(el("tr", {}, el("th", {}, "sum"), el("td", {}), el("td", {}),
    el("td", { class: "num", "data-role": "exp-sum" }, table.sum.toPrecision(6)),
    el("td", { class: "num", "data-role": "probability-sum" }, total.toFixed(6))));
  $("#softmax-caption").textContent =
    `p = exp(logit − max) / Σ exp(logit − max), max = ${table.max.toFixed(4)} ` +
    "(subtracting the largest logit keeps exp finite and changes no probability)" +
    (table.temperature
      ? `; this model divides its logits by a fixed temperature T = ${table.temperature}` : "");
}

function fillCamChoices(result) {
  const classes = state.model?.classes || [];
  const choose = $("#cam-class"), layer = $("#cam-layer");
  choose.replaceChildren(...classes.map((c, i) =>
    el("option", { value: String(i) }, `${i}: ${c}`)));
  const maps = result.stages.filter((s) => s.kind === "maps" && s.height >= 1);
  layer.replaceChildren(...maps.map((s) => el("option", { value: s.name },
    `${s.name} / ${s.module} (${s.height}×${s.width})`)));
  // a new image starts from what the drawn Grad-CAM shows: the predicted class at the default layer
  choose.value = String(result.cam.class_index ?? result.top_k[0].index);
  layer.value = result.cam.layer || maps[maps.length - 1]?.name || "";
}

async function chosenCam() {
  if (!state.blob || !state.run) return;
  const query = new URLSearchParams({
    class_index: $("#cam-class").value, layer: $("#cam-layer").value,
    prepare: $("#prepare").checked,
  });
  const form = new FormData();
  form.append("image", state.blob, state.blob.name || "image.png");
  const seq = state.seq;
  try {
    const cam = await api(`/api/runs/${encodeURIComponent(state.run)}/cam?${query}`,
      { method: "POST", body: form });
    if (seq === state.seq && state.inputImage) renderCam(cam, state.inputImage);
  } catch (error) { $("#cam-caption").textContent = error.message; }
}

function setupCamChoices() {
  $("#cam-class").addEventListener("change", chosenCam);
  $("#cam-layer").addEventListener("change", chosenCam);
}
