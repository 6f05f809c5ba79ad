// End-to-end test of the browser demo, as a visitor and as a course page use it. Serves dist/
// (from `trunk build --release`) and opens it in headless Chromium:
//  1. twice, with WebGPU (--enable-unsafe-webgpu, SwiftShader) and without it (the CPU fallback):
//     an uploaded pair, and one image augmented into two views (augs abcde, seed 7), must give
//     every per-head number of `amcl-train score --json` for the same files and weights (1e-3);
//     so must two of the shipped photographs chosen by their buttons, and the lesson's three
//     pairs, whose sentences must hold for those numbers in every head; the status line names the
//     bytes downloaded and each score's time; a non-image and a corrupt (truncated) image each
//     show a message and the page keeps working;
//  1c. axe-core's accessibility audit (no serious or critical violation) at 1000 and 375 px,
//     nothing wider than a phone's screen, the lesson reachable and run from the keyboard;
//  1d. the augmentation explorer: a slider and a checkbox rescore live, as amcl-train does;
//  1b. a teacher's link: the state in the URL (images, augmentations, seed, lesson, hidden
//     panels) is shown, and the page's own "Copy link" reproduces its views and numbers;
//  1e. several images: the 16 photographs' matrices and principal-component projections per
//     head, where an image's two views lie closer than two different images, and the link
//     (matrix=photos) reproduces them;
//  2. as a course page embeds it: under a sub-path, with the Content-Security-Policy that
//     README.md gives, and ?embed=1; a file dropped on the page, a 24-megapixel image (downscaled),
//     one over the 64-megapixel limit (refused), several images (a similarity matrix per head);
//  3. a teacher's own model (?weights=URL, 2 heads, trained here with amcl-train); weights URLs
//     that 404, hold no weights, or hold another architecture: each a visible message;
//  4. the GPU device lost mid-session (GPUDevice.destroy()): the page switches to the CPU.
// Screenshots go to target/web-e2e/ for review.
//
// Usage: node tests/web/e2e.mjs   (from the repository root, after `trunk build --release` and
// `cargo build --release -p amcl-train`); E2E_ONLY=pca,link runs only the steps named.

import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import { serve } from "./serve.mjs";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { deflateSync, crc32 } from "node:zlib";

const root = resolve(new URL("../..", import.meta.url).pathname);
const dist = join(root, "dist");
const out = join(root, "target", "web-e2e");
const extra = join(out, "served");
mkdirSync(extra, { recursive: true });
const fail = (msg) => { console.error(`FAIL: ${msg}`); process.exitCode = 1; };
const amclTrain = (args) => execFileSync(join(root, "target", "release", "amcl-train"), args).toString();

// The policy README.md tells course pages to serve the demo with.
const readme = readFileSync(join(root, "README.md"), "utf8");
const csp = /Content-Security-Policy[^`]*`([^`]+)`/.exec(readme)?.[1];
if (!csp) throw new Error("README.md does not state the Content-Security-Policy");

// dist/ at / and at a course-like sub-path (the latter with README's CSP); extra files at /extra/.
const SUB = "/courses/ml/amcl/";
const { server, base } = await serve([
  { prefix: SUB, dir: dist, headers: { "Content-Security-Policy": csp } },
  { prefix: "/extra/", dir: extra },
  { prefix: "/", dir: dist },
]);

// An RGB PNG of w x h (a gradient; compresses well, so even a huge one is a small file).
function png(w, h) {
  const row = Buffer.alloc(1 + 3 * w);
  for (let x = 0; x < w; x++) row.set([(x * 255 / w) | 0, 128, 255 - ((x * 255 / w) | 0)], 1 + 3 * x);
  const raw = Buffer.concat(Array.from({ length: h }, () => row));
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type), data]);
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

const weights = join(root, "web", "model.bpk");
const example = (name) => join(root, "web", "examples", name);
const [imageA, imageB] = [example("disc.png"), example("ring.png")];
const cliPair = JSON.parse(amclTrain(["score", imageA, imageB, "--weights", weights, "--device", "cpu", "--json"]));
const cliViews = JSON.parse(amclTrain(["score", imageA, "--augs", "abcde", "--seed", "7", "--weights", weights, "--device", "cpu", "--json"]));
// Two of the shipped photographs (web/examples/photos), as the page scores them from their buttons.
const photo = (name) => example(join("photos", name));
// The lesson's pairs (web/examples/lessons.json), as amcl-train scores them.
const lessonPlan = JSON.parse(readFileSync(example("lessons.json"), "utf8"));
const cliLesson = Object.fromEntries(lessonPlan.pairs.map((p) => [p.kind, JSON.parse(amclTrain(["score",
  photo(p.a), ...(p.b ? [photo(p.b)] : []), "--augs", lessonPlan.augs, "--seed", String(lessonPlan.seed),
  "--weights", weights, "--device", "cpu", "--json"]))]));
const cliPhotos = JSON.parse(amclTrain(["score", photo("cat-1.jpg"), photo("cat-2.jpg"), "--weights", weights, "--device", "cpu", "--json"]));

const common = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
  "--disable-sync", "--no-first-run", "--disable-gpu-sandbox"];
