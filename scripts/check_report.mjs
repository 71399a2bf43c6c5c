// Render a `hogsvm compare` report.html in headless Chromium (Debian's, through playwright-core)
// and check it: no failed request and no fetch of anything but the file itself and data: URIs,
// every <img> decoded (naturalWidth > 0), every expected chart <svg> present, non-empty and
// carrying its text labels. Saves a full-page screenshot. Exit 0 = all good, 1 = a check
// failed, 2 = could not run.
//
// usage: node check_report.mjs REPORT_DIR [SCREENSHOT.png]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const [dir, shotArg] = process.argv.slice(2);
if (!dir) {
  console.error('usage: node check_report.mjs REPORT_DIR [SCREENSHOT.png]');
  process.exit(2);
}
const htmlPath = path.resolve(dir, 'report.html');
const jsonPath = path.resolve(dir, 'report.json');
for (const p of [htmlPath, jsonPath]) {
  if (!fs.existsSync(p)) {
    console.error(`check_report: ${p}: no such file`);
    process.exit(2);
  }
}
const shot = path.resolve(shotArg || path.join(dir, 'report.png'));
const report = JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
const pageUrl = pathToFileURL(htmlPath).href;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

const failures = [];
const requests = [];
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hogsvm-check-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
try {
  // Anything but the page itself and data: URIs is an external fetch: record it and refuse it.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url === pageUrl || url.startsWith('data:')) return route.continue();
    failures.push(`external fetch: ${url}`);
    return route.abort();
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on('request', (r) => requests.push(r.url()));
  page.on('requestfailed', (r) =>
    failures.push(`request failed: ${r.url().slice(0, 120)} (${r.failure()?.errorText})`));
  page.on('response', (r) => {
    if (r.status() >= 400) failures.push(`HTTP ${r.status()}: ${r.url().slice(0, 120)}`);
  });
  page.on('pageerror', (e) => failures.push(`page error: ${e.message}`));
  const resp = await page.goto(pageUrl, { waitUntil: 'load' });
  if (!resp) failures.push('no response for the page');

  const found = await page.evaluate(() => {
    const imgs = [...document.images].map((i) => ({
      alt: i.alt,
      complete: i.complete,
      w: i.naturalWidth,
      h: i.naturalHeight,
      data: i.src.startsWith('data:image/png;base64,'),
    }));
    const svgs = {};
    for (const fig of document.querySelectorAll('figure.chart')) {
      const svg = fig.querySelector('svg');
      if (!svg) {
        svgs[fig.id] = null;
        continue;
      }
      const box = svg.getBoundingClientRect();
      svgs[fig.id] = {
        elements: svg.querySelectorAll('*').length,
        texts: [...svg.querySelectorAll('text')].map((t) => t.textContent.trim()).filter(Boolean),
        width: box.width,
        height: box.height,
      };
    }
    return { imgs, svgs, title: document.title };
  });

  const n = report.pipelines.length;
  const expected = [
    'chart-accuracy-time',
    'chart-f1',
    ...report.pipelines.map((_, i) => `chart-confusion-${i}`),
    // the CNN's per-epoch training curves, for every pipeline with an epoch history
    ...report.pipelines.flatMap((p, i) => (p.training.history && p.training.history.length ? [`chart-training-${i}`] : [])),
    // the learning curve and the training time against size, with --train-sizes
    ...(report.learning_curve ? ['chart-learning-curve', 'chart-time-vs-size'] : []),
    // accuracy against model size, with compare --deploy's variants
    ...(report.pipelines.some((p) => p.variants && p.variants.length) ? ['chart-accuracy-size'] : []),
  ];
  for (const id of expected) {
    const s = found.svgs[id];
    if (!s) {
      failures.push(`chart ${id}: missing`);
      continue;
    }
    if (s.elements < 10 || s.width < 50 || s.height < 50) {
      failures.push(`chart ${id}: empty (${s.elements} elements, ${s.width}x${s.height})`);
    }
    if (s.texts.length === 0) failures.push(`chart ${id}: no text labels`);
  }
  // Every crossover estimate is marked (by its label) on the learning-curve chart.
  if (report.learning_curve && found.svgs['chart-learning-curve']) {
    const texts = found.svgs['chart-learning-curve'].texts.join('\n');
    for (const x of report.learning_curve.crossovers.filter((x) => x.estimate !== null)) {
      if (!texts.includes(`${x.cnn} > ${x.classical}`)) {
        failures.push(`chart-learning-curve: crossover ${x.cnn} > ${x.classical} not marked`);
      }
    }
  }
  // Labels that must be readable in the charts.
  const allText = Object.values(found.svgs).filter(Boolean).flatMap((s) => s.texts).join('\n');
  for (const p of report.pipelines) {
    if (!allText.includes(p.name)) failures.push(`charts never name pipeline ${p.name}`);
  }
  for (const c of report.data.class_names) {
    if (!allText.includes(c)) failures.push(`charts never name class ${c}`);
  }
  for (const img of found.imgs) {
    if (!img.complete || img.w === 0 || img.h === 0) failures.push(`broken image: ${img.alt}`);
    if (!img.data) failures.push(`image not inlined as a PNG data URI: ${img.alt}`);
  }
  const hogImgs = Math.min(4, report.data.class_names.length) * 2;
  const galleryImgs = report.pipelines.reduce((a, p) => a + p.misclassified.length, 0);
  if (found.imgs.length !== hogImgs + galleryImgs) {
    failures.push(`expected ${hogImgs + galleryImgs} images (HOG ${hogImgs}, gallery ${galleryImgs}), found ${found.imgs.length}`);
  }
  fs.mkdirSync(path.dirname(shot), { recursive: true });
  await page.screenshot({ path: shot, fullPage: true });
  const summary = {
    page: htmlPath,
    pipelines: n,
    charts: expected.length,
    images: found.imgs.length,
    requests: requests.length,
    screenshot: shot,
    failures,
  };
  console.log(JSON.stringify(summary, null, 2));
} finally {
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
if (failures.length) {
  console.error(`check_report: FAILED, ${failures.length} problem(s)`);
  process.exit(1);
}
console.log('check_report: OK');
