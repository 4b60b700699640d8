// The container and the header, formats/nnc-v1.md §1, §2 (refusals: §9 items 1-9).
import { NncError } from "./errors.js";

const MAGIC = [0x89, 0x4e, 0x4e, 0x43, 0x0d, 0x0a, 0x1a, 0x0a];
export const KNOWN = ["HEAD", "Z2SA", "Z2SI", "Z2IX", "Z1SA", "Z1SI", "Z1IX", "ALPH", "iCCP", "eXIf", "xMPd", "END "];
// §1 order (§6b: iCCP after Z1IX and ALPH; §6c: eXIf, then xMPd, after iCCP)
const RANK = { Z2SA: 0, Z2SI: 0, Z2IX: 1, Z1SA: 2, Z1SI: 2, Z1IX: 3, ALPH: 4, iCCP: 5, eXIf: 6, xMPd: 7 };
const HEAD_FIXED = 41; // §2, up to name_length

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** zlib's crc32(bytes, start): CRC-32/ISO-HDLC continued from ``start``. */
export function crc32(bytes, start = 0) {
  let c = (start ^ 0xffffffff) >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function readHeader(p) {
  if (p.length < HEAD_FIXED + 1) throw new NncError("format", "the header is too short");
  const v = new DataView(p.buffer, p.byteOffset, p.length);
  const n = p[HEAD_FIXED];
  const end = HEAD_FIXED + 1 + n;
  if (p.length !== end + 32) throw new NncError("format", "the header has the wrong length");
  let name;
  try {
    name = new TextDecoder("utf-8", { fatal: true }).decode(p.subarray(HEAD_FIXED + 1, end));
  } catch {
    throw new NncError("format", "the model name is not UTF-8");
  }
  const h = {
    width: v.getUint32(0, true), height: v.getUint32(4, true), channels: p[8],
    alpha: p[9] ? 1 : 0, quality: v.getFloat32(10, true), seed: v.getUint32(14, true),
    l1_block_w: p[18], l1_block_h: p[19], l1_shard_bits: p[20], l1_max_shards: p[21],
    l1_shard_decay: v.getFloat32(22, true), l1_outlier_kl_bits: v.getFloat32(26, true),
    l2_index_bits: p[30], l2_max_group: v.getUint16(31, true),
    l2_group_kl_bits: v.getFloat32(33, true), l2_outlier_kl_bits: v.getFloat32(37, true),
    model_name: name,
    weights_sha256: [...p.subarray(end)].map((b) => b.toString(16).padStart(2, "0")).join(""),
  };
  const ok = h.width >= 1 && h.width <= 65536 && h.height >= 1 && h.height <= 65536
    && (h.channels === 1 || h.channels === 3) && h.quality >= 0 && h.quality <= 1
    && h.l1_block_w >= 1 && h.l1_block_w <= 16 && h.l1_block_h >= 1 && h.l1_block_h <= 16
    && h.l1_shard_bits >= 1 && h.l1_shard_bits <= 16 && h.l1_max_shards >= 1
    && h.l1_max_shards <= 63 && h.l1_shard_decay >= 0.01 && h.l1_shard_decay <= 1
    && h.l2_index_bits >= 1 && h.l2_index_bits <= 20 && h.l2_max_group >= 2
    && h.l2_max_group <= 4096 && n >= 1 && n <= 64;
  if (!ok) throw new NncError("format", "a header field is out of range"); // NaN fails too
  return h;
}

/**
 * §1: signature, version, sections and their CRCs.
 * @param {Uint8Array} data a whole file
 * @returns {{version: number, header: object, sections: Map<string, Uint8Array>}}
 */
export function readContainer(data) {
  if (data.length < 10 || MAGIC.some((b, i) => data[i] !== b)) {
    throw new NncError("format", "not an .nnc file (wrong signature)");
  }
  const dv = new DataView(data.buffer, data.byteOffset, data.length);
  const version = dv.getUint16(8, true);
  if (version !== 1 && version !== 2) {
    throw new NncError("format", `unsupported .nnc version ${version} (this decoder reads 1 and 2)`);
  }
  let pos = 10, previous = 0, header = null;
  const sections = new Map();
  for (let first = true; ; first = false) {
    if (pos + 8 > data.length) throw new NncError("format", "truncated: a section header is cut off");
    const rawTag = data.subarray(pos, pos + 4);
    const length = dv.getUint32(pos + 4, true);
    const end = pos + 8 + length + 4;
    if (end > data.length) throw new NncError("format", "truncated: a section is cut off");
    const payload = data.subarray(pos + 8, pos + 8 + length);
    const crc = dv.getUint32(pos + 8 + length, true);
    // version 1: every CRC from the standard start; version 2: chained (§1)
    if (crc32(payload, crc32(rawTag, version >= 2 ? previous : 0)) !== crc) {
      throw new NncError("format", "CRC mismatch");
    }
    previous = crc;
    if (rawTag.some((b) => b >= 0x80)) throw new NncError("format", "a section tag is not ASCII");
    const tag = String.fromCharCode(...rawTag);
    if (first) {
      if (tag !== "HEAD") throw new NncError("format", "the first section is not HEAD");
      header = readHeader(payload);
    } else if (tag === "END ") {
      if (end !== data.length) throw new NncError("format", "bytes after the END section");
      break;
    } else if (tag === "HEAD" || sections.has(tag)) {
      throw new NncError("format", `section ${JSON.stringify(tag)} appears twice`);
    } else if (!KNOWN.includes(tag)) {
      if (tag[0] >= "A" && tag[0] <= "Z") {
        throw new NncError("format", `unknown critical section ${JSON.stringify(tag)} (a newer format?)`);
      }
    } else {
      for (const t of sections.keys()) {
        if (RANK[t] >= RANK[tag]) throw new NncError("format", `section ${JSON.stringify(tag)} is out of order`);
      }
      sections.set(tag, payload);
    }
    pos = end;
  }
  if (sections.has("ALPH") && !header.alpha) throw new NncError("format", "an alpha section in a file without alpha");
  return { version, header, sections };
}