const WEBGPU = ["--enable-unsafe-webgpu"];

async function open(args, url, viewport = { width: 1000, height: 1100 }, init = null) {
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: [...common, ...args] });
  const page = await browser.newPage({ viewport });
  const logs = [];
  page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => logs.push(`pageerror: ${e}`));
  if (init) await page.addInitScript(init);
  await page.goto(url);
  await page.waitForSelector("body[data-ready='1']", { timeout: 120_000 });
  return { browser, page, logs };
}

// Runs `act` and waits until the page has scored once more (body[data-scored] counts scores),
// with image A named `name` (body[data-scored-a]).
async function scored(page, act, name) {
  const count = () => page.evaluate(() => Number(document.body.dataset.scored || 0));
  const before = await count();
  await act();
  await page.waitForFunction(([n, a]) => Number(document.body.dataset.scored || 0) > n && document.body.dataset.scoredA === a,
    [before, name], { timeout: 120_000 });
}

async function message(page) {
  await page.waitForSelector("[data-testid=message]:not([hidden])", { timeout: 60_000 });
  return page.textContent("[data-testid=message]");
}

// Every per-head number on the page against `amcl-train score --json`.
async function compare(page, cli, what) {
  let worst = 0;
  const rows = await page.locator("[data-testid^=head-similarity-]").count();
  if (rows !== cli.heads.length) fail(`${what}: ${rows} heads shown, amcl-train has ${cli.heads.length}`);
  for (const h of cli.heads) {
    for (const [key, testid] of [["similarity", "head-similarity"], ["tau_pos", "head-tau"], ["scaled", "head-scaled"], ["omega", "head-omega"]]) {
      const shown = Number(await page.getAttribute(`[data-testid=${testid}-${h.head}]`, "data-value"));
      const diff = Math.abs(shown - h[key]);
      worst = Math.max(worst, diff);
      if (!(diff <= 1e-3)) fail(`${what}: head ${h.head} ${key} = ${shown}, amcl-train says ${h[key]}`);
    }
  }
  const amcl = Number(await page.getAttribute("[data-testid=amcl-score]", "data-value"));
  worst = Math.max(worst, Math.abs(amcl - cli.amcl_score));
  if (!(Math.abs(amcl - cli.amcl_score) <= 1e-3)) fail(`${what}: AMCL score ${amcl} vs ${cli.amcl_score}`);
  console.log(`${what}: ${cli.heads.length} heads match amcl-train score (max |diff| ${worst.toExponential(2)})`);
}

// E2E_ONLY=pca,embedded runs only the steps named (while working on them); unset, all run.
const only = (process.env.E2E_ONLY || "").split(",").filter(Boolean);

async function step(name, run) {
  if (only.length && !only.includes(name)) return;
  let opened = null;
  try {
    await run((o) => { opened = o; return o; });
  } catch (e) {
    fail(`${name}: ${e}\n${opened ? opened.logs.join("\n") : ""}`);
    if (opened) await opened.page.screenshot({ path: join(out, `failure-${name}.png`), fullPage: true }).catch(() => {});
  }
  if (opened) await opened.browser.close();
}

