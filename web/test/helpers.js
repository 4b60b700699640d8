// Shared by the Node tests: the repository's folders, a ModelStore reading weights/ from
// disk, and a file's integers in the layout of formats/golden/vectors/*.codes.json.
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { ModelStore } from "../src/model.js";
import { readFile as readNnc, readCodes } from "../src/codes.js";
import { sha256Hex } from "../src/model.js";

export const ROOT = new URL("../../", import.meta.url);
export const GOLDEN = new URL("formats/golden/", ROOT);
export const VECTORS = new URL("vectors/", GOLDEN);
export const WEIGHTS = new URL("weights/", ROOT);

export const diskStore = () => new ModelStore(WEIGHTS, async (url) => {
  try {
    const data = await readFile(fileURLToPath(url));
    return { ok: true, status: 200, arrayBuffer: async () => data.buffer.slice(data.byteOffset, data.byteOffset + data.length) };
  } catch {
    return { ok: false, status: 404 };
  }
});

export const readJson = async (url) => JSON.parse(await readFile(fileURLToPath(url), "utf8"));
export const readBytes = async (url) => new Uint8Array(await readFile(fileURLToPath(url)));

const f32Bits = (v) => new Uint32Array(new Float32Array([v]).buffer)[0];

/** Decode a file's integers with the web decoder (throws NncError when refused). */
export async function integers(data, store, maxPixels) {
  const file = readNnc(data, maxPixels);
  const c = await readCodes(file, await store.model(file.header.model_name));
  const h = c.header;
  const { kmax } = c.level1;
  const rows = [];
  for (let b = 0; b < c.level1.shards.length; b++) rows.push([...c.level1.indices.subarray(b * kmax, b * kmax + kmax)]);
  return {
    header: {
      width: h.width, height: h.height, channels: h.channels, alpha: h.alpha,
      quality_bits: f32Bits(h.quality), seed: h.seed, l1_block_w: h.l1_block_w,
      l1_block_h: h.l1_block_h, l1_shard_bits: h.l1_shard_bits, l1_max_shards: h.l1_max_shards,
      l1_shard_decay_bits: f32Bits(h.l1_shard_decay), l2_index_bits: h.l2_index_bits,
      l2_max_group: h.l2_max_group, model_name: h.model_name, weights_sha256: h.weights_sha256,
    },
    shape2: c.shape2, shape1: c.shape1,
    l2_outlier_positions: c.level2.positions, l2_outlier_values: c.level2.values,
    group_sizes: c.level2.sizes, l2_indices: c.level2.indices,
    l1_outlier_positions: c.level1.positions, l1_outlier_values: c.level1.values,
    shards: [...c.level1.shards], l1_indices: rows,
    alpha_sha256: c.alpha ? await sha256Hex(c.alpha) : null,
    codes: c,
  };
}
