// Model data a decoder needs (formats/nnc-v1.md §7): the manifest, the shard-count table
// (a NumPy .npy file) and the two ONNX graphs, fetched from URLs next to the manifest and
// checked against the sha256 it records.
import { NncError } from "./errors.js";

export async function sha256Hex(bytes) {
  // Node 18 has WebCrypto only as node:crypto's webcrypto
  const subtle = globalThis.crypto?.subtle ?? (await import("node:crypto")).webcrypto.subtle;
  const d = new Uint8Array(await subtle.digest("SHA-256", bytes));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** §7: a little-endian int64 .npy array (version 1 or 2, C order) as a Float64Array. */
export function parseNpy(bytes) {
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (bytes.length < 10 || magic.some((b, i) => bytes[i] !== b)) throw new Error("not a .npy file");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const major = bytes[6];
  const hlen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = major === 1 ? 10 + hlen : 12 + hlen;
  const header = new TextDecoder("latin1").decode(bytes.subarray(major === 1 ? 10 : 12, start));
  if (!/'descr':\s*'<i8'/.test(header) || !/'fortran_order':\s*False/.test(header)) {
    throw new Error(`unsupported .npy header ${header.trim()}`);
  }
  const shape = header.match(/'shape':\s*\(([^)]*)\)/)[1].split(",").filter((x) => x.trim()).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = Number(dv.getBigInt64(start + 8 * i, true));
  return { shape, data: out };
}

/**
 * Fetches and caches the manifest and a model's files below ``base`` (a URL ending in "/").
 */
export class ModelStore {
  constructor(base, fetchImpl = globalThis.fetch.bind(globalThis)) {
    this.base = base instanceof URL ? base : new URL(base);
    this.fetch = fetchImpl;
    this.cache = new Map();
  }

  async bytes(name) {
    const url = new URL(name, this.base);
    const r = await this.fetch(url);
    if (!r.ok) throw new NncError("model", `cannot fetch ${url} (HTTP ${r.status})`);
    return new Uint8Array(await r.arrayBuffer());
  }

  async checked(file, sha256, what) {
    const data = await this.bytes(file);
    if ((await sha256Hex(data)) !== sha256) {
      throw new NncError("model", `the ${what} (${file}) is corrupt (sha256 mismatch)`);
    }
    return data;
  }

  manifest() {
    if (!this._manifest) {
      this._manifest = this.bytes("manifest.json").then((b) => JSON.parse(new TextDecoder().decode(b)));
      this._manifest.catch(() => { this._manifest = null; });
    }
    return this._manifest;
  }

  /** The manifest entry and the count table of a model (§7, §9 item 11). */
  async model(name) {
    const m = await this.manifest();
    const entry = Object.hasOwn(m.models, name) ? m.models[name] : undefined;
    if (!entry) {
      throw new NncError("model", `this file was made with model ${JSON.stringify(name)}, which is not installed here (installed: ${Object.keys(m.models).join(", ")})`);
    }
    if (!this.cache.has(name)) {
      const p = this.checked(entry.shard_table_file, entry.shard_table_sha256,
        `shard-count table of model ${JSON.stringify(name)}`)
        .then((raw) => ({ entry, table: parseNpy(raw).data }));
      p.catch(() => this.cache.delete(name));
      this.cache.set(name, p);
    }
    return this.cache.get(name);
  }

  /** The bytes of a model's ONNX graph ``part`` ("prior1" or "synthesis"), checked. */
  async graph(name, part) {
    const { entry } = await this.model(name);
    const g = entry.onnx && entry.onnx[part];
    if (!g) throw new NncError("model", `model ${JSON.stringify(name)} has no ONNX graphs`);
    return this.checked(g.file, g.sha256, `${part} graph of model ${JSON.stringify(name)}`);
  }
}
