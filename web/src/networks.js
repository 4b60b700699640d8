// The model's two decoding networks (formats/nnc-v1.md §10, §10b) on onnxruntime-web:
// prior1 (z2 -> mu_p, sigma_p) and synthesis (z1 -> x, over tiles as nnc runs it), and the
// conversion of x to 8 bits. Nothing here decides an integer.

const STRIDE1 = 16; // image pixels per level-1 latent pixel
export const SYNTHESIS_TILE = 48; // latent pixels per tile side (nnc/model/tiles.py)
export const SYNTHESIS_HALO = 4;

let ortPromise = null;

/** onnxruntime-web, imported once from ``url`` (its .wasm files are fetched next to it). */
export function loadOrt(url, { threads } = {}) {
  if (!ortPromise) {
    ortPromise = import(url).then((ort) => {
      ort.env.wasm.wasmPaths = new URL("./", url).href;
      // threads need a cross-origin isolated page (COOP/COEP); otherwise ORT runs one
      const cores = globalThis.navigator?.hardwareConcurrency || 1;
      ort.env.wasm.numThreads = globalThis.crossOriginIsolated ? (threads || cores) : 1;
      return ort;
    });
    ortPromise.catch(() => { ortPromise = null; });
  }
  return ortPromise;
}

const sessions = new Map();

/** The prior1 and synthesis sessions of a model (graphs fetched and sha256-checked). */
export function modelSessions(ort, store, name, providers) {
  const key = `${name}|${providers.join(",")}`;
  if (!sessions.has(key)) {
    const p = (async () => { // one at a time: ORT's WebGPU backend creates no two at once
      const out = [];
      for (const part of ["prior1", "synthesis"]) {
        const bytes = await store.graph(name, part);
        out.push(await ort.InferenceSession.create(bytes, { executionProviders: providers, graphOptimizationLevel: "all" }));
      }
      return out;
    })();
    p.catch(() => sessions.delete(key));
    sessions.set(key, p);
  }
  return sessions.get(key);
}

/** (start, stop) of each tile along an axis of n latent pixels, and of its haloed window. */
function* spans(n, tile, halo) {
  for (let a = 0; a < n; a += tile) {
    const b = Math.min(a + tile, n);
    yield [a, b, Math.max(a - halo, 0), Math.min(b + halo, n)];
  }
}

/** Round half to even (numpy's round), for the non-negative values of §10. */
function rint(x) {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * §10 "To 8 bits" into an RGBA buffer: x (Float32Array [3, wh, ww]) from its (oy, ox)
 * corner, ph x pw pixels, to (y, x) of a width-wide image.
 */
function put8bit(rgba, width, x, wh, ww, oy, ox, y, x0, ph, pw) {
  const plane = wh * ww;
  for (let r = 0; r < ph; r++) {
    let src = (oy + r) * ww + ox;
    let dst = ((y + r) * width + x0) * 4;
    for (let c = 0; c < pw; c++, src++, dst += 4) {
      for (let ch = 0; ch < 3; ch++) {
        const v = x[ch * plane + src];
        rgba[dst + ch] = rint(Math.fround((v < 0 ? 0 : v > 1 ? 1 : v) * 255));
      }
    }
  }
}

/** §10 gray: each pixel's 8-bit (R, G, B) to its luma, in place (float32 products and sums). */
export function toGray(rgba) {
  const a = Math.fround(0.299), b = Math.fround(0.587), c = Math.fround(0.114);
  const f = Math.fround;
  for (let i = 0; i < rgba.length; i += 4) {
    const y = rint(f(f(f(rgba[i] * a) + f(rgba[i + 1] * b)) + f(rgba[i + 2] * c)));
    rgba[i] = rgba[i + 1] = rgba[i + 2] = Math.min(255, Math.max(0, y));
  }
}

/** prior1: z2 (Float32Array over shape2) -> [mu_p, sigma_p] (Float32Arrays over shape1). */
export async function runPrior(ort, prior1, z2, shape2, quality) {
  const q = new ort.Tensor("float32", new Float32Array([quality]), [1]);
  const out = await prior1.run({ z2: new ort.Tensor("float32", z2, [1, ...shape2]), quality: q });
  return [out.mu_p.data, out.sigma_p.data];
}

/** synthesis over tiles of z1 (Float32Array over shape1): 8-bit RGB into rgba (width x height). */
export async function runSynthesis(ort, synthesis, z1, shape1, quality, rgba, width, height) {
  const [m, h1, w1] = shape1;
  const q = new ort.Tensor("float32", new Float32Array([quality]), [1]);
  for (const [y0, y1, wy0, wy1] of spans(h1, SYNTHESIS_TILE, SYNTHESIS_HALO)) {
    for (const [x0, x1, wx0, wx1] of spans(w1, SYNTHESIS_TILE, SYNTHESIS_HALO)) {
      const ph = Math.min(y1 * STRIDE1, height) - y0 * STRIDE1;
      const pw = Math.min(x1 * STRIDE1, width) - x0 * STRIDE1;
      if (ph <= 0 || pw <= 0) continue;
      const th = wy1 - wy0, tw = wx1 - wx0;
      let window = z1;
      if (th !== h1 || tw !== w1) {
        window = new Float32Array(m * th * tw);
        for (let c = 0; c < m; c++) {
          for (let r = 0; r < th; r++) {
            const src = (c * h1 + wy0 + r) * w1 + wx0;
            window.set(z1.subarray(src, src + tw), (c * th + r) * tw);
          }
        }
      }
      const out = await synthesis.run({ z1: new ort.Tensor("float32", window, [1, m, th, tw]), quality: q });
      put8bit(rgba, width, out.x.data, th * STRIDE1, tw * STRIDE1, (y0 - wy0) * STRIDE1,
        (x0 - wx0) * STRIDE1, y0 * STRIDE1, x0 * STRIDE1, ph, pw);
      out.x.dispose?.();
    }
  }
}
