import sharp from 'sharp';

/**
 * The two report charts as SVG, rasterised to PNG by sharp (librsvg), so no browser, canvas or
 * native charting dependency is needed in the container. Text needs any installed sans font.
 */
export async function svgToPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg)).png().toBuffer();
}

const FONT = 'font-family="DejaVu Sans, Arial, sans-serif"';

/** Confusion matrix: counts, cells shaded by row share (recall per true class). */
export function confusionMatrixSvg(labels: readonly string[], matrix: number[][], title: string): string {
  const cell = 90;
  const left = 130;
  const top = 70;
  const k = labels.length;
  const width = left + k * cell + 30;
  const height = top + k * cell + 70;
  const parts: string[] = [];
  parts.push(
    `<text x="${width / 2}" y="28" text-anchor="middle" font-size="18" ${FONT}>${esc(title)}</text>`,
  );
  for (let r = 0; r < k; r++) {
    const rowTotal = matrix[r].reduce((a, b) => a + b, 0);
    for (let c = 0; c < k; c++) {
      const share = rowTotal ? matrix[r][c] / rowTotal : 0;
      const x = left + c * cell;
      const y = top + r * cell;
      const fill =
        r === c
          ? `rgb(${Math.round(255 - 180 * share)},${Math.round(255 - 90 * share)},255)`
          : `rgb(255,${Math.round(255 - 150 * share)},${Math.round(255 - 150 * share)})`;
      parts.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="${fill}" stroke="#888"/>`);
      parts.push(
        `<text x="${x + cell / 2}" y="${y + cell / 2 + 2}" text-anchor="middle" font-size="20" ${FONT}>${matrix[r][c]}</text>`,
        `<text x="${x + cell / 2}" y="${y + cell / 2 + 22}" text-anchor="middle" font-size="12" fill="#444" ${FONT}>${(share * 100).toFixed(0)}%</text>`,
      );
    }
    parts.push(
      `<text x="${left - 8}" y="${top + r * cell + cell / 2 + 5}" text-anchor="end" font-size="14" ${FONT}>${esc(labels[r])}</text>`,
    );
  }
  labels.forEach((label, c) => {
    parts.push(
      `<text x="${left + c * cell + cell / 2}" y="${top + k * cell + 22}" text-anchor="middle" font-size="14" ${FONT}>${esc(label)}</text>`,
    );
  });
  parts.push(
    `<text x="${left + (k * cell) / 2}" y="${top + k * cell + 50}" text-anchor="middle" font-size="14" ${FONT}>predicted</text>`,
    `<text x="20" y="${top + (k * cell) / 2}" text-anchor="middle" font-size="14" transform="rotate(-90 20 ${top + (k * cell) / 2})" ${FONT}>true</text>`,
  );
  return svgDocument(width, height, parts);
}

export interface CurvePoint {
  epoch: number;
  train_loss: number;
  val_loss: number;
  train_acc: number;
  val_acc: number;
}

/** Loss and accuracy per epoch, training vs validation, side by side. */
export function trainingCurvesSvg(history: readonly CurvePoint[], title: string): string {
  const panel = { w: 380, h: 260 };
  const width = 2 * panel.w + 150;
  const height = panel.h + 130;
  const parts = [
    `<text x="${width / 2}" y="26" text-anchor="middle" font-size="18" ${FONT}>${esc(title)}</text>`,
  ];
  const lossMax = Math.max(
    1e-6,
    ...history.flatMap((h) => [h.train_loss, h.val_loss]).filter(Number.isFinite),
  );
  parts.push(...linePanel(60, 50, panel, 'loss', history, ['train_loss', 'val_loss'], lossMax));
  parts.push(...linePanel(60 + panel.w + 60, 50, panel, 'accuracy', history, ['train_acc', 'val_acc'], 1));
  const ly = height - 14;
  parts.push(
    `<line x1="${width / 2 - 150}" y1="${ly - 5}" x2="${width / 2 - 120}" y2="${ly - 5}" stroke="#1f77b4" stroke-width="3"/>`,
    `<text x="${width / 2 - 114}" y="${ly}" font-size="13" ${FONT}>training</text>`,
  );
  // A run on all images (validation_fraction=0) has no validation curve to name.
  if (history.some((h) => Number.isFinite(h.val_loss))) {
    parts.push(
      `<line x1="${width / 2 + 20}" y1="${ly - 5}" x2="${width / 2 + 50}" y2="${ly - 5}" stroke="#ff7f0e" stroke-width="3"/>`,
      `<text x="${width / 2 + 56}" y="${ly}" font-size="13" ${FONT}>validation</text>`,
    );
  }
  return svgDocument(width, height, parts);
}

function linePanel(
  x0: number,
  y0: number,
  size: { w: number; h: number },
  name: string,
  history: readonly CurvePoint[],
  keys: [keyof CurvePoint, keyof CurvePoint],
  yMax: number,
): string[] {
  const parts = [
    `<rect x="${x0}" y="${y0}" width="${size.w}" height="${size.h}" fill="none" stroke="#888"/>`,
    `<text x="${x0 + size.w / 2}" y="${y0 - 6}" text-anchor="middle" font-size="14" ${FONT}>${name}</text>`,
    `<text x="${x0 + size.w / 2}" y="${y0 + size.h + 34}" text-anchor="middle" font-size="13" ${FONT}>epoch</text>`,
  ];
  const epochs = history.map((h) => h.epoch);
  const eMin = Math.min(...epochs, 1);
  const eMax = Math.max(...epochs, eMin + 1);
  const px = (e: number) => x0 + ((e - eMin) / (eMax - eMin)) * size.w;
  const py = (v: number) => y0 + size.h - (Math.min(Math.max(v, 0), yMax) / yMax) * size.h;
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    parts.push(
      `<line x1="${x0}" y1="${py(v)}" x2="${x0 + size.w}" y2="${py(v)}" stroke="#eee"/>`,
      `<text x="${x0 - 6}" y="${py(v) + 4}" text-anchor="end" font-size="11" ${FONT}>${v.toFixed(2)}</text>`,
    );
  }
  for (const e of epochs) {
    parts.push(
      `<text x="${px(e)}" y="${y0 + size.h + 16}" text-anchor="middle" font-size="11" ${FONT}>${e}</text>`,
    );
  }
  keys.forEach((key, i) => {
    const color = i === 0 ? '#1f77b4' : '#ff7f0e';
    const points = history.filter((h) => Number.isFinite(h[key])).map((h) => `${px(h.epoch)},${py(h[key])}`);
    parts.push(
      `<polyline points="${points.join(' ')}" fill="none" stroke="${color}" stroke-width="2.5"/>`,
      ...points.map(
        (p) => `<circle cx="${p.split(',')[0]}" cy="${p.split(',')[1]}" r="3.5" fill="${color}"/>`,
      ),
    );
  });
  return parts;
}

function svgDocument(width: number, height: number, parts: string[]): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="100%" height="100%" fill="white"/>${parts.join('')}</svg>`;
}

function esc(s: string): string {
  return s.replace(
    /[&<>"]/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string,
  );
}
