// End-to-end test of the browser demo: serves dist/ (from `trunk build --release`), opens it in
// headless Chromium twice, with WebGPU (--enable-unsafe-webgpu, SwiftShader) and without it (the
// CPU fallback), uploads an image pair and checks that every per-head number equals
// `amcl-train score --json` for the same files and weights (within 1e-3). Then bad input:
// a non-image upload and a weights URL that 404s, each a visible message on a page that keeps
// working. Screenshots go to target/web-e2e/ for review.
//
// Usage: node tests/web/e2e.mjs   (from the repository root, after `trunk build --release` and
// `cargo build --release -p amcl-train`)

import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { readFileSync, mkdirSync, existsSync, statSync } from "node:fs";
import { join, extname, resolve } from "node:path";

const root = resolve(new URL("../..", import.meta.url).pathname);
const dist = join(root, "dist");
const out = join(root, "target", "web-e2e");
mkdirSync(out, { recursive: true });
const fail = (msg) => { console.error(`FAIL: ${msg}`); process.exitCode = 1; };

const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".css": "text/css", ".png": "image/png" };
const server = createServer((req, res) => {
  const path = join(dist, decodeURIComponent(new URL(req.url, "http://x").pathname));
  const file = existsSync(path) && statSync(path).isDirectory() ? join(path, "index.html") : path;
  if (!file.startsWith(dist) || !existsSync(file)) { res.writeHead(404); res.end("not found"); return; }
  res.writeHead(200, { "Content-Type": types[extname(file)] || "application/octet-stream" });
  res.end(readFileSync(file));
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const base = `http://127.0.0.1:${server.address().port}/`;

const weights = join(root, "web", "model.bpk");
const imageA = join(root, "web", "examples", "disc.png");
const imageB = join(root, "web", "examples", "ring.png");
const cli = JSON.parse(execFileSync(join(root, "target", "release", "amcl-train"),
  ["score", imageA, imageB, "--weights", weights, "--device", "cpu", "--json"]).toString());

const common = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
  "--disable-sync", "--no-first-run", "--disable-gpu-sandbox"];
const modes = [
  { name: "webgpu", args: ["--enable-unsafe-webgpu"], backend: "WebGPU" },
  { name: "cpu", args: [], backend: "CPU (wasm)" },
];

for (const mode of modes) {
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: [...common, ...mode.args] });
  const page = await browser.newPage({ viewport: { width: 1000, height: 1100 } });
  const logs = [];
  page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => logs.push(`pageerror: ${e}`));
  try {
    await page.goto(base);
    await page.waitForSelector("body[data-ready='1']", { timeout: 120_000 });
    const backend = await page.textContent("[data-testid=backend]");
    if (backend !== mode.backend) fail(`${mode.name}: backend badge says ${backend}, expected ${mode.backend}`);

    await page.fill("[data-testid=augs]", "");
    await page.setInputFiles("[data-testid=image-b]", imageB);
    await page.setInputFiles("[data-testid=image-a]", imageA);
    await page.waitForSelector("body[data-scored]", { timeout: 120_000 });
    let worst = 0;
    for (const h of cli.heads) {
      for (const [key, testid] of [["similarity", "head-similarity"], ["tau_pos", "head-tau"], ["scaled", "head-scaled"], ["omega", "head-omega"]]) {
        const shown = Number(await page.getAttribute(`[data-testid=${testid}-${h.head}]`, "data-value"));
        const diff = Math.abs(shown - h[key]);
        worst = Math.max(worst, diff);
        if (!(diff <= 1e-3)) fail(`${mode.name}: head ${h.head} ${key} = ${shown}, amcl-train says ${h[key]}`);
      }
    }
    const amcl = Number(await page.getAttribute("[data-testid=amcl-score]", "data-value"));
    if (!(Math.abs(amcl - cli.amcl_score) <= 1e-3)) fail(`${mode.name}: AMCL score ${amcl} vs ${cli.amcl_score}`);
    console.log(`${mode.name}: backend ${backend}, ${cli.heads.length} heads match amcl-train score (max |diff| ${worst.toExponential(2)})`);
    await page.screenshot({ path: join(out, `demo-${mode.name}.png`), fullPage: true });

    // Bad input: a file that is not an image.
    await page.setInputFiles("[data-testid=image-a]", { name: "notes.png", mimeType: "image/png", buffer: Buffer.from("not an image") });
    await page.waitForSelector("[data-testid=message]:not([hidden])", { timeout: 30_000 });
    const text = await page.textContent("[data-testid=message]");
    if (!/notes\.png is not a readable PNG or JPEG image/.test(text)) fail(`${mode.name}: non-image message: ${text}`);
    // ...and the page keeps working.
    const before = await page.getAttribute("body", "data-scored");
    await page.setInputFiles("[data-testid=image-a]", imageA);
    await page.waitForFunction((n) => document.body.dataset.scored !== n, before, { timeout: 60_000 });
  } catch (e) {
    fail(`${mode.name}: ${e}\n${logs.join("\n")}`);
    await page.screenshot({ path: join(out, `failure-${mode.name}.png`), fullPage: true }).catch(() => {});
  }
  await browser.close();
}

// A weights URL that 404s: a visible message naming it.
{
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: common });
  const page = await browser.newPage();
  await page.goto(`${base}?weights=missing.bpk&embed=1`);
  await page.waitForSelector("body[data-ready='1']", { timeout: 120_000 });
  const text = await page.textContent("[data-testid=message]");
  if (!/missing\.bpk.*404/.test(text)) fail(`404 weights: message was ${text}`);
  else console.log(`404 weights: "${text}"`);
  await page.screenshot({ path: join(out, "demo-embed-404.png") });
  await browser.close();
}

server.close();
if (process.exitCode) console.error("web e2e: FAILED"); else console.log(`web e2e: ok (screenshots in ${out})`);
