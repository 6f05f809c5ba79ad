// Takes README.md's screenshot of the embedded lesson (docs/img/demo-lesson.png): dist/ (from
// `trunk build --release`) served on a local port, opened in headless Chromium (CPU fallback, so
// the picture does not depend on a GPU) at a course page's column width, with the link a teacher
// would embed: the lesson alone, every other panel hidden.
//
// Usage: node tests/web/readme-screenshot.mjs   (from the repository root, after the build)

import { chromium } from "playwright-core";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { serve } from "./serve.mjs";

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
const { server, base } = await serve([{ prefix: "/", dir: dist }]);

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true });
try {
  const page = await browser.newPage({ viewport: VIEWPORT });
  await page.goto(`${base}/${LINK}`);
  await page.waitForFunction(() => Number(document.body.dataset.lesson || 0) > 0, null, { timeout: 180_000 });
  await page.screenshot({ path: target });
  console.log(`wrote ${target} (${VIEWPORT.width}x${VIEWPORT.height})`);
} finally {
  await browser.close();
  server.close();
}
