// The web decoder's integer layer against nnc's Python reader: every golden file's
// integers (formats/golden/vectors/*.codes.json), the shared randomness (prng.json), the
// latents z2 and u of one golden file, and (when the Python test suite hands them over in
// NNC_HOSTILE_DIR) damaged files: refused exactly when nnc refuses them, otherwise the
// same integers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { GOLDEN, VECTORS, diskStore, readJson, readBytes, integers } from "./helpers.js";
import { word, gaussianOfK, mix32, level2Latent, level1Latent } from "../src/latents.js";
import { NncError } from "../src/errors.js";

const store = diskStore();
const golden = (await readJson(new URL("golden.json", GOLDEN))).files;
const stem = (name) => name.replace(/\.nnc$/, "");
const omitCodes = ({ codes, ...rest }) => rest;

for (const entry of golden) {
  test(`golden ${entry.nnc}: nnc's integers`, async () => {
    const expected = await readJson(new URL(`${stem(entry.nnc)}.codes.json`, VECTORS));
    const got = omitCodes(await integers(await readBytes(new URL(entry.nnc, GOLDEN)), store));
    assert.deepEqual(JSON.parse(JSON.stringify(got)), expected);
  });
}

test("shared randomness: mix32, words and G (§4)", async () => {
  const v = await readJson(new URL("prng.json", VECTORS));
  for (const { x, mix32: y } of v.mix32) assert.equal(mix32(x), y);
  const ulps = [];
  const check = (g, bits) => {
    const ref = new Float32Array(new Uint32Array([bits]).buffer)[0];
    const spacing = Math.abs(ref) * 2 ** -23 || 2 ** -149;
    ulps.push(Math.abs(g - ref) / spacing);
  };
  for (const w of v.words) {
    const got = word(w.seed, w.stream, w.block, w.candidate, w.dim);
    assert.equal(got, w.word);
    check(gaussianOfK(got >>> 8), w.gaussian_bits);
  }
  for (const { k, bits } of v.G) check(gaussianOfK(k), bits);
  assert.ok(Math.max(...ulps) <= 1, `G within ${Math.max(...ulps)} ulps`); // §4 allows 8
});

test("latents z2 and u of the golden vectors (§3, §11: within 1e-5)", async () => {
  const index = await readJson(new URL("2026-11-30-kodim23-crop-q50.latents.json", VECTORS));
  const arr = async (key) => new Float32Array((await readBytes(new URL(index.arrays[key].file, VECTORS))).buffer);
  const { codes } = await integers(await readBytes(new URL(index.nnc, GOLDEN)), store);
  const n2 = codes.shape2.reduce((a, b) => a * b, 1);
  const z2 = level2Latent(codes.level2, n2, codes.header.seed);
  const u = level1Latent(codes.level1, codes.shape1, codes.header);
  for (const [got, want] of [[z2, await arr("z2")], [u, await arr("u")]]) {
    assert.equal(got.length, want.length);
    let worst = 0;
    for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    assert.ok(worst <= 1e-5, `max difference ${worst}`);
  }
});

const hostile = process.env.NNC_HOSTILE_DIR;
test("damaged files: the same outcome as nnc's reader", { skip: !hostile && "NNC_HOSTILE_DIR not set (tests/test_web.py sets it)" }, async () => {
  const dir = new URL(`file://${hostile.replace(/\/?$/, "/")}`);
  const cases = await readJson(new URL("cases.json", dir));
  let refused = 0, decoded = 0;
  for (const c of cases) {
    const data = await readBytes(new URL(c.file, dir));
    let got;
    try {
      got = omitCodes(await integers(data, store, c.max_pixels));
    } catch (e) {
      if (!(e instanceof NncError)) throw new Error(`${c.file}: ${e.stack}`);
      assert.equal(c.refused, true, `${c.file} (${c.what}): nnc decodes it, the web decoder refuses: ${e.message}`);
      refused++;
      continue;
    }
    assert.equal(c.refused, false, `${c.file} (${c.what}): nnc refuses it, the web decoder does not`);
    const expected = await readJson(new URL(c.codes, dir));
    assert.deepEqual(JSON.parse(JSON.stringify(got)), expected, c.file);
    decoded++;
  }
  assert.equal(refused + decoded, cases.length);
  console.log(`# damaged files: ${refused} refused, ${decoded} decoded alike`);
});