// 1. WebGPU and the CPU fallback: the numbers of amcl-train score.
const timings = {}; // per mode, written to target/web-e2e/timings.json
for (const mode of [{ name: "webgpu", args: WEBGPU, backend: "WebGPU" }, { name: "cpu", args: [], backend: "CPU (wasm)" }]) {
  await step(mode.name, async (keep) => {
    const { page } = keep(await open(mode.args, `${base}/`));
    const backend = await page.textContent("[data-testid=backend]");
    if (backend !== mode.backend) fail(`${mode.name}: backend badge says ${backend}, expected ${mode.backend}`);

    // The status line names what was downloaded; every score reports its time.
    const loading = await page.textContent("[data-testid=loading]");
    if (!/^downloaded: program [\d.]+ MB, weights [\d.]+ MB$/.test(loading)) fail(`${mode.name}: loading status: ${loading}`);
    else console.log(`${mode.name}: "${loading}"`);

    await page.fill("[data-testid=augs]", "");
    await page.setInputFiles("[data-testid=image-b]", imageB);
    await scored(page, () => page.setInputFiles("[data-testid=image-a]", imageA), "disc.png");
    await compare(page, cliPair, `${mode.name} pair`);
    const time = await page.textContent("[data-testid=score-time]");
    if (!/^scored in [\d.]+ ms$/.test(time)) fail(`${mode.name}: score time: ${time}`);
    else console.log(`${mode.name}: ${time}`);
    await page.screenshot({ path: join(out, `demo-${mode.name}.png`), fullPage: true });


    // One image, two augmented views, as `amcl-train score A --augs abcde --seed 7`.
    await page.fill("[data-testid=augs]", "abcde");
    await page.fill("[data-testid=seed]", "7");
    await scored(page, () => page.setInputFiles("[data-testid=image-b]", []), "disc.png");
    await compare(page, cliViews, `${mode.name} augmented views`);

    // Bad input: a file that is not an image; the page keeps working.
    await page.setInputFiles("[data-testid=image-a]", { name: "notes.png", mimeType: "image/png", buffer: Buffer.from("not an image") });
    const text = await message(page);
    if (!/notes\.png is not a readable PNG or JPEG image/.test(text)) fail(`${mode.name}: non-image message: ${text}`);
    await scored(page, () => page.setInputFiles("[data-testid=image-a]", imageA), "disc.png");
    // A corrupt image: the first 100 bytes of a PNG.
    await page.setInputFiles("[data-testid=image-a]", { name: "truncated.png", mimeType: "image/png", buffer: readFileSync(imageA).subarray(0, 100) });
    const corrupt = await message(page);
    if (!/truncated\.png is not a readable PNG or JPEG image/.test(corrupt)) fail(`${mode.name}: corrupt image message: ${corrupt}`);
    else console.log(`${mode.name}: "${corrupt}"; the next upload is scored`);
    await scored(page, () => page.setInputFiles("[data-testid=image-a]", imageB), "ring.png");

    // The photographs' buttons: with a pair chosen, a click starts a new pair as image A (two
    // augmented views of it), the next click adds image B (scored here without augmentations).
    await scored(page, () => page.setInputFiles("[data-testid=image-b]", imageA), "ring.png");
    await scored(page, () => page.click("[data-testid='example-cat-1.jpg']"), "cat-1.jpg");
    await page.fill("[data-testid=augs]", "");
    await scored(page, () => page.click("[data-testid='example-cat-2.jpg']"), "cat-1.jpg");
    await compare(page, cliPhotos, `${mode.name} two photographs`);

    // The lesson: three pairs side by side, amcl-train's numbers, and the sentences under them
    // true of those numbers in every head.
    await page.click("[data-testid=lesson-button]");
    await page.waitForFunction(() => Number(document.body.dataset.lesson || 0) > 0, null, { timeout: 120_000 });
    const shown = (key, kind, h) => page.getAttribute(`[data-testid=lesson-${key}-${kind}-${h}]`, "data-value").then(Number);
    for (const [kind, cli] of Object.entries(cliLesson)) {
      for (const h of cli.heads) {
        for (const [key, field] of [["s", "similarity"], ["tau", "tau_pos"], ["scaled", "scaled"]]) {
          const value = await shown(key, kind, h.head);
          if (!(Math.abs(value - h[field]) <= 1e-3)) fail(`${mode.name} lesson ${kind} head ${h.head}: ${key} ${value} vs amcl-train ${h[field]}`);
        }
      }
    }
    let tauClaim = null;
    for (const h of cliLesson.views.heads.map((x) => x.head)) {
      const s = {}, tau = {};
      for (const kind of ["views", "same_class", "other_class"]) {
        s[kind] = await shown("s", kind, h);
        tau[kind] = await shown("tau", kind, h);
      }
      if (!(s.views > s.same_class && s.views > s.other_class)) fail(`${mode.name} lesson head ${h}: two views do not have the highest s: ${JSON.stringify(s)}`);
      if (!(s.same_class > s.other_class)) fail(`${mode.name} lesson head ${h}: one class not above two classes: ${JSON.stringify(s)}`);
      const t = Object.values(tau);
      const claim = await page.getAttribute("[data-testid=lesson-sentence-other_class]", "data-claim");
      const flat = Math.max(...t) < 1.2 * Math.min(...t);
      const rising = tau.views < tau.same_class && tau.same_class < tau.other_class;
      if (claim === "one-level" ? !flat : claim === "sharpens" ? !rising : claim !== "varies")
        fail(`${mode.name} lesson head ${h}: the sentence on tau+ (${claim}) is not true of ${JSON.stringify(tau)}`);
      tauClaim = claim;
    }
    const heads = cliLesson.views.heads.map((x) => x.head);
    if (tauClaim === "varies") {
      // Chosen only when neither stronger sentence holds in every head.
      const tauOf = (kind, h) => cliLesson[kind].heads[h].tau_pos;
      const kinds = ["views", "same_class", "other_class"];
      const flatAll = heads.every((h) => { const t = kinds.map((k) => tauOf(k, h)); return Math.max(...t) < 1.2 * Math.min(...t); });
      const risingAll = heads.every((h) => tauOf("views", h) < tauOf("same_class", h) && tauOf("same_class", h) < tauOf("other_class", h));
      if (flatAll || risingAll) fail(`${mode.name} lesson: "varies" shown although a stronger sentence holds`);
    }
    console.log(`${mode.name}: the lesson's three pairs match amcl-train and bear out its sentences (tau+: ${tauClaim})`);
    await page.screenshot({ path: join(out, `demo-lesson-${mode.name}.png`), fullPage: true });

    // Timings, reported (never asserted): the time per score, median of 5 with the model warm.
    const times = [];
    for (let i = 0; i < 5; i++) {
      await scored(page, () => page.click("[data-testid=score]"), "cat-1.jpg");
      times.push(Number(await page.getAttribute("[data-testid=score-time]", "data-value")));
    }
    times.sort((x, y) => x - y);
    timings[mode.name] = { ...timings[mode.name], score_ms_median_of_5: times[2] };
  });
  // Time to first score after page load: a link that scores two views of a photo on arrival.
  await step(`${mode.name}-first-score`, async (keep) => {
    const { page } = keep(await open(mode.args, `${base}/?a=photos/cat-1.jpg&augs=abcde&seed=0`));
    await page.waitForFunction(() => document.body.dataset.scoredA === "cat-1.jpg", null, { timeout: 120_000 });
    const ms = await page.evaluate(() => performance.now());
    timings[mode.name] = { ...timings[mode.name], first_score_after_load_ms: ms };
    console.log(`${mode.name}: first score ${(ms / 1000).toFixed(1)} s after the page started loading; then ${Math.round(timings[mode.name].score_ms_median_of_5)} ms per score (median of 5)`);
  });
}
if (Object.keys(timings).length) writeFileSync(join(out, "timings.json"), JSON.stringify(timings, null, 1));

