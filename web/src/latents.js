// The shared randomness and the two latents a file's integers stand for:
// formats/nnc-v1.md §4 (mix32, words, the Gaussian transform G) and §3 (z2; u, the
// prior-standardized level-1 latent).
const fround = Math.fround;

/** lowbias32 on u32 values (Math.imul wraps modulo 2^32). */
export function mix32(x) {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** mix32(mix32(mix32(seed) ^ stream) ^ block): the key of (seed, stream, block). */
export function blockKey(seed, stream, block) {
  return mix32(mix32(mix32(seed) ^ stream) ^ block);
}

export function word(seed, stream, block, candidate, dim) {
  return mix32(mix32(blockKey(seed, stream, block) ^ candidate) ^ dim);
}

const G_SMALL = [3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
  -0.00125372503, -0.00417768164, 0.246640727, 1.50140941];
const G_LARGE = [0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
  -0.0076224613, 0.00943887047, 1.00167406, 2.83297682];

/** §4 G: the Gaussian of a word's top 24 bits k, as a binary32 value (a JS number). */
export function gaussianOfK(k) {
  const x = k * 2 ** -23 + (2 ** -24 - 1); // exact
  const w = -Math.log((1 - x) * (1 + x));
  let p;
  if (w < 5) {
    const t = w - 2.5;
    p = 2.81022636e-08;
    for (const c of G_SMALL) p = c + p * t;
  } else {
    const t = Math.sqrt(w) - 3;
    p = -0.000200214257;
    for (const c of G_LARGE) p = c + p * t;
  }
  return fround((p * x) * 1.4142135623730951);
}

export const gaussian = (w) => gaussianOfK(w >>> 8);

const STREAM_LEVEL1 = 0x10000;
const STREAM_LEVEL2 = 0x20000;
const STEP = fround(128 / 65535);
const dequantize = (v) => fround(fround(v * STEP) - 64); // §3 outliers

/** §3 level 2: z2 (Float32Array, C order over (G, H/64, W/64)). */
export function level2Latent(level2, n2, seed) {
  const z2 = new Float32Array(n2);
  const isOutlier = new Uint8Array(n2);
  level2.positions.forEach((p, i) => { z2[p] = dequantize(level2.values[i]); isOutlier[p] = 1; });
  let dim = 0;
  for (let g = 0; g < level2.sizes.length; g++) {
    const h = mix32(blockKey(seed, STREAM_LEVEL2, g) ^ level2.indices[g]);
    for (let i = 0; i < level2.sizes[g]; i++) {
      while (isOutlier[dim]) dim++;
      z2[dim++] = gaussian(mix32(h ^ i));
    }
  }
  return z2;
}

/** §3 level 1: u (Float32Array, C order over (M, H/16, W/16)). */
export function level1Latent(level1, shape1, header) {
  const [m, h1, w1] = shape1;
  const bh = header.l1_block_h, bw = header.l1_block_w, dims = bh * bw;
  const { shards, indices, kmax } = level1;
  const nBlocks = shards.length;
  const sample = new Float32Array(nBlocks * dims); // block order
  const rho = header.l1_shard_decay;
  for (let k = 0; k < kmax; k++) {
    for (let b = 0; b < nBlocks; b++) {
      const K = shards[b];
      if (K <= k) continue;
      const w = rho >= 1 ? 1 / K : (rho ** k * (1 - rho)) / (1 - rho ** K);
      const scale = fround(Math.sqrt(w));
      const h = mix32(blockKey(header.seed, STREAM_LEVEL1 + k, b) ^ indices[b * kmax + k]);
      for (let d = 0; d < dims; d++) {
        const i = b * dims + d;
        sample[i] = fround(sample[i] + fround(gaussian(mix32(h ^ d)) * scale));
      }
    }
  }
  level1.positions.forEach((p, i) => { sample[p] = dequantize(level1.values[i]); });
  // blocks (M, rows, cols, bh, bw) to the latent (M, h1, w1)
  const u = new Float32Array(sample.length);
  const rows = h1 / bh, cols = w1 / bw;
  for (let c = 0; c < m; c++) {
    for (let r = 0; r < rows; r++) {
      for (let q = 0; q < cols; q++) {
        const b = (c * rows + r) * cols + q;
        for (let y = 0; y < bh; y++) {
          const dst = (c * h1 + r * bh + y) * w1 + q * bw;
          u.set(sample.subarray(b * dims + y * bw, b * dims + y * bw + bw), dst);
        }
      }
    }
  }
  return u;
}
