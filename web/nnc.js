// nnc in the browser: decode .nnc files with no server-side help.
//
//   import { decode } from "./nnc.js";
//   const image = await decode(bytes);          // ImageData (RGBA)
//   <script type="module" src="nnc.js"></script> <nnc-img src="photo.nnc" alt="...">
//
//   bytes ─container/codes─▶ integers ─latents─▶ z2 ─prior1.onnx─▶ p(z1|z2)
//         ─latents─▶ z1 ─synthesis.onnx (tiles)─▶ 8-bit RGBA (+ gray, alpha)
//
// Every section is decoded and checked (formats/nnc-v1.md §9) before a network runs. The
// model files (manifest.json, the shard table, the ONNX graphs) load from ``models/``
// next to this module, checked against the manifest's sha256; onnxruntime-web from
// ``node_modules/`` next to it (both configurable).
import { NncError } from "./src/errors.js";
import { readFile, readCodes, MAX_PIXELS } from "./src/codes.js";
import { ModelStore } from "./src/model.js";
import { level1Latent, level2Latent } from "./src/latents.js";
import { loadOrt, modelSessions, runPrior, runSynthesis, toGray } from "./src/networks.js";

export { NncError };

const settings = {
  models: new URL("./models/", import.meta.url),
  ort: new URL("./node_modules/onnxruntime-web/dist/ort.wasm.min.mjs", import.meta.url),
  providers: ["wasm"],
  threads: 0,
  maxPixels: MAX_PIXELS,
};
let store = null;

/**
 * Change where model files and onnxruntime-web come from, the execution providers
 * (["webgpu", "wasm"] with an ORT build that has WebGPU, e.g. ort.webgpu.min.mjs), the
 * WASM threads (0: all cores, when the page is cross-origin isolated) or the pixel limit.
 * Call before the first decode.
 */
export function configure(options) {
  Object.assign(settings, options);
  store = null;
}

function modelStore() {
  if (!store) store = new ModelStore(new URL(settings.models, import.meta.url));
  return store;
}

const now = () => globalThis.performance?.now() ?? Date.now();

/**
 * Decode a whole .nnc file; also returns its header and where the time went (ms).
 * @param {ArrayBuffer|Uint8Array} bytes
 * @returns {Promise<{image: ImageData, header: object, timings: object}>}
 */
export async function decodeWithInfo(bytes) {
  const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const timings = {};
  let t = now();
  const mark = (name) => { const n = now(); timings[name] = (timings[name] || 0) + n - t; t = n; };
  const file = readFile(data, settings.maxPixels);
  const st = modelStore();
  const model = await st.model(file.header.model_name);
  const codes = await readCodes(file, model);
  mark("integers");
  const ort = await loadOrt(new URL(settings.ort, import.meta.url).href, { threads: settings.threads });
  const [prior1, synthesis] = await modelSessions(ort, st, file.header.model_name, settings.providers);
  mark("sessions");
  const h = codes.header;
  const n2 = codes.shape2.reduce((a, b) => a * b, 1);
  const z2 = level2Latent(codes.level2, n2, h.seed);
  mark("level2");
  const [mu, sigma] = await runPrior(ort, prior1, z2, codes.shape2, h.quality);
  mark("prior");
  const z1 = level1Latent(codes.level1, codes.shape1, h);
  for (let i = 0; i < z1.length; i++) z1[i] = Math.fround(mu[i] + Math.fround(sigma[i] * z1[i]));
  mark("level1");
  const rgba = new Uint8ClampedArray(h.width * h.height * 4);
  await runSynthesis(ort, synthesis, z1, codes.shape1, h.quality, rgba, h.width, h.height);
  mark("synthesis");
  if (h.channels === 1) toGray(rgba);
  for (let i = 0; i < h.width * h.height; i++) rgba[4 * i + 3] = codes.alpha ? codes.alpha[i] : 255;
  const image = typeof ImageData === "function"
    ? new ImageData(rgba, h.width, h.height)
    : { data: rgba, width: h.width, height: h.height, colorSpace: "srgb" };
  return { image, header: h, icc: codes.icc, timings };
}

/**
 * Decode a whole .nnc file to RGBA pixels.
 * @param {ArrayBuffer|Uint8Array} bytes
 * @returns {Promise<ImageData>}
 */
export async function decode(bytes) {
  return (await decodeWithInfo(bytes)).image;
}

// --- <nnc-img src alt>: an image element for .nnc files ----------------------------------
if (globalThis.customElements && globalThis.HTMLElement) {
  class NncImg extends HTMLElement {
    static observedAttributes = ["src", "alt"];

    constructor() {
      super();
      const root = this.attachShadow({ mode: "open" });
      root.innerHTML = "<style>:host{display:inline-block}canvas{max-width:100%;height:auto;display:block}"
        + "span{font:inherit;color:GrayText}</style><canvas role=img></canvas><span hidden></span>";
      this.canvas = root.querySelector("canvas");
      this.fallback = root.querySelector("span");
      this.loading = null;
    }

    attributeChangedCallback(name) {
      if (name === "alt") {
        this.canvas.setAttribute("aria-label", this.alt);
        this.fallback.textContent = this.alt;
      } else if (this.isConnected) {
        this.load();
      }
    }

    connectedCallback() { if (this.src && !this.loading) this.load(); }

    get src() { return this.getAttribute("src") || ""; }
    set src(v) { this.setAttribute("src", v); }
    get alt() { return this.getAttribute("alt") || ""; }
    set alt(v) { this.setAttribute("alt", v); }

    /** Fetch and draw ``src``; fires "load" or "error" (detail: the message), as <img>. */
    load() {
      const src = this.src;
      this.loading = (async () => {
        try {
          const r = await fetch(new URL(src, document.baseURI));
          if (!r.ok) throw new Error(`cannot fetch ${src} (HTTP ${r.status})`);
          const image = await decode(await r.arrayBuffer());
          if (src !== this.src) return; // superseded
          this.canvas.width = image.width;
          this.canvas.height = image.height;
          this.canvas.getContext("2d").putImageData(image, 0, 0);
          this.canvas.hidden = false;
          this.fallback.hidden = true;
          this.dispatchEvent(new Event("load"));
        } catch (e) {
          this.canvas.hidden = true;
          this.fallback.hidden = false;
          this.dispatchEvent(new CustomEvent("error", { detail: e.message }));
        }
      })();
      return this.loading;
    }
  }
  if (!customElements.get("nnc-img")) customElements.define("nnc-img", NncImg);
}