// 1c. Everyone can use it: axe-core's audit of the page with the lesson shown (no serious or
// critical violation), at a desktop width and at a phone's 375 px, where nothing may overflow
// sideways; the controls reachable from the keyboard.
const axeSource = readFileSync(join(root, "tests", "web", "node_modules", "axe-core", "axe.min.js"), "utf8");
async function audit(page, what) {
  await page.addScriptTag({ content: axeSource });
  const violations = await page.evaluate(async () =>
    (await window.axe.run(document, { resultTypes: ["violations"] })).violations
      .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 3) })));
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  if (bad.length) fail(`${what}: accessibility violations: ${JSON.stringify(bad)}`);
  else console.log(`${what}: axe-core finds no serious or critical violation (${violations.length} minor)`);
}
for (const width of [1000, 375]) {
  await step(`a11y-${width}`, async (keep) => {
    const { page } = keep(await open([], `${base}/?a=photos/cat-1.jpg&augs=abcde&seed=1&lesson=1`, { width, height: 900 }));
    await page.waitForFunction(() => document.body.dataset.scoredA === "cat-1.jpg" && document.body.dataset.lesson, null, { timeout: 120_000 });
    await audit(page, `${width} px`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 1) fail(`${width} px: the page is ${overflow} px wider than the window`);
    await page.screenshot({ path: join(out, `demo-${width}px.png`), fullPage: true });
    // The keyboard: Tab reaches the lesson button, and Enter on it shows the lesson again.
    const before = await page.evaluate(() => Number(document.body.dataset.lesson));
    let reached = false;
    for (let i = 0; i < 60 && !reached; i++) {
      await page.keyboard.press("Tab");
      reached = await page.evaluate(() => document.activeElement?.id === "lesson-button");
    }
    if (!reached) fail(`${width} px: Tab never reaches the lesson button`);
    await page.keyboard.press("Enter");
    await page.waitForFunction((n) => Number(document.body.dataset.lesson) > n, before, { timeout: 120_000 });
  });
}

