// The integers of an .nnc file, read and checked before any network runs:
// formats/nnc-v1.md §3, §5 (side information and indices), §6 (alpha), §6b (iCCP), §9.
import { NncError } from "./errors.js";
import { RangeDecoder, QuantizedLaplace, Categorical } from "./rangecoder.js";
import { readContainer } from "./container.js";

const S0 = [0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0];
const S1 = [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6]; // §5.1
const SLACK_BITS = 64;
const MAX_ICC = 16 << 20; // §6b
export const MAX_PIXELS = 100_000_000; // nnc's default limit (§9 item 13)

function needBits(stream, bits, what) { // §5.6
  if (8 * stream.length + SLACK_BITS < bits) {
    throw new NncError("format", `the ${what} is too short for the symbols it must carry`);
  }
}

/** §5.2 (Z2SA chained, Z2SI), §5.3, §5.6. */
function readLevel2(side, ix, n2, h, chained) {
  if (side.length < 11) throw new NncError("format", "level-2 side information is too short");
  const dv = new DataView(side.buffer, side.byteOffset, side.length);
  const nOut = dv.getUint32(0, true), nGroups = dv.getUint32(4, true);
  const s0 = side[8], s1 = side[9], m0 = side[10];
  if (nOut > n2 || nGroups > n2 || s0 >= S0.length || s1 >= S1.length) {
    throw new NncError("format", "level-2 counts are out of range");
  }
  if (nGroups * h.l2_max_group < n2 - nOut) throw new NncError("format", "too few level-2 groups for the latent");
  needBits(ix, nGroups * h.l2_index_bits, "level-2 index section");
  needBits(side.subarray(11), nOut * (Math.log2(Math.max(n2, 2)) + 16), "level-2 side information");
  const d = new RangeDecoder(side.subarray(11));
  const positions = d.uniform(nOut, n2);
  const values = d.uniform(nOut, 1 << 16);
  const vmax = h.l2_max_group - 1;
  const sizes = new Array(nGroups);
  let prev = m0, total = 0;
  for (let g = 0; g < nGroups; g++) {
    const mean = chained ? prev : m0;
    const scale = S0[s0] + S1[s1] * mean; // binary64: one product, one sum
    const v = d.decode(new QuantizedLaplace(mean, scale, vmax));
    sizes[g] = v + 1;
    total += v + 1;
    prev = v;
  }
  for (let i = 1; i < nOut; i++) {
    if (positions[i] <= positions[i - 1]) {
      throw new NncError("format", "level-2 outlier positions are not increasing");
    }
  }
  if (total !== n2 - nOut) throw new NncError("format", "level-2 grouping does not match the latent size");
  const indices = new RangeDecoder(ix).uniform(nGroups, 2 ** h.l2_index_bits);
  return { positions, values, sizes, indices };
}

/** §5.4 C0 = max(1, rint(1024 * fl((T + 1/2) / rowsum))) per context row (Float64Array). */
function initialCounts(table, n) {
  const out = new Float64Array(table.length);
  for (let row = 0; row < n * n; row++) {
    let total = 0;
    for (let v = 0; v < n; v++) total += table[row * n + v] + 0.5;
    for (let v = 0; v < n; v++) {
      const x = ((table[row * n + v] + 0.5) / total) * 1024;
      let r = Math.round(x); // rint: round half to even
      if (r - x === 0.5 && r % 2 !== 0) r -= 1;
      out[row * n + v] = Math.max(1, r);
    }
  }
  return out;
}

