// The Units tab: what each unit of a layer wants to see (POST /api/runs/RUN/features, `cnnzoo show
// features`: inputs optimised from noise, seconds of work) and what it answers to in the test set
// (POST /api/runs/RUN/patches, `cnnzoo show patches`: the 9 test patches that drive each unit
// hardest). The layers are the commands' --layer names (GET /api/runs/RUN/units). A synthesised
// image clicked goes to the Explore tab as the input, its pixels as they are (`cnnzoo predict
// --no-prepare`).
"use strict";
const units = { run: null, layers: null, seq: 0 };
const sig = (v) => (Number.isFinite(v) ? Number(v).toPrecision(3) : "–");

// a new run: the answers shown were about the old one
function resetUnits() {
  units.seq++;
  units.run = null;
  units.layers = null;
  for (const id of ["#units-features", "#units-patches"]) $(id).replaceChildren();
  for (const id of ["#units-features-status", "#units-patches-status"]) $(id).textContent = "";
  $("#units-layer").replaceChildren();
  if ($("#units").classList.contains("active")) loadUnitLayers();
}

async function loadUnitLayers() {
  if (!state.run || units.run === state.run) return;
  const run = state.run, seq = units.seq;
  try {
    const answer = await api(`/api/runs/${encodeURIComponent(run)}/units`);
    if (seq !== units.seq) return;
    units.run = run;
    units.layers = answer;
    $("#units-layer").replaceChildren(...answer.features.map((name) => el("option",
      { value: name }, name === "classes" ? "classes (the output layer)" : name)));
    $("#units-note").textContent = answer.note || "";
    layerChosen();
  } catch (error) {
    if (seq === units.seq) $("#units-note").textContent = error.message;
  }
}

// patches need a spatial map: the button is off for other layers, and the line says which have one
const patchesAllowed = () => (units.layers?.patches || []).includes($("#units-layer").value);

function layerChosen() {
  const layer = $("#units-layer").value, spatial = units.layers?.patches || [];
  const button = $("#units-find-patches");
  button.disabled = !patchesAllowed();
  $("#units-patches-status").textContent = button.disabled
    ? (spatial.length ? `${layer} is not a spatial map: patches need a convolutional stage ` +
      `(${spatial.join(", ")})` : "this run has no stage to find patches for") : "";
}

// a line that says what is being worked on, and for how long (the header's spinner shows too)
function working(box, what) {
  const started = Date.now();
  const show = () => {
    const seconds = Math.round((Date.now() - started) / 1000);
    box.replaceChildren(el("span", { class: "units-spinner" }), ` ${what}… ${seconds} s`);
  };
  show();
  const timer = setInterval(show, 1000);
  return () => clearInterval(timer);
}

async function askUnits(kind, what, render) {
  const run = state.run, layer = $("#units-layer").value, seq = units.seq;
  if (!run || !layer) return;
  const button = $(kind === "features" ? "#units-synthesise" : "#units-find-patches");
  const box = $(`#units-${kind}-status`);
  button.disabled = true;
  $(`#units-${kind}`).replaceChildren();
  const stop = working(box, what(layer));
  try {
    const query = new URLSearchParams({ layer });
    const answer = await api(`/api/runs/${encodeURIComponent(run)}/${kind}?${query}`,
      { method: "POST" });
    if (seq !== units.seq) return;
    stop();
    render(answer, run);
  } catch (error) {
    stop();
    if (seq === units.seq) box.textContent = error.message;
  } finally {
    button.disabled = kind === "patches" && !patchesAllowed();
  }
}

function renderFeatures(answer, run) {
  const hidden = answer.layer !== "classes";
  const beyond = answer.test_images === null ? "" : `; ${answer.above_test_max} of ` +
    `${answer.units.length} (orange frame) beyond their largest ${answer.measure} over ${
      thousands(answer.test_images)} test images`;
  $("#units-features-status").replaceChildren(
    `${answer.units.length} ${hidden ? `units of ${answer.layer} (${answer.module})` :
      "classes (logits)"}, ${answer.steps} steps, seed ${answer.seed}${beyond} (${answer.seconds} ` +
    "s) · the same as ",
    el("code", {}, `cnnzoo show features ${run} --layer ${answer.layer}`));
  $("#units-features").replaceChildren(...answer.units.map((u) => {
    const stats = u.test_max === undefined ? [] : [el("br"), el("span", { class: "muted" },
      `test mean ${sig(u.test_mean)} · max ${sig(u.test_max)}`)];
    const figure = el("figure", {
      class: `unit${u.test_max !== undefined && u.value > u.test_max ? " beyond" : ""}`,
      "data-unit": u.unit, "data-value": u.value, "data-test-mean": u.test_mean ?? "",
      "data-test-max": u.test_max ?? "", tabindex: "0", role: "button",
      title: `${u.label}: click to classify this image in the Explore tab`,
    }, el("img", { src: `data:image/png;base64,${u.png}`, alt: u.label }),
    el("figcaption", {}, el("strong", {}, u.label), el("br"),
      `${hidden ? "activation" : "logit"} ${sig(u.value)}`, ...stats));
    const send = () => sendToExplore(u, answer);
    figure.addEventListener("click", send);
    figure.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); send(); }
    });
    return figure;
  }));
}

// the synthesised image as the Explore tab's input, its pixels as they are: what `cnnzoo predict
// --no-prepare` classifies (preparing would invert, trim and centre it)
async function sendToExplore(unit, answer) {
  const blob = await (await fetch(`data:image/png;base64,${unit.png}`)).blob();
  $("#prepare").checked = false;
  $("#tabs button[data-tab='explore']").click();
  showOnCanvas(URL.createObjectURL(blob));
  predict(blob, `synthesised for ${unit.label} of ${answer.layer} (show features, ` +
    `${answer.steps} steps, seed ${answer.seed}); pixels as they are`);
}

function renderPatches(answer, run) {
  $("#units-patches-status").replaceChildren(
    `the 9 of ${thousands(answer.test_images)} test images that drive each of the first ` +
    `${answer.units.length} units of ${answer.layer} (${answer.module}) hardest, each cropped to ` +
    `the unit's ${answer.receptive_field}×${answer.receptive_field} receptive field; under each: ` +
    `its activation (${answer.seconds} s) · the same as `,
    el("code", {}, `cnnzoo show patches ${run} --layer ${answer.layer}`));
  $("#units-patches").replaceChildren(...answer.units.map((row, unit) => el("div",
    { class: "patch-unit", "data-unit": unit },
    el("h4", {}, `unit ${unit}`),
    el("div", { class: "patch-grid" }, ...row.map((p) => el("figure", {
      "data-image": p.image, "data-value": p.value,
      title: `test image #${p.image}, position (${p.i}, ${p.j}): ${p.value}`,
    }, el("img", { src: `data:image/png;base64,${p.png}`, alt: `test image #${p.image}` }),
    el("figcaption", {}, sig(p.value))))))));
}

function setupUnits() {
  $("#tabs button[data-tab='units']").addEventListener("click", loadUnitLayers);
  $("#units-layer").addEventListener("change", () => {
    for (const id of ["#units-features", "#units-patches"]) $(id).replaceChildren();
    $("#units-features-status").textContent = "";
    layerChosen();
  });
  $("#units-synthesise").addEventListener("click", () => askUnits("features",
    (layer) => `synthesising what each unit of ${layer} wants to see`, renderFeatures));
  $("#units-find-patches").addEventListener("click", () => askUnits("patches",
    (layer) => `searching the test set for what drives ${layer}`, renderPatches));
}
setupUnits();