// 1d. The augmentation explorer: a slider and a checkbox rescore live, with amcl-train's numbers
// for the same strengths (`score --crop-scale --jitter-strength --blur-max`).
const cliExplore = (augs, extra) => JSON.parse(amclTrain(["score", photo("cat-1.jpg"), "--augs", augs, "--seed", "2",
  ...extra, "--weights", weights, "--device", "cpu", "--json"]));
await step("explorer", async (keep) => {
  const { page } = keep(await open([], `${base}/?a=photos/cat-1.jpg&augs=abcde&seed=2`));
  await page.waitForFunction(() => document.body.dataset.scoredA === "cat-1.jpg", null, { timeout: 120_000 });
  const count = () => page.evaluate(() => Number(document.body.dataset.scored || 0));
  const settle = async (act) => {
    const before = await count();
    await act();
    await page.waitForFunction((n) => Number(document.body.dataset.scored || 0) > n, before, { timeout: 120_000 });
    await page.waitForTimeout(300); // a live rescore may follow the first
  };
  await settle(() => page.fill("[data-testid=crop]", "0.5"));
  await compare(page, cliExplore("abcde", ["--crop-scale", "0.5"]), "explorer crop 0.5");
  await settle(() => page.uncheck("[data-testid=aug-b]"));
  if ((await page.inputValue("[data-testid=augs]")) !== "acde") fail("explorer: unchecking b did not update the letters");
  await settle(() => page.fill("[data-testid=jitter]", "1"));
  await compare(page, cliExplore("acde", ["--crop-scale", "0.5", "--jitter-strength", "1"]), "explorer without blur, jitter 1");
  await page.click("[data-testid=copy-link]");
  await page.waitForSelector("[data-testid=copied][data-link]");
  const link = await page.getAttribute("[data-testid=copied]", "data-link");
  if (!["augs=acde", "crop=0.5", "jitter=1"].every((p) => link.includes(p))) fail(`explorer: link ${link}`);
  console.log(`explorer: live rescoring matches amcl-train (${await page.textContent("[data-testid=score-time]")})`);
});

