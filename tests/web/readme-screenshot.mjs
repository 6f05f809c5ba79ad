// Takes README.md's three screenshots of the demo: dist/ (from `trunk build --release`) served on a
// local port and opened in headless Chromium.
//  - docs/demo.png: the whole page on WebGPU (SwiftShader, `--enable-unsafe-webgpu`), a
//    photograph augmented into two views and scored by every head.
//  - docs/img/demo-lesson.png: the embedded lesson, every other panel hidden, at a course page's
//    column width, the link README's section for teachers shows; on the CPU fallback, so the
//    picture does not depend on a GPU.
//  - docs/img/demo-pca.png: the several-images panel of the 16 photographs, its first head's
//    similarity matrix and PCA (CPU fallback).
//
// Usage: node tests/web/readme-screenshot.mjs   (from the repository root, after the build)

import { chromium } from "playwright-core";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { serve } from "./serve.mjs";

const root = resolve(new URL("../..", import.meta.url).pathname);
const dist = join(root, "dist");

const SHOTS = [
  {
    target: join(root, "docs", "demo.png"),
    link: "?a=photos/dog-1.jpg&augs=abcde&seed=0",
    viewport: { width: 1000, height: 1300 },
    args: ["--enable-unsafe-webgpu"],
    ready: () => document.body.dataset.scoredA === "dog-1.jpg",
    fullPage: true,
  },
  {
    target: join(root, "docs", "img", "demo-lesson.png"),
    link: "?embed=1&lesson=1&hide=inputs,explorer,views,scores,matrix",
    viewport: { width: 760, height: 833 },
    args: [],
    ready: () => Number(document.body.dataset.lesson || 0) > 0,
    fullPage: false,
  },
  {
    target: join(root, "docs", "img", "demo-pca.png"),
    link: "?matrix=photos",
    viewport: { width: 1000, height: 1300 },
    args: [],
    ready: () => Boolean(document.body.dataset.matrix),
    element: "section.matrix figure",
  },
];

if (!existsSync(join(dist, "index.html"))) {
  console.error("dist/index.html not found: run `trunk build --release` first");
  process.exit(1);
}
const { server, base } = await serve([{ prefix: "/", dir: dist }]);
try {
  for (const shot of SHOTS) {
    const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: shot.args });
    try {
      const page = await browser.newPage({ viewport: shot.viewport });
      await page.goto(`${base}/${shot.link}`);
      await page.waitForFunction(shot.ready, null, { timeout: 180_000 });
      if (shot.element) await page.locator(shot.element).first().screenshot({ path: shot.target });
      else await page.screenshot({ path: shot.target, fullPage: shot.fullPage });
      console.log(`wrote ${shot.target} (${shot.viewport.width} px wide)`);
    } finally {
      await browser.close();
    }
  }
} finally {
  server.close();
}
