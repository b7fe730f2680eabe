// Occlusion beside Grad-CAM: a button (a forward pass per place of the square: a second or more)
// asks POST /api/runs/RUN/occlusion, `cnnzoo show occlusion` for this image, the chosen class and
// the layer Grad-CAM is drawn at, and draws how far the class probability falls where a grey square
// covers the image (a symmetric colour scale in probability), Grad-CAM for the same class beside
// it, and their Spearman rank correlation in one sentence.
"use strict";

const OCCLUSION_SIDE = 110;  // px on screen, as the Grad-CAM beside it

function clearOcclusion() {
  const box = $("#occlusion");
  box.replaceChildren();
  delete box.dataset.rho;
}

function floatValues(b64) {
  const bytes = decodeBytes(b64);
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
}

// The map on the signed colour map (blue: rises, white: 0, red: falls), ±limit at its ends.
function paintDrop(canvas, values, h, w, limit) {
  const bytes = new Uint8Array(h * w);
  values.forEach((v, i) => { bytes[i] = Math.round((v / limit + 1) * 127.5); });
  paintValues(canvas, bytes, 0, h, w, "signed");
}

function dropScale(limit) {
  // drawn at twice its CSS size, so that its numbers stay sharp
  const c = el("canvas", { width: 112, height: 224, class: "scale",
    "aria-label": "colour scale of the probability drop" });
  const ctx = c.getContext("2d"), lut = LUTS.signed;
  ctx.scale(2, 2);
  for (let y = 0; y < 90; y++) {
    const v = Math.round((1 - y / 89) * 255);
    ctx.fillStyle = `rgb(${lut[v * 3]},${lut[v * 3 + 1]},${lut[v * 3 + 2]})`;
    ctx.fillRect(2, 8 + y, 12, 1);
  }
  ctx.strokeStyle = "#999"; ctx.lineWidth = 0.5; ctx.strokeRect(2, 8, 12, 90);
  ctx.font = "11px system-ui, sans-serif"; ctx.fillStyle = "#333"; ctx.textBaseline = "middle";
  const digits = limit >= 0.1 ? 2 : 3;
  [[8, `+${limit.toFixed(digits)}`], [53, "0"], [98, `−${limit.toFixed(digits)}`]]
    .forEach(([y, text]) => ctx.fillText(text, 17, y));
  ctx.fillText("Δp", 17, 108);
  return c;
}

function rhoSentence(rho, name) {
  const strength = Math.abs(rho) >= 0.5 ? "strongly" : Math.abs(rho) >= 0.2 ? "weakly" : "hardly";
  const sense = rho >= 0 ? "the pixels Grad-CAM ranks high are those whose covering lowers"
    : "Grad-CAM ranks high the pixels whose covering lowers least";
  return `ρ = ${rho.toFixed(2)}: ${sense} p(“${name}”) most, ${strength} (Spearman rank ` +
    "correlation over the pixels: 1, the same order; 0, unrelated; −1, opposite orders).";
}

function camBeside(answer) {
  const c = el("canvas", { width: 140, height: 140, "data-role": "occlusion-cam" });
  const ctx = c.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  if (state.inputImage) ctx.drawImage(state.inputImage, 0, 0, c.width, c.height);
  const cam = answer.cam;
  if (!cam.all_zero) {
    const overlay = el("canvas", { width: c.width, height: c.height });
    paintValues(overlay, decodeBytes(cam.data), 0, cam.height, cam.width, "inferno", 150);
    ctx.drawImage(overlay, 0, 0);
  }
  return el("figure", {}, c, el("figcaption", {}, `Grad-CAM at ${cam.layer}` +
    (cam.all_zero ? " (zero everywhere)" : " (inferno: 0 → max)")));
}

function renderOcclusion(answer) {
  const { height: h, width: w } = { height: answer.map.shape[0], width: answer.map.shape[1] };
  const values = floatValues(answer.map.data);
  const limit = Math.max(answer.largest_drop, answer.largest_rise, 1e-6);
  const map = el("canvas", { width: 140, height: 140, "data-role": "occlusion-map" });
  paintDrop(map, values, h, w, limit);
  const box = $("#occlusion");
  box.dataset.rho = String(answer.rank_correlation);
  box.replaceChildren(
    el("div", { class: "occlusion-maps" },
      el("figure", {}, map, el("figcaption", {}, `occlusion, ${answer.patch}×${answer.patch}`)),
      dropScale(limit), camBeside(answer)),
    el("p", { class: "small" }, "Colour: the fall of p(“", el("strong", {}, answer.class),
      `”) when a grey ${answer.patch}×${answer.patch} square covers the pixel, in probability ` +
      `(from ${answer.probability.toFixed(2)}; red: it falls, blue: it rises; the mean over ` +
      `the ${answer.squares} places of the square, step ${answer.stride} px).`),
    el("p", { class: "small", "data-role": "occlusion-rho" },
      rhoSentence(answer.rank_correlation, answer.class)),
    el("p", { class: "muted small" }, `${answer.seconds} s; as cnnzoo show occlusion`));
  for (const c of box.querySelectorAll("[data-role^=occlusion-]")) {
    if (c.tagName === "CANVAS") c.style.width = c.style.height = `${OCCLUSION_SIDE}px`;
  }
}

const occlusionAsked = () => [$("#prepare").checked, $("#cam-class").value,
  $("#cam-layer").value].join("|");

async function runOcclusion() {
  const box = $("#occlusion");
  if (!state.blob || !state.run) {
    box.textContent = "Draw, upload or pick an image first.";
    return;
  }
  const params = new URLSearchParams({ prepare: $("#prepare").checked });
  if ($("#cam-class").value !== "") params.set("class_index", $("#cam-class").value);
  if ($("#cam-layer").value) params.set("layer", $("#cam-layer").value);
  const form = new FormData();
  form.append("image", state.blob, state.blob.name || "image.png");
  const seq = state.seq, button = $("#occlusion-run"), asked = occlusionAsked();
  button.disabled = true;
  clearOcclusion();
  box.textContent = "occluding: sliding a grey square over the image, a forward pass per place…";
  try {
    const answer = await api(`/api/runs/${encodeURIComponent(state.run)}/occlusion?${params}`,
      { method: "POST", body: form });
    // drawn only if the image, class and layer are still those asked about
    if (seq === state.seq && occlusionAsked() === asked) renderOcclusion(answer);
  } catch (error) {
    if (seq === state.seq) box.textContent = error.message;
  } finally { button.disabled = false; }
}

function setupOcclusion() {
  $("#occlusion-run").addEventListener("click", runOcclusion);
  // another class or layer: the maps no longer speak of the Grad-CAM shown
  $("#cam-class").addEventListener("change", clearOcclusion);
  $("#cam-layer").addEventListener("change", clearOcclusion);
}
