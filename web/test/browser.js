// Decode .nnc files through the viewer page (web/index.html) in headless Chromium:
//
//   node test/browser.js --out DIR [--repeat N] [--cold N] [--screenshot PNG] [--webgpu] FILE.nnc ...
//
// writes DIR/<name>.rgba (the decoded RGBA bytes) and DIR/results.json (size, decode
// times in ms: ``warm`` runs on the loaded page, ``cold`` runs each on a fresh page load
// with no HTTP cache; where the time went; the bytes the page downloaded). The pixels are
// compared with `nnc decompress` by tests/test_web.py. Chromium: $CHROMIUM or
// /usr/bin/chromium (Debian's package), never one downloaded at install time.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import puppeteer from "puppeteer-core";
import { serve } from "./serve.js";

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  if (i < 0) return dflt;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const out = opt("--out");
const repeat = Number(opt("--repeat", "1"));
const cold = Number(opt("--cold", "0"));
const screenshot = opt("--screenshot");
// --webgpu: the WebGPU build on Chromium's software Vulkan (SwiftShader), the only
// WebGPU adapter a machine without a GPU has
const webgpu = args.includes("--webgpu");
if (webgpu) args.splice(args.indexOf("--webgpu"), 1);
const files = args;
if (!out || !files.length) {
  console.error("usage: node test/browser.js --out DIR [--repeat N] [--cold N] [--screenshot PNG] [--webgpu] FILE.nnc ...");
  process.exit(2);
}

const server = await serve(0);
const base = `http://127.0.0.1:${server.address().port}/`;
const profile = await mkdtemp(join(tmpdir(), "nnc-chromium-"));
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  userDataDir: profile,
  args: ["--headless", "--no-sandbox", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    ...(webgpu ? ["--enable-unsafe-webgpu", "--enable-features=Vulkan", "--use-angle=swiftshader"]
      : ["--disable-gpu"])],
});

async function openViewer() {
  const page = await browser.newPage();
  await page.setCacheEnabled(false);
  let downloaded = 0;
  const sizes = {};
  page.on("requestfinished", async (req) => {
    try {
      const n = Number(req.response().headers()["content-length"]);
      downloaded += n;
      sizes[new URL(req.url()).pathname] = n;
    } catch { /* redirects, aborted */ }
  });
  page.on("pageerror", (e) => console.error("page error:", e.message));
  await page.setViewport({ width: 900, height: 760 });
  await page.goto(base + (webgpu ? "index.html?webgpu" : "index.html"), { waitUntil: "load" });
  await page.waitForFunction(() => document.documentElement.dataset.ready === "1");
  return { page, stats: () => ({ downloaded, sizes: { ...sizes } }) };
}

async function decodeOn(page, bytes, name) {
  return page.evaluate(async (b64, name) => {
    const bin = atob(b64);
    const data = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) data[i] = bin.charCodeAt(i);
    try {
      const r = await window.nncViewer.show(data, name);
      let s = "";
      for (let i = 0; i < r.rgba.length; i += 0x8000) s += String.fromCharCode(...r.rgba.subarray(i, i + 0x8000));
      return { width: r.width, height: r.height, ms: r.ms, timings: r.timings, rgba: btoa(s),
        isolated: crossOriginIsolated };
    } catch (e) {
      return { error: e.message };
    }
  }, Buffer.from(bytes).toString("base64"), name);
}

const results = {};
try {
  const viewer = await openViewer();
  for (const file of files) {
    const name = basename(file);
    const bytes = await readFile(file);
    const runs = [];
    for (let i = 0; i < repeat; i++) runs.push(await decodeOn(viewer.page, bytes, name));
    const r = runs[0];
    if (r.error) {
      results[name] = { error: r.error };
      continue;
    }
    await writeFile(join(out, `${name}.rgba`), Buffer.from(r.rgba, "base64"));
    results[name] = { width: r.width, height: r.height, bytes: bytes.length, isolated: r.isolated,
      warm_ms: runs.map((x) => x.ms), timings: runs.map((x) => x.timings) };
    const colds = [];
    for (let i = 0; i < cold; i++) {
      const v = await openViewer();
      const c = await decodeOn(v.page, bytes, name);
      colds.push({ ms: c.ms, timings: c.timings, ...v.stats() });
      await v.page.close();
    }
    if (cold) results[name].cold = colds;
  }
  // <nnc-img>: a golden file drawn by the element (the same pixels as decode()), and a
  // file it cannot decode (an "error" event, the alt text shown)
  results._element = await viewer.page.evaluate(async (name) => {
    const show = (src) => new Promise((resolve) => {
      const el = document.createElement("nnc-img");
      el.alt = "a test image";
      el.addEventListener("load", () => resolve({ el, ok: true }));
      el.addEventListener("error", (e) => resolve({ el, ok: false, message: e.detail }));
      el.src = src;
      document.body.append(el);
    });
    const good = await show(`/golden/${name}`);
    let same = false;
    if (good.ok) {
      const canvas = good.el.shadowRoot.querySelector("canvas");
      const drawn = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
      const { decode } = await import("./nnc.js");
      const bytes = await (await fetch(`/golden/${name}`)).arrayBuffer();
      const direct = (await decode(bytes)).data;
      same = drawn.length === direct.length && drawn.every((v, i) => v === direct[i]);
    }
    const bad = await show("/golden/golden.json");
    const fallback = bad.el.shadowRoot.querySelector("span");
    const out = { drawn: good.ok, same, refused: !bad.ok, message: bad.message,
      alt_shown: !fallback.hidden && fallback.textContent === "a test image" };
    good.el.remove();
    bad.el.remove();
    return out;
  }, "2026-11-30-kodim23-crop-q50.nnc");
  if (screenshot) await viewer.page.screenshot({ path: screenshot });
  results._page = viewer.stats();
} finally {
  await browser.close();
  server.close();
  await rm(profile, { recursive: true, force: true });
}
await writeFile(join(out, "results.json"), JSON.stringify(results, null, 1));
for (const [k, v] of Object.entries(results)) {
  if (!k.startsWith("_")) console.log(k, v.error ? `ERROR ${v.error}` : `${v.width}x${v.height} warm ms ${v.warm_ms.map(Math.round)}`);
}
