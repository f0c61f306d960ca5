import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import puppeteer, { type Browser, type ElementHandle, type Page } from 'puppeteer-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalApi, startApi } from '../../lib/local/api.ts';
import { DATA_ENV, DEFAULT_DATA_DIR } from '../../lib/pipeline/data-location.ts';
import { inlinedWebPage } from '../../lib/web-page.ts';
import { LABELS } from '../../training-container/src/labels.ts';
import { SIZE, saveBrightnessModel } from '../serve/brightness-model.ts';
import { type RunningTestServer, startTestServer } from '../serve/fixtures.ts';

/**
 * The web page (web/) in a real browser: headless Chromium (Debian's `chromium` package, which
 * .ci/run installs) driven by puppeteer-core, against the local API with a tiny hand-set model.
 *
 * Without chromium the file is skipped with a message, except under CI=true, where it fails.
 * `WEB_SCREENSHOT=docs/web-page.png` saves the page with its results there; `WEB_MODEL=DIR` uses
 * another model (the README's screenshot: `.brain-tumor/endpoint/model`, the one `brain-tumor
 * local` trained), in which case the heatmap size is that model's.
 */

process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';
const KEY = 'web-test-key';
const CI = process.env.CI === 'true' || process.env.CI === '1';

function findChromium(): string | undefined {
  try {
    return execFileSync('which', ['chromium'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}
const chromium = findChromium();
if (!chromium && !CI) {
  console.warn(
    'test/web/page.test.ts skipped: no `chromium` on PATH (Debian: apt-get install chromium). Under CI=true this fails.',
  );
}

/** Two real Testing scans of different classes, or, without the dataset, two generated JPEGs. */
async function scans(dir: string): Promise<string[]> {
  const testing = path.join(process.env[DATA_ENV] ?? DEFAULT_DATA_DIR, 'Testing');
  if (existsSync(testing)) {
    const classes = (await readdir(testing)).sort();
    const picked: string[] = [];
    for (const cls of [classes[0], classes[classes.length - 1]]) {
      const files = (await readdir(path.join(testing, cls))).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort();
      if (files.length) picked.push(path.join(testing, cls, files[0]));
    }
    if (picked.length) return picked;
  }
  const made: string[] = [];
  for (const [name, square] of [
    ['scan-a.jpg', { left: 30, top: 60 }],
    ['scan-b.jpg', { left: 120, top: 40 }],
  ] as const) {
    const [w, h] = [200, 160];
    const rgb = Buffer.alloc(w * h * 3, 20);
    for (let y = square.top; y < square.top + 50; y++)
      for (let x = square.left; x < square.left + 50; x++)
        rgb.fill(230, (y * w + x) * 3, (y * w + x) * 3 + 3);
    const file = path.join(dir, name);
    await writeFile(
      file,
      await sharp(rgb, { raw: { width: w, height: h, channels: 3 } })
        .jpeg()
        .toBuffer(),
    );
    made.push(file);
  }
  return made;
}

/** Collects Content-Security-Policy violations in `window.cspViolations`. */
async function recordCspViolations(p: Page): Promise<void> {
  await p.evaluateOnNewDocument(() => {
    const w = window as unknown as { cspViolations: string[] };
    w.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) =>
      w.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`),
    );
  });
}
const cspViolations = (p: Page) =>
  p.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations);

describe.skipIf(!chromium && !CI)('web page in headless Chromium', () => {
  let dir: string;
  let server: RunningTestServer;
  let api: LocalApi;
  let browser: Browser;
  let page: Page;
  let images: string[];
  const pageErrors: string[] = [];

  beforeAll(async () => {
    if (!chromium) {
      throw new Error(
        "CI=true but no `chromium` on PATH: .ci/run installs Debian's chromium (apt-get install chromium)",
      );
    }
    dir = await mkdtemp(path.join(os.tmpdir(), 'bt-web-'));
    const modelDir = process.env.WEB_MODEL ? path.resolve(process.env.WEB_MODEL) : path.join(dir, 'model');
    if (!process.env.WEB_MODEL) await saveBrightnessModel(modelDir);
    [server, images, browser] = await Promise.all([
      startTestServer({ modelDir }),
      scans(dir),
      puppeteer.launch({
        executablePath: chromium,
        headless: true,
        // Root in a container has no user namespaces for the sandbox; /dev/shm may be tiny.
        args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
      }),
    ]);
    api = await startApi({ serveUrl: server.url, port: 0, apiKey: KEY });
    page = await browser.newPage();
    page.on('pageerror', (err) => pageErrors.push(String(err)));
    await recordCspViolations(page);
    await page.setViewport({ width: 960, height: 900 });
    const res = await page.goto(api.webUrl as string);
    expect(res?.status()).toBe(200);
  });

  afterAll(async () => {
    await browser?.close();
    await api?.close();
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const upload = async (files: string[]) => {
    const input = (await page.$('#files')) as ElementHandle<HTMLInputElement>;
    await input.uploadFile(...files);
  };
  /** Waits until `n` result cards are finished (a label or an error in each). */
  const waitForResults = (n: number) =>
    page.waitForFunction(
      (count) =>
        document.querySelectorAll('#results .result').length === count &&
        Array.from(document.querySelectorAll('#results .result')).every((c) =>
          c.querySelector('.label, .error'),
        ),
      { timeout: 30_000 },
      n,
    );

  it('is reachable from the keyboard, and every control has a label', async () => {
    const order: string[] = [];
    for (let i = 0; i < 3; i++) {
      await page.keyboard.press('Tab');
      order.push(await page.evaluate(() => document.activeElement?.id ?? ''));
    }
    expect(order).toEqual(['api-key', 'files', 'opacity']);
    const unlabelled = await page.$$eval('input', (inputs) =>
      inputs.filter((i) => !i.labels?.length).map((i) => i.id),
    );
    expect(unlabelled).toEqual([]);
    expect(await page.$eval('#status', (e) => e.getAttribute('aria-live'))).toBe('polite');
  });

  it('shows the label, four probability bars and the heatmap over each uploaded scan', async () => {
    await page.focus('#api-key');
    await page.keyboard.type(KEY);
    const started = Date.now();
    await upload(images);
    await waitForResults(images.length);
    const cards = await page.$$eval('#results .result', (els) =>
      els.map((card) => {
        const scan = card.querySelector('.scan img:not(.heatmap)') as HTMLImageElement;
        const heat = card.querySelector('img.heatmap') as HTMLImageElement | null;
        const box = (e: Element) => e.getBoundingClientRect().toJSON() as DOMRect;
        return {
          name: card.querySelector('h2')?.textContent,
          label: card.querySelector('.label strong')?.textContent,
          error: card.querySelector('.error')?.textContent,
          probs: Array.from(card.querySelectorAll('.prob')).map((row) => ({
            name: row.querySelector('dt')?.textContent,
            pct: row.querySelector('.pct')?.textContent,
            bar: (row.querySelector('.bar span') as HTMLElement).style.width,
          })),
          scan: { loaded: scan.complete && scan.naturalWidth > 0, box: box(scan) },
          heat: heat && {
            loaded: heat.complete,
            width: heat.naturalWidth,
            height: heat.naturalHeight,
            opacity: getComputedStyle(heat).opacity,
            box: box(heat),
            alt: heat.alt,
          },
        };
      }),
    );
    expect(cards).toHaveLength(images.length);
    // Newest first: the last file's card is on top.
    expect(cards.map((c) => c.name)).toEqual(images.map((f) => path.basename(f)).reverse());
    for (const card of cards) {
      expect(card.error).toBeUndefined();
      expect(LABELS).toContain(card.label);
      expect(card.probs.map((p) => p.name)).toEqual([...LABELS]);
      const pcts = card.probs.map((p) => Number.parseFloat(p.pct ?? ''));
      for (const p of pcts) expect(p).toBeGreaterThanOrEqual(0);
      expect(pcts.reduce((a, b) => a + b, 0)).toBeCloseTo(100, 0);
      // The label's bar is the longest one.
      const widths = card.probs.map((p) => Number.parseFloat(p.bar));
      expect(widths[LABELS.indexOf(card.label as (typeof LABELS)[number])]).toBe(Math.max(...widths));
      expect(card.scan.loaded).toBe(true);
      expect(card.heat).toMatchObject({ loaded: true, opacity: '0.5' });
      if (!process.env.WEB_MODEL) expect([card.heat?.width, card.heat?.height]).toEqual([SIZE, SIZE]);
      expect(card.heat?.alt).toContain(card.label);
      // Preprocessing v1 stretches the whole image: the heatmap covers the scan exactly.
      if (!process.env.WEB_MODEL) {
        for (const k of ['x', 'y', 'width', 'height'] as const)
          expect(card.heat?.box[k]).toBeCloseTo(card.scan.box[k], 0);
      }
    }
    const status = await page.$eval('#status', (e) => e.textContent ?? '');
    for (const card of cards) expect(status).toContain(`${card.name}: ${card.label}`);
    console.log(`web page: ${images.length} scans analysed in ${Date.now() - started} ms`);
  });

  it('changes the heatmap opacity with the slider from the keyboard', async () => {
    await page.focus('#opacity');
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowRight');
    const state = await page.evaluate(() => ({
      opacity: getComputedStyle(document.querySelector('img.heatmap') as Element).opacity,
      output: document.getElementById('opacity-value')?.textContent,
      valuetext: document.getElementById('opacity')?.getAttribute('aria-valuetext'),
    }));
    expect(state).toEqual({ opacity: '0.6', output: '60%', valuetext: '60%' });
    if (process.env.WEB_SCREENSHOT) {
      const file = path.resolve(process.env.WEB_SCREENSHOT);
      await mkdir(path.dirname(file), { recursive: true });
      await page.screenshot({ path: file as `${string}.png`, fullPage: true });
    }
  });

  it('shows an unreadable file as an error in words', async () => {
    const bad = path.join(dir, 'x.jpg');
    await writeFile(bad, randomBytes(2048));
    await upload([bad]);
    await waitForResults(images.length + 1);
    const text = await page.$eval('#results .result', (card) => card.querySelector('.error')?.textContent);
    expect(text).toMatch(/^This file is not a readable JPEG or PNG image\. \(HTTP 400, UNDECODABLE_IMAGE/);
    expect(await page.$eval('#status', (e) => e.textContent)).toContain('x.jpg: error. This file is not');
  });

  it('says so when the API refuses the key, and keeps the key for the tab only', async () => {
    expect(await page.evaluate(() => sessionStorage.getItem('brain-tumor-api-key'))).toBe(KEY);
    await page.reload();
    expect(await page.$eval('#api-key', (e) => (e as HTMLInputElement).value)).toBe(KEY);
    await page.$eval('#api-key', (e) => {
      (e as HTMLInputElement).value = '';
    });
    await page.type('#api-key', 'wrong');
    await upload([images[0]]);
    await waitForResults(1);
    const text = await page.$eval('#results .result .error', (e) => e.textContent);
    expect(text).toMatch(/^The API refused the key: check the API key above\. \(HTTP 403, INVALID_API_KEY/);
    expect(pageErrors).toEqual([]);
    expect(await cspViolations(page)).toEqual([]);
  });

  it("runs as the stack serves it: app.js inlined under its hash in the page's CSP, calling predict beside the stage's page", async () => {
    const { html } = inlinedWebPage();
    const stackPage = await browser.newPage();
    try {
      await recordCspViolations(stackPage);
      const errors: string[] = [];
      stackPage.on('pageerror', (err) => errors.push(String(err)));
      await stackPage.setRequestInterception(true);
      const requests: string[] = [];
      stackPage.on('request', (req) => {
        requests.push(`${req.method()} ${req.url()}`);
        if (req.url() === 'https://api.example/prod/') {
          return req.respond({
            status: 200,
            contentType: 'text/html; charset=utf-8',
            body: html,
          });
        }
        if (req.url().startsWith('https://api.example/prod/predict')) {
          // What API Gateway's gateway response answers a wrong key (lib/predict-api.ts).
          return req.respond({
            status: 403,
            contentType: 'application/json',
            body: JSON.stringify({ error: { code: 'INVALID_API_KEY', message: 'Forbidden' } }),
          });
        }
        return req.abort();
      });
      await stackPage.goto('https://api.example/prod/');
      await stackPage.type('#api-key', 'k');
      const input = (await stackPage.$('#files')) as ElementHandle<HTMLInputElement>;
      await input.uploadFile(images[0]);
      await stackPage.waitForSelector('#results .error', { timeout: 10_000 });
      expect(await stackPage.$eval('#results .error', (e) => e.textContent)).toMatch(
        /^The API refused the key/,
      );
      expect(requests).toContain('POST https://api.example/prod/predict?explain=true');
      expect(errors).toEqual([]);
      expect(await cspViolations(stackPage)).toEqual([]);
    } finally {
      await stackPage.close();
    }
  });
});
