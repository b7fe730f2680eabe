// Can the Grad-CAM beside it be trusted? A button (the checks take seconds) asks
// POST /api/runs/RUN/trust: `cnnzoo show trust`'s checks for this image and the chosen class, and a
// verdict, trust or do not trust, with the figures that decided it. Unless the student picked a
// layer, the checks choose Grad-CAM's, and the map beside is redrawn at it: the verdict and the map
// are about the same thing.
"use strict";

function clearTrust() {
  staleTrust();
  state.camPicked = false;
}

// the map changed (another class or layer): the verdict no longer speaks of it
function staleTrust() {
  const box = $("#trust");
  box.replaceChildren();
  delete box.dataset.verdict;
}

const rounded = (v, digits = 2) => (Number.isFinite(v) ? v.toFixed(digits) : "–");

function renderTrust(answer) {
  const v = answer.verdict, layer = answer.cam_layer, limits = answer.thresholds;
  const random = answer.random;
  const how = layer.chosen_by === "checks"
    ? `chosen by the checks among ${layer.candidates.map((c) => c.layer).join(", ")}`
    : "the layer you chose";
  const rows = [
    ["randomised ρ", rounded(v.randomised_rho), `< ${limits.randomised_rho_max}`],
    ["insertion − deletion AUC over random", rounded(v.gain), `≥ ${rounded(v.gain_needed)}`],
    ["occlusion ρ", rounded(v.occlusion_rho), `≥ ${limits.occlusion_rho_min}`],
    ["deletion AUC", rounded(v.deletion_auc), `random orders ${rounded(random.deletion_auc)}`],
    ["insertion AUC", rounded(v.insertion_auc), `random orders ${rounded(random.insertion_auc)}`],
  ];
  const box = $("#trust");
  box.dataset.verdict = v.trust ? "trust" : "do not trust";
  box.replaceChildren(
    el("div", {}, el("strong", { class: `verdict ${v.trust ? "yes" : "no"}` },
      v.trust ? "trust" : "do not trust"),
    ` Grad-CAM at ${layer.layer} for “${answer.class}” (${how}; ${answer.seconds} s)`),
    el("table", { class: "small" }, ...rows.map(([name, value, bar]) => el("tr", {},
      el("th", {}, name), el("td", { class: "num" }, value), el("td", { class: "muted" }, bar)))),
    el("p", { class: "muted small", "data-role": "trust-line" }, v.verdict));
}

async function checkTrust() {
  const box = $("#trust");
  if (!state.blob || !state.run) {
    box.textContent = "Draw, upload or pick an image first.";
    return;
  }
  const params = new URLSearchParams({ prepare: $("#prepare").checked });
  if ($("#cam-class").value !== "") params.set("class_index", $("#cam-class").value);
  if (state.camPicked && $("#cam-layer").value) params.set("layer", $("#cam-layer").value);
  const form = new FormData();
  form.append("image", state.blob, state.blob.name || "image.png");
  const seq = state.seq, button = $("#trust-check");
  button.disabled = true;
  box.textContent = "checking: randomising layers, deleting and inserting pixels, occluding…";
  try {
    const answer = await api(`/api/runs/${encodeURIComponent(state.run)}/trust?${params}`,
      { method: "POST", body: form });
    if (seq !== state.seq) return;
    renderTrust(answer);
    const select = $("#cam-layer"), layer = answer.cam_layer.layer;
    if (select.value !== layer && [...select.options].some((o) => o.value === layer)) {
      select.value = layer;  // set by code: no change event, so the verdict stays
      chosenCam();
    }
  } catch (error) {
    if (seq === state.seq) box.textContent = error.message;
  } finally { button.disabled = false; }
}

function setupTrust() {
  $("#trust-check").addEventListener("click", checkTrust);
  $("#cam-layer").addEventListener("change", () => { state.camPicked = true; staleTrust(); });
  $("#cam-class").addEventListener("change", staleTrust);
}
