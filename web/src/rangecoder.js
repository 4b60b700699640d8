// The range decoder and its three models, formats/entropy-coding.md §E1-§E7.
// 64-bit state in BigInt; the models' arithmetic in binary64 (JavaScript numbers), each
// operation rounded once, in the spec's order (JavaScript never fuses operations).
import { NncError } from "./errors.js";

export const PRECISION = 24;
export const ONE = 1 << PRECISION; // 2^24: every model's total
const MASK64 = (1n << 64n) - 1n;
const TWO32 = 1n << 32n;

// --- §E7 exp: fdlibm's, operation by operation -----------------------------------------
const f64 = (hi, lo) => {
  const v = new DataView(new ArrayBuffer(8));
  v.setUint32(0, hi);
  v.setUint32(4, lo);
  return v.getFloat64(0);
};
const LN2HI = f64(0x3fe62e42, 0xfee00000);
const LN2LO = f64(0x3dea39ef, 0x35793c76);
const INVLN2 = f64(0x3ff71547, 0x652b82fe);
const P1 = f64(0x3fc55555, 0x5555553e);
const P2 = f64(0xbf66c16c, 0x16bebd93);
const P3 = f64(0x3f11566a, 0xaf25de2c);
const P4 = f64(0xbebbbd41, 0xc5d26bf1);
const P5 = f64(0x3e663769, 0x72bea4d0);
const scratch = new DataView(new ArrayBuffer(8));

/** y * 2^k rounded once (§E7 step 4): 2^k as an exact double, in two steps below 2^-1022. */
function ldexp(y, k) {
  if (k >= -1022) return y * 2 ** k;
  return (y * 2 ** (k + 1022)) * 2 ** -1022; // the first product is exact (normal)
}

export function expE7(x) {
  scratch.setFloat64(0, x);
  const word = scratch.getUint32(0);
  const sign = word >>> 31;
  const hx = word & 0x7fffffff;
  if (hx >= 0x4086232b) {
    if (x !== x) return x;
    if (x > 709.782712893383973096) return Infinity;
    if (x < -745.13321910194110842) return 0;
  }
  let k, hi, lo, r;
  if (hx > 0x3fd62e42) {
    if (hx >= 0x3ff0a2b2) k = Math.trunc(INVLN2 * x + (sign ? -0.5 : 0.5));
    else k = sign ? -1 : 1;
    hi = x - k * LN2HI; // k * LN2HI is exact
    lo = k * LN2LO;
    r = hi - lo;
  } else if (hx > 0x3e300000) {
    k = 0; hi = x; lo = 0; r = x;
  } else {
    return 1 + x;
  }
  const t = r * r;
  const c = r - t * (P1 + t * (P2 + t * (P3 + t * (P4 + t * P5))));
  const y = 1 + ((r * c) / (2 - c) - lo + hi);
  return k === 0 ? y : ldexp(y, k);
}

// --- §E3-§E5 the models: lookup(q) -> [symbol, C(s), C(s+1)] -----------------------------
export class Uniform {
  constructor(n) {
    this.n = n;
    this.w = Math.floor(ONE / n);
  }
  lookup(q) {
    const s = Math.min(Math.floor(q / this.w), this.n - 1);
    return [s, s * this.w, s === this.n - 1 ? ONE : (s + 1) * this.w];
  }
}

export class Categorical {
  /** §E4 from binary64 weights (any array-like of numbers). */
  constructor(weights) {
    const n = weights.length;
    if (n < 2) throw new NncError("format", "a categorical model needs two symbols or more");
    const c = new Float64Array(n + 1);
    let s = 0;
    const partial = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      partial[i] = s;
      s = s + weights[i];
    }
    if (!(s > 0 && Number.isFinite(s))) {
      throw new NncError("format", "a categorical model's weights do not sum to a positive number");
    }
    const f = (ONE - n) / s;
    for (let i = 0; i < n; i++) c[i] = Math.trunc(partial[i] * f) + i;
    c[n] = ONE;
    this.c = c;
  }
  lookup(q) {
    const c = this.c;
    let lo = 0, hi = c.length - 2; // the largest s with C(s) <= q
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (c[mid] <= q) lo = mid; else hi = mid - 1;
    }
    return [lo, c[lo], c[lo + 1]];
  }
}

export class QuantizedLaplace {
  /** §E5 on {0, ..., vmax}: mean and scale binary64. */
  constructor(mean, scale, vmax) {
    this.mean = mean;
    this.scale = scale;
    this.vmax = vmax;
    this.fw = ONE - 1 - vmax;
  }
  cdf(x) {
    if (x <= this.mean) return 0.5 * expE7((x - this.mean) / this.scale);
    return 1 - 0.5 * expE7(-(x - this.mean) / this.scale);
  }
  c(s) {
    if (s <= 0) return 0;
    if (s > this.vmax) return ONE;
    return Math.trunc(this.fw * this.cdf(s - 0.5)) + s;
  }
  lookup(q) {
    let lo = 0, hi = this.vmax;
    while (lo < hi) {
      const mid = Math.floor((lo + hi + 1) / 2);
      if (this.c(mid) <= q) lo = mid; else hi = mid - 1;
    }
    return [lo, this.c(lo), this.c(lo + 1)];
  }
}

// --- §E1-§E2 the stream and the decoder ---------------------------------------------------
export const SPLIT = 4096; // §E6

export class RangeDecoder {
  /** @param {Uint8Array} bytes the stream (a multiple of 4 bytes, §E1) */
  constructor(bytes) {
    if (bytes.length % 4) {
      throw new NncError("format", "a range-coded stream's length is not a multiple of 4 bytes");
    }
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    this.nWords = bytes.length / 4;
    this.next = 0;
    this.lower = 0n;
    this.range = MASK64;
    this.point = (BigInt(this.word()) << 32n) | BigInt(this.word());
  }
  word() { // past the end, words read as 0
    const i = this.next++;
    return i < this.nWords ? this.view.getUint32(4 * i, true) : 0;
  }
  decode(model) {
    const scale = this.range >> 24n;
    const q = ((this.point - this.lower) & MASK64) / scale;
    if (q >= BigInt(ONE)) {
      throw new NncError("format", "entropy-coded data does not decode (quantile out of range)");
    }
    const [s, cLo, cHi] = model.lookup(Number(q));
    this.lower = (this.lower + scale * BigInt(cLo)) & MASK64;
    this.range = scale * BigInt(cHi - cLo);
    if (this.range < TWO32) {
      this.lower = (this.lower << 32n) & MASK64;
      this.range <<= 32n;
      this.point = ((this.point << 32n) & MASK64) | BigInt(this.word());
    }
    return s;
  }
  /** §E3/§E6: count values in [0, n); n = 1 codes nothing; n > 2^24 is split. */
  uniform(count, n) {
    const out = new Array(count).fill(0);
    if (n === 1 || count === 0) return out;
    if (n > ONE) {
      const high = this.uniform(count, Math.ceil(n / SPLIT));
      const low = this.uniform(count, SPLIT);
      for (let i = 0; i < count; i++) {
        out[i] = high[i] * SPLIT + low[i];
        if (out[i] >= n) throw new NncError("format", "a split uniform value is out of range");
      }
      return out;
    }
    const m = new Uniform(n);
    for (let i = 0; i < count; i++) out[i] = this.decode(m);
    return out;
  }
}
