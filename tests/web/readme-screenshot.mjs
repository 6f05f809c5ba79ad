// Takes README.md's screenshot of the embedded lesson (docs/img/demo-lesson.png): dist/ (from
// `trunk build --release`) served on a local port, opened in headless Chromium (CPU fallback, so
// the picture does not depend on a GPU) at a course page's column width, with the link a teacher
// would embed: the lesson alone, every other panel hidden.
//
// Usage: node tests/web/readme-screenshot.mjs   (from the repository root, after the build)

import { chromium } from "playwright-core";
import { createServer } from "node:http";
import { readFileSync, existsSync, statSync } from "node:fs";
import { join, extname, resolve } from "node:path";

const root = resolve(new URL("../..", import.meta.url).pathname);
const dist = join(root, "dist");
const target = join(root, "docs", "img", "demo-lesson.png");
// The link README's section for teachers shows.
const LINK = "?embed=1&lesson=1&hide=inputs,explorer,views,scores,matrix";
const VIEWPORT = { width: 760, height: 833 };

if (!existsSync(join(dist, "index.html"))) {
  console.error("dist/index.html not found: run `trunk build --release` first");
  process.exit(1);
}
const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".css": "text/css", ".png": "image/png", ".jpg": "image/jpeg", ".json": "application/json" };
const server = createServer((req, res) => {
  const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
  const full = join(dist, path);
  const file = existsSync(full) && statSync(full).isDirectory() ? join(full, "index.html") : full;
  if (!file.startsWith(dist) || !existsSync(file)) { res.writeHead(404); res.end("not found"); return; }
  res.writeHead(200, { "Content-Type": types[extname(file)] || "application/octet-stream" });
  res.end(readFileSync(file));
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true });
try {
  const page = await browser.newPage({ viewport: VIEWPORT });
  await page.goto(`http://127.0.0.1:${server.address().port}/${LINK}`);
  await page.waitForFunction(() => Number(document.body.dataset.lesson || 0) > 0, null, { timeout: 180_000 });
  await page.screenshot({ path: target });
  console.log(`wrote ${target} (${VIEWPORT.width}x${VIEWPORT.height})`);
} finally {
  await browser.close();
  server.close();
}
