// A static server for web/ (and formats/golden/ under /golden/), cross-origin isolated so
// that onnxruntime-web may use WASM threads: `node test/serve.js [port]` prints its URL.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { extname, normalize } from "node:path";

const WEB = fileURLToPath(new URL("../", import.meta.url));
const GOLDEN = fileURLToPath(new URL("../../formats/golden/", import.meta.url));
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript",
  ".json": "application/json", ".wasm": "application/wasm", ".png": "image/png" };

export function serve(port = 0) {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
    if (path.includes("..")) { res.writeHead(403).end(); return; }
    const file = path.startsWith("/golden/") ? GOLDEN + path.slice(8) : WEB + (path === "/" ? "index.html" : path.slice(1));
    try {
      const data = await readFile(file);
      res.writeHead(200, { "Content-Type": TYPES[extname(file)] || "application/octet-stream",
        "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
        "Cache-Control": "no-store", "Content-Length": data.length });
      res.end(data);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const s = await serve(Number(process.argv[2] || 8028));
  console.log(`http://127.0.0.1:${s.address().port}/`);
}