// 1b. A teacher's link: the page's state lives in its URL. A link with images, augmentations, seed
// and hidden panels shows them; the page's own link ("Copy link") reproduces its views and numbers.
await step("link", async (keep) => {
  const link = `${base}/?a=photos/cat-1.jpg&b=photos/cat-2.jpg&augs=&seed=3&hide=matrix,views`;
  const { page } = keep(await open([], link));
  await page.waitForFunction(() => document.body.dataset.scoredA === "cat-1.jpg", null, { timeout: 120_000 });
  await compare(page, cliPhotos, "link ?a=&b=");
  for (const [panel, visible] of [["matrix", false], ["views", false], ["scores", true], ["lesson", true]]) {
    if ((await page.isVisible(`section.${panel}`)) !== visible) fail(`link hide=matrix,views: section ${panel} visible is ${!visible}`);
  }
  // Build a state by hand, then take the page's link to a fresh page.
  await page.fill("[data-testid=augs]", "abcd");
  await page.fill("[data-testid=seed]", "5");
  await scored(page, () => page.click("[data-testid='example-dog-1.jpg']"), "dog-1.jpg");
  await page.click("[data-testid=lesson-button]");
  await page.waitForFunction(() => Number(document.body.dataset.lesson || 0) > 0, null, { timeout: 120_000 });
  await page.click("[data-testid=copy-link]");
  await page.waitForSelector("[data-testid=copied][data-link]");
  const copied = await page.getAttribute("[data-testid=copied]", "data-link");
  const expected = ["a=photos/dog-1.jpg", "augs=abcd", "seed=5", "lesson=1", "hide=matrix,views"];
  if (expected.some((part) => !copied.includes(part))) fail(`copied link ${copied} lacks one of ${expected}`);
  const numbers = (p) => p.$$eval("[data-testid^=head-], [data-testid^=lesson-s-]", (els) => els.map((e) => `${e.dataset.testid}=${e.dataset.value}`).join(" "));
  const before = await numbers(page);
  const again = await open([], copied);
  try {
    await again.page.waitForFunction(() => document.body.dataset.scoredA === "dog-1.jpg" && document.body.dataset.lesson, null, { timeout: 120_000 });
    const after = await numbers(again.page);
    if (after !== before) fail(`link round trip: numbers differ\n  before ${before}\n  after  ${after}`);
    else console.log(`link: ${copied.replace(base, "")} reproduces all ${before.split(" ").length} numbers`);
  } finally {
    await again.browser.close();
  }
});

// 1e. Several images: the 16 photographs, per head a similarity matrix and the embeddings on their
// two principal components; matrix=photos in the link brings the same picture back.
await step("pca", async (keep) => {
  const { page } = keep(await open([], `${base}/?augs=abcde&seed=2&crop=0.5`, { width: 1000, height: 1400 }));
  await page.click("[data-testid=matrix-photos]");
  await page.waitForFunction(() => document.body.dataset.matrix, null, { timeout: 120_000 });
  const points = (p) => p.$$eval("[data-testid^=pca-]", (els) => els.map((e) => JSON.parse(e.dataset.points)));
  const heads = await points(page);
  if (heads.length !== cliPair.heads.length) fail(`pca: ${heads.length} projections for ${cliPair.heads.length} heads`);
  for (const [c, p] of heads.entries()) {
    if (p.length !== 32 || p.flat().some((v) => !Number.isFinite(v))) { fail(`pca head ${c}: ${p.length} points`); continue; }
    // What the picture shows: an image's two views lie closer together than two different images.
    const d = (i, j) => Math.hypot(p[i][0] - p[j][0], p[i][1] - p[j][1]);
    let positive = 0, other = 0, count = 0;
    for (let i = 0; i < 16; i++) {
      positive += d(i, 16 + i) / 16;
      for (let j = 0; j < 16; j++) if (j !== i) { other += d(i, 16 + j); count++; }
    }
    other /= count;
    if (!(positive < other)) fail(`pca head ${c}: views of one photo ${positive.toFixed(3)} apart, different photos ${other.toFixed(3)}`);
    else console.log(`pca head ${c}: views of one photo ${positive.toFixed(3)} apart on average, different photos ${other.toFixed(3)}`);
  }
  const link = await page.evaluate(() => location.href);
  if (!link.includes("matrix=photos")) fail(`pca: the link ${link} lacks matrix=photos`);
  await page.locator("section.matrix figure").first().screenshot({ path: join(out, "demo-pca.png") });
  const again = await open([], link, { width: 1000, height: 1400 });
  try {
    await again.page.waitForFunction(() => document.body.dataset.matrix, null, { timeout: 120_000 });
    if (JSON.stringify(await points(again.page)) !== JSON.stringify(heads)) fail("pca: the link did not reproduce the projection");
    else console.log(`pca: ${link.replace(base, "")} reproduces the ${heads.length} projections`);
  } finally {
    await again.browser.close();
  }
});

