// Colour maps as 17 anchors each (matplotlib's viridis, inferno, cividis and RdBu_r), interpolated:
// the same maps as `cnnzoo show`, so the page and the figures read alike.
"use strict";
const COLOUR_ANCHORS = {
  viridis: "44015448186a472d7b4240863b528b33638d2c728e26828e21918c1fa088" +
    "28ae803fbc735ec96284d44baddc30d8e219fde725",
  inferno: "0000040b0724210c4a3d096557106e71196e8a226aa32c61bc3754d24644" +
    "e45a31f1731df98e09fcac11f9cb35f2ea69fcffa4",
  cividis: "00224e002e6a1a386f32436d434e6c535a6d61656f6f70737d7c788c8878" +
    "9b9476aba072bcae6ccdbb63dec958f0d846fee838",
  signed: "0530611752902a71b23f8ec06bacd19bc9e0c2ddece0ecf3f7f6f6fbe5d8" +
    "fbccb4f5aa89e48066d05548ba2832930e2667001f",
};

function buildLut(hex) {
  const anchors = [];
  for (let i = 0; i < hex.length; i += 6) {
    anchors.push([0, 2, 4].map((o) => parseInt(hex.substr(i + o, 2), 16)));
  }
  const lut = new Uint8ClampedArray(256 * 3);
  for (let v = 0; v < 256; v++) {
    const t = (v / 255) * (anchors.length - 1);
    const i = Math.min(Math.floor(t), anchors.length - 2);
    const f = t - i;
    for (let c = 0; c < 3; c++) lut[v * 3 + c] = anchors[i][c] * (1 - f) + anchors[i + 1][c] * f;
  }
  return lut;
}

const LUTS = Object.fromEntries(Object.entries(COLOUR_ANCHORS).map(([k, v]) => [k, buildLut(v)]));

function decodeBytes(b64) {
  const text = atob(b64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

// Paint h×w uint8 values (from `bytes` at `offset`) onto `canvas` through a colour map, scaled up
// without blur.
function paintValues(canvas, bytes, offset, h, w, lutName, alpha = 255) {
  const lut = LUTS[lutName];
  const small = document.createElement("canvas");
  small.width = w;
  small.height = h;
  const sctx = small.getContext("2d");
  const img = sctx.createImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    const v = bytes[offset + i];
    img.data.set([lut[v * 3], lut[v * 3 + 1], lut[v * 3 + 2], alpha], i * 4);
  }
  sctx.putImageData(img, 0, 0);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
}
