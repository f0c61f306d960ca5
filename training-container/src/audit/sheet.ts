import path from 'node:path';
import sharp, { type OverlayOptions } from 'sharp';
import type { AuditReport } from './index.ts';

/**
 * Side-by-side sheets of sample pairs so a person can check the audit's calls by eye: accepted
 * pairs of each kind (the lowest-scoring ones first, as they sit nearest the threshold), every
 * label conflict, and the closest rejected candidates.
 */

export interface SheetPair {
  section: string;
  a: string;
  b: string;
  caption: string;
}

const TILE = 160;

/** Picks the pairs worth looking at: `perSection` per kind, all conflicts, and near misses. */
export function samplePairs(report: AuditReport, perSection = 12): SheetPair[] {
  const out: SheetPair[] = [];
  for (const kind of ['mirrored', 're-encoded', 'exact'] as const) {
    const all = report.pairs.filter((p) => p.kind === kind).sort((p, q) => p.correlation - q.correlation);
    // Half nearest the threshold, the rest spread evenly over the remainder.
    const low = all.slice(0, Math.ceil(perSection / 2));
    const rest = all.slice(low.length);
    const step = rest.length / Math.max(1, perSection - low.length);
    const spread =
      rest.length <= perSection - low.length
        ? rest
        : Array.from({ length: perSection - low.length }, (_, k) => rest[Math.floor(k * step)]);
    for (const p of [...low, ...spread]) {
      out.push({
        section: `${kind} pairs`,
        a: p.a,
        b: p.b,
        caption: `${kind}, correlation ${p.correlation.toFixed(4)}`,
      });
    }
  }
  for (const c of report.labelConflicts) {
    for (let k = 1; k < c.paths.length; k++) {
      if (c.labels[k] === c.labels[0]) continue;
      out.push({
        section: 'label conflicts',
        a: c.paths[0],
        b: c.paths[k],
        caption: `${c.labels[0]} vs ${c.labels[k]}`,
      });
    }
  }
  for (const m of report.nearMisses.slice(0, perSection)) {
    out.push({
      section: 'closest rejected (judged different scans)',
      a: m.a,
      b: m.b,
      caption: `rejected${m.mirrored ? ' (mirrored)' : ''}: correlation ${m.correlation.toFixed(4)}, worst block ${m.worstBlock.toFixed(3)}`,
    });
  }
  return out;
}

/** Where a report path lives on disk: the split's folder plus the rest of the path. */
export function absolutePath(report: Pick<AuditReport, 'splits'>, reportPath: string): string {
  const slash = reportPath.indexOf('/');
  const dir = report.splits[reportPath.slice(0, slash)];
  if (dir === undefined) throw new Error(`path ${reportPath} is not in any audited split`);
  return path.join(dir, reportPath.slice(slash + 1));
}

async function tile(file: string): Promise<Buffer> {
  try {
    return await sharp(file)
      .rotate()
      .resize(TILE, TILE, { fit: 'contain', background: '#202020' })
      .flatten({ background: '#202020' })
      .jpeg({ quality: 80 })
      .toBuffer();
  } catch {
    return sharp({ create: { width: TILE, height: TILE, channels: 3, background: '#600000' } })
      .jpeg()
      .toBuffer();
  }
}

const escapeHtml = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A self-contained HTML page (thumbnails embedded as data URIs). */
export async function renderHtml(report: AuditReport, pairs: SheetPair[]): Promise<string> {
  const s = report.summary;
  const sections = new Map<string, string[]>();
  for (const p of pairs) {
    const [a, b] = await Promise.all([tile(absolutePath(report, p.a)), tile(absolutePath(report, p.b))]);
    const img = (buf: Buffer, name: string) =>
      `<figure><img src="data:image/jpeg;base64,${buf.toString('base64')}" width="${TILE}" height="${TILE}" alt=""><figcaption>${escapeHtml(name)}</figcaption></figure>`;
    const html = `<div class="pair">${img(a, p.a)}${img(b, p.b)}<p>${escapeHtml(p.caption)}</p></div>`;
    const list = sections.get(p.section);
    if (list) list.push(html);
    else sections.set(p.section, [html]);
  }
  const body = [...sections]
    .map(([title, items]) => `<h2>${escapeHtml(title)}</h2><div class="grid">${items.join('')}</div>`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Dataset audit</title>
<style>
body{font-family:system-ui,sans-serif;background:#111;color:#eee;margin:1.5em}
.grid{display:flex;flex-wrap:wrap;gap:12px}.pair{background:#222;padding:6px;border-radius:4px;width:${2 * TILE + 16}px}
figure{display:inline-block;margin:0 2px;width:${TILE}px}figcaption{font-size:11px;word-break:break-all;color:#bbb}
p{margin:4px 0 0;font-size:12px;color:#fd6}
</style></head><body>
<h1>Dataset audit</h1>
<p>${report.images} images, ${s.clusters} clusters of copies holding ${s.imagesInClusters} images
(${s.distinctScans} distinct scans), ${report.pairs.length} duplicate pairs, ${report.leakyTest.length}
test images with a copy in the train split, ${report.labelConflicts.length} label conflicts.</p>
${body}
</body></html>
`;
}

/** The same sheet as one PNG: rows of pairs with captions. */
export async function renderPng(report: AuditReport, pairs: SheetPair[], columns = 3): Promise<Buffer> {
  const cellW = 2 * TILE + 24;
  const cellH = TILE + 40;
  const rows = Math.max(1, Math.ceil(pairs.length / columns));
  const layers: OverlayOptions[] = [];
  for (const [k, p] of pairs.entries()) {
    const left = (k % columns) * cellW;
    const top = Math.floor(k / columns) * cellH;
    const [a, b] = await Promise.all([tile(absolutePath(report, p.a)), tile(absolutePath(report, p.b))]);
    layers.push({ input: a, left, top }, { input: b, left: left + TILE + 4, top });
    const label = (s: string) => escapeHtml(s.length > 56 ? `…${s.slice(-55)}` : s);
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${cellW}" height="40">
<text x="2" y="12" font-size="10" fill="#ddd" font-family="sans-serif">${label(p.a)}</text>
<text x="2" y="24" font-size="10" fill="#ddd" font-family="sans-serif">${label(p.b)}</text>
<text x="2" y="36" font-size="10" fill="#fd6" font-family="sans-serif">${escapeHtml(`${p.section}: ${p.caption}`)}</text></svg>`;
    layers.push({ input: Buffer.from(svg), left, top: top + TILE });
  }
  return sharp({
    create: { width: columns * cellW, height: rows * cellH, channels: 3, background: '#000000' },
  })
    .composite(layers)
    .png()
    .toBuffer();
}