// 2. Embedded in a course page: sub-path, README's CSP, ?embed=1, drop, huge images, matrix.
await step("embedded", async (keep) => {
  const { page, logs } = keep(await open(WEBGPU, `${base}${SUB}?embed=1`, { width: 720, height: 560 }));
  const backend = await page.textContent("[data-testid=backend]");
  if (backend !== "WebGPU") fail(`embedded: backend ${backend} under the CSP`);
  if (logs.some((l) => /Content.Security.Policy|Refused to/i.test(l))) fail(`embedded: CSP violations:\n${logs.join("\n")}`);
  await page.screenshot({ path: join(out, "demo-embed.png") });

  // Drag and drop a file onto image A's zone.
  const bytes = [...readFileSync(imageA)];
  await scored(page, async () => {
    const dataTransfer = await page.evaluateHandle((b) => {
      const dt = new DataTransfer();
      dt.items.add(new File([new Uint8Array(b)], "dropped.png", { type: "image/png" }));
      return dt;
    }, bytes);
    await page.dispatchEvent("#drop-a", "drop", { dataTransfer });
  }, "dropped.png");
  console.log("embedded: a dropped file was scored");

  // 24 megapixels: decoded and downscaled in the page; 80 megapixels: refused with a message.
  writeFileSync(join(extra, "large.png"), png(6000, 4000));
  const t0 = Date.now();
  await scored(page, () => page.setInputFiles("[data-testid=image-a]", join(extra, "large.png")), "large.png");
  console.log(`embedded: a 6000x4000 image was scored in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  writeFileSync(join(extra, "huge.png"), png(10000, 8000));
  await page.setInputFiles("[data-testid=image-a]", join(extra, "huge.png"));
  const text = await message(page);
  if (!/huge\.png is 10000x8000 pixels, more than the 64 megapixels/.test(text)) fail(`embedded: huge image message: ${text}`);
  else console.log(`embedded: "${text}"`);
  await scored(page, () => page.setInputFiles("[data-testid=image-a]", imageA), "disc.png");

  // Several images: a similarity matrix per head, each row's hardest negative named.
  await page.setViewportSize({ width: 1000, height: 1400 });
  await page.evaluate(() => document.body.classList.remove("embed"));
  const files = ["disc.png", "ring.png", "stripes.png", "checker.png"].map(example);
  await page.setInputFiles("[data-testid=images]", files);
  await page.waitForSelector("[data-testid=matrix-0]", { timeout: 120_000 });
  const heads = cliPair.heads.length;
  for (let c = 0; c < heads; c++) {
    const caption = await page.textContent(`figure:has([data-testid=matrix-${c}]) figcaption`);
    const rows = [...caption.matchAll(/(\d+)->(\d+) \(([\d.]+)\)/g)];
    if (rows.length !== files.length || rows.some(([, i, j, tau]) => i === j || !(Number(tau) > 0))) {
      fail(`matrix head ${c}: caption ${caption}`);
    }
    const size = await page.getAttribute(`[data-testid=matrix-${c}]`, "width");
    if (!(Number(size) > 0)) fail(`matrix head ${c}: canvas width ${size}`);
  }
  for (let c = 0; c < heads; c++) {
    const n = await page.$eval(`[data-testid=pca-${c}]`, (e) => JSON.parse(e.dataset.points).length);
    if (n !== 2 * files.length) fail(`matrix head ${c}: ${n} projected views for ${files.length} images`);
  }
  console.log(`embedded: ${heads} similarity matrices and projections of ${files.length} images, hardest negatives marked`);
  await page.screenshot({ path: join(out, "demo-matrix.png"), fullPage: true });
});

// 3. A teacher's own model, and weights URLs that do not work.
const own = join(out, "own-model");
amclTrain(["pretrain", "--data", "synthetic", "--epochs", "1", "--train-size", "32", "--test-size", "20",
  "--batch-size", "16", "--width", "4", "--hidden", "32", "--dim", "16", "--heads", "2", "--device", "cpu",
  "--out", own]);
amclTrain(["export", "--weights", join(own, "model.bpk"), "--out", join(extra, "own.bpk")]);
const cliOwn = JSON.parse(amclTrain(["score", imageA, imageB, "--weights", join(extra, "own.bpk"), "--device", "cpu", "--json"]));
await step("own-model", async (keep) => {
  const { page } = keep(await open([], `${base}/?weights=/extra/own.bpk`));
  const info = await page.textContent("#model-info");
  if (!/2 heads/.test(info)) fail(`own model: model info says ${info}`);
  await page.fill("[data-testid=augs]", "");
  await page.setInputFiles("[data-testid=image-b]", imageB);
  await scored(page, () => page.setInputFiles("[data-testid=image-a]", imageA), "disc.png");
  await compare(page, cliOwn, "own model (?weights=)");
});
// Weights of another architecture: the manifest claims d = 32 over tensors of d = 16.
const ownBytes = readFileSync(join(extra, "own.bpk"));
const claim = ownBytes.indexOf('"dim":16');
if (claim < 0) throw new Error("own.bpk: no \"dim\":16 in its manifest");
writeFileSync(join(extra, "other-arch.bpk"), Buffer.concat([ownBytes.subarray(0, claim), Buffer.from('"dim":32'), ownBytes.subarray(claim + 8)]));
for (const [url, expected] of [
  ["missing.bpk", /missing\.bpk.*404/],
  ["examples/disc.png", /examples\/disc\.png is not a usable weights file/],
  ["/extra/other-arch.bpk", /other-arch\.bpk is not a usable weights file: .*does not match the manifest's architecture/],
]) {
  await step(`weights ${url.split("/").pop()}`, async (keep) => {
    const { page } = keep(await open([], `${base}/?weights=${url}&embed=1`));
    const text = await message(page);
    if (!expected.test(text)) fail(`weights ${url}: message was ${text}`);
    else console.log(`weights ${url}: "${text}"`);
    if (url === "missing.bpk") await page.screenshot({ path: join(out, "demo-embed-404.png") });
  });
}

// 4. The GPU device lost mid-session: the page goes on on the CPU with the same numbers.
const keepDevices = () => {
  const request = GPUAdapter.prototype.requestDevice;
  window.testGpuDevices = [];
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await request.apply(this, args);
    window.testGpuDevices.push(device);
    return device;
  };
};
await step("device-lost", async (keep) => {
  const { page } = keep(await open(WEBGPU, `${base}/`, undefined, keepDevices));
  await page.fill("[data-testid=augs]", "");
  await page.setInputFiles("[data-testid=image-b]", imageB);
  await scored(page, () => page.setInputFiles("[data-testid=image-a]", imageA), "disc.png");
  const devices = await page.evaluate(() => { window.testGpuDevices.forEach((d) => d.destroy()); return window.testGpuDevices.length; });
  if (devices < 1) fail("device-lost: the page created no GPU device");
  await page.waitForFunction(() => document.querySelector("[data-testid=backend]").textContent === "CPU (wasm)", null, { timeout: 60_000 });
  const text = await message(page);
  if (!/GPU device was lost/.test(text)) fail(`device-lost: message ${text}`);
  await scored(page, () => page.click("[data-testid=score]"), "disc.png");
  await compare(page, cliPair, "after GPU device loss (now CPU)");
});

server.close();
if (process.exitCode) console.error("web e2e: FAILED"); else console.log(`web e2e: ok (screenshots in ${out})`);