/** §5.4 (Z1SA adaptive, Z1SI), §5.5, §5.6. ``table``: the count table T, flat, C order. */
function readLevel1(side, ix, m, rows, cols, h, table, adaptive) {
  const K = h.l1_max_shards, n = K + 1;
  if (table.length !== n * n * n) {
    throw new NncError("format", "the file's l1_max_shards does not match its model's shard table");
  }
  if (side.length < 4) throw new NncError("format", "level-1 side information is too short");
  const nOut = new DataView(side.buffer, side.byteOffset, 4).getUint32(0, true);
  const n1 = m * rows * cols * h.l1_block_w * h.l1_block_h;
  if (nOut > n1) throw new NncError("format", "more level-1 outliers than latents");
  needBits(side.subarray(4), nOut * (Math.log2(Math.max(n1, 2)) + 16), "level-1 side information");
  const d = new RangeDecoder(side.subarray(4));
  const positions = d.uniform(nOut, n1);
  const values = d.uniform(nOut, 1 << 16);
  if (new Set(positions).size !== nOut) throw new NncError("format", "repeated level-1 outlier positions");
  const nb = rows * cols;
  const shards = new Int32Array(m * nb); // block order (channel, block row, block column)
  let channels = [...Array(m).keys()];
  let counts = null, live = null;
  if (adaptive) {
    live = d.uniform(m, 2);
    channels = channels.filter((c) => live[c]);
    counts = initialCounts(table, n);
  }
  const ctx = new Int32Array(channels.length);
  for (let r = 0; r < rows; r++) {
    for (let col = 0; col < cols; col++) {
      for (let i = 0; i < channels.length; i++) {
        const base = channels[i] * nb;
        const a = r ? Math.min(shards[base + (r - 1) * cols + col], K) : 0;
        const l = col ? Math.min(shards[base + r * cols + col - 1], K) : 0;
        ctx[i] = a * n + l;
      }
      // every channel's weights taken before any update of this position
      const models = channels.map((_, i) => {
        const row = ctx[i] * n;
        if (adaptive) return new Categorical(counts.slice(row, row + n));
        const w = new Float64Array(n);
        for (let v = 0; v < n; v++) w[v] = table[row + v] + 0.5;
        return new Categorical(w);
      });
      for (let i = 0; i < channels.length; i++) {
        shards[channels[i] * nb + r * cols + col] = d.decode(models[i]);
      }
      if (adaptive) {
        for (let i = 0; i < channels.length; i++) {
          counts[ctx[i] * n + shards[channels[i] * nb + r * cols + col]] += 16;
        }
      }
    }
  }
  let total = 0, kmax = 0;
  for (const s of shards) { total += s; kmax = Math.max(kmax, s); }
  needBits(ix, total * h.l1_shard_bits, "level-1 index section");
  const indices = new Int32Array(shards.length * kmax).fill(-1); // (blocks, kmax)
  const dix = new RangeDecoder(ix);
  for (let k = 0; k < kmax; k++) { // shard step k, blocks in block order
    const sel = [];
    for (let b = 0; b < shards.length; b++) if (shards[b] > k) sel.push(b);
    const got = dix.uniform(sel.length, 2 ** h.l1_shard_bits);
    for (let i = 0; i < sel.length; i++) indices[sel[i] * kmax + k] = got[i];
  }
  return { positions, values, live, shards, indices, kmax };
}

function adler32(bytes) {
  let a = 1, b = 0;
  for (let i = 0; i < bytes.length; i += 3800) {
    const end = Math.min(i + 3800, bytes.length);
    for (let j = i; j < end; j++) { a += bytes[j]; b += a; }
    a %= 65521; b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/** Inflate a zlib stream, at most ``limit`` bytes (a little more may come back):
 * {data, ok: the stream ended cleanly, cut: the data was valid but ended early}. */
async function inflate(bytes, limit) {
  const ds = new DecompressionStream("deflate");
  const writer = ds.writable.getWriter();
  const reader = ds.readable.getReader();
  const parts = [];
  let size = 0;
  const reading = (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      parts.push(value);
      size += value.length;
      if (size > limit) { await reader.cancel(); return; }
    }
  })().catch(() => {});
  let failed = null;
  try {
    failed = "write"; // invalid data, a wrong checksum or bytes after the stream fail here
    await writer.write(bytes);
    failed = "close"; // a stream cut short fails here
    await writer.close();
    failed = null;
  } catch { /* failed says where */ }
  await reading;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return { data: out, ok: failed === null, cut: failed === "close" };
}

/** §6 ALPH: exactly width x height bytes. Like zlib's decompressobj in nnc, a stream cut
 * after its data (its Adler-32 missing or partial) or followed by other bytes is
 * accepted; a wrong Adler-32 that is present is refused. */
async function readAlpha(section, h) {
  const n = h.width * h.height;
  const r = await inflate(section, n);
  if (r.data.length !== n) {
    throw new NncError("format", r.ok || r.cut || r.data.length > n ? "the alpha plane has the wrong size"
      : "the alpha plane does not decompress");
  }
  if (!r.ok && !r.cut) { // bytes after a whole stream (its checksum right), or damage
    const a = adler32(r.data);
    const tail = [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255];
    let whole = false;
    for (let i = 2; i + 4 < section.length && !whole; i++) {
      if (tail.every((b, k) => section[i + k] === b)) whole = (await inflate(section.subarray(0, i + 4), n)).ok;
    }
    if (!whole) throw new NncError("format", "the alpha plane does not decompress");
  }
  return r.data;
}

/** §6b iCCP: one whole, non-empty zlib stream of at most 16 MiB (checked, returned). */
async function readIcc(section) {
  const { data, ok } = await inflate(section, MAX_ICC);
  if (data.length > MAX_ICC) throw new NncError("format", "the colour profile (iCCP) is over 16 MiB");
  if (!ok || !data.length) {
    throw new NncError("format", "the colour profile (iCCP) is cut off, empty or followed by other bytes");
  }
  return data;
}

const EXIF_MARKS = [[0x49, 0x49, 0x2a, 0x00], [0x4d, 0x4d, 0x00, 0x2a]]; // II*\0, MM\0*

/** §6c eXIf / xMPd: one whole, non-empty zlib stream of at most 16 MiB (checked, returned). */
async function readMetadata(section, what, exif) {
  const { data, ok } = await inflate(section, MAX_ICC);
  if (data.length > MAX_ICC) throw new NncError("format", `${what} is over 16 MiB`);
  if (!ok || !data.length) throw new NncError("format", `${what} is cut off, empty or followed by other bytes`);
  if (exif && !EXIF_MARKS.some((m) => m.every((b, i) => data[i] === b))) {
    throw new NncError("format", `${what} does not start with a TIFF byte-order mark`);
  }
  return data;
}

/**
 * The container's parts a decoder checks before it needs the model (§9 items 1-10, 13).
 * @returns {{version, header, sections, side2, side1}}
 */
export function readFile(data, maxPixels = MAX_PIXELS) {
  const c = readContainer(data);
  const h = c.header, s = c.sections;
  if (h.width * h.height > maxPixels) {
    throw new NncError("format", `the file declares ${h.width}x${h.height} pixels, over the limit of ${maxPixels}`);
  }
  if ((s.has("Z2SA") && s.has("Z2SI")) || (s.has("Z1SA") && s.has("Z1SI"))) {
    throw new NncError("format", "side information in two codings");
  }
  c.side2 = s.has("Z2SA") ? "Z2SA" : "Z2SI";
  c.side1 = s.has("Z1SA") ? "Z1SA" : "Z1SI";
  for (const tag of [c.side2, "Z2IX", c.side1, "Z1IX", ...(h.alpha ? ["ALPH"] : [])]) {
    if (!s.has(tag)) throw new NncError("format", `the ${tag} section is missing`);
  }
  return c;
}

/**
 * Every integer of a file (§5, §6): level-2 outliers, group sizes and indices, level-1
 * outliers, shard counts and indices, the alpha plane.
 * @param file readFile's result
 * @param model {entry: the manifest's entry, table: the count table, flat Int32Array/Float64Array}
 */
export async function readCodes(file, model) {
  const h = file.header, s = file.sections;
  if (model.entry.sha256 !== h.weights_sha256) {
    throw new NncError("model", `this file was made with other weights for model ${JSON.stringify(h.model_name)} than the ones installed`);
  }
  const g = Number(model.entry.config.g), m = Number(model.entry.config.m);
  const H = h.height + ((64 - (h.height % 64)) % 64), W = h.width + ((64 - (h.width % 64)) % 64);
  const [h2, w2, h1, w1] = [H / 64, W / 64, H / 16, W / 16];
  if (h1 % h.l1_block_h || w1 % h.l1_block_w) {
    throw new NncError("format", "the level-1 block size does not tile the latent");
  }
  const n2 = g * h2 * w2;
  const level2 = readLevel2(s.get(file.side2), s.get("Z2IX"), n2, h, file.side2 === "Z2SA");
  const level1 = readLevel1(s.get(file.side1), s.get("Z1IX"), m, h1 / h.l1_block_h, w1 / h.l1_block_w,
    h, model.table, file.side1 === "Z1SA");
  const alpha = h.alpha ? await readAlpha(s.get("ALPH"), h) : null;
  const icc = s.has("iCCP") ? await readIcc(s.get("iCCP")) : null;
  const exif = s.has("eXIf") ? await readMetadata(s.get("eXIf"), "the EXIF data (eXIf)", true) : null;
  const xmp = s.has("xMPd") ? await readMetadata(s.get("xMPd"), "the XMP packet (xMPd)", false) : null;
  return { version: file.version, header: h, shape2: [g, h2, w2], shape1: [m, h1, w1], level2, level1, alpha, icc, exif, xmp };
}
