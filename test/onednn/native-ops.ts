import type { OnednnAddon } from '../../training-container/native/onednn/index.js';

/**
 * The addon's kernels whose OpenMP loops split work between threads (per-thread partial sums,
 * row ranges), on inputs large enough to start a parallel region (32k elements and up). Run by
 * threads.test.ts in this process (one thread, the engine's default) and in a child on two.
 */
export function nativeOps(addon: OnednnAddon): Record<string, Float32Array> {
  const rows = 4096;
  const channels = 24;
  const n = rows * channels;
  const x = lcg(n, 1);
  const dy = lcg(n, 2);
  const scale = lcg(channels, 3).map((v) => 1 + v / 2);
  const offset = lcg(channels, 4);
  const out: Record<string, Float32Array> = {};

  out.sumColumns = new Float32Array(channels);
  addon.reduce(0, x, out.sumColumns, 1, rows, channels);
  out.meanRows = new Float32Array(rows);
  addon.reduce(1, x, out.meanRows, rows, channels, 1);
  out.maxColumns = new Float32Array(channels);
  addon.reduce(2, x, out.maxColumns, 1, rows, channels);

  out.mulBroadcast = new Float32Array(n);
  const unit = Int32Array.of(channels, 1);
  addon.binary(2, x, scale, out.mulBroadcast, Int32Array.of(rows, channels), unit, Int32Array.of(0, 1));
  out.swishGrad = new Float32Array(n);
  addon.binary(8, dy, x, out.swishGrad, Int32Array.of(n), Int32Array.of(1), Int32Array.of(1));
  out.swish = new Float32Array(n);
  addon.unary(10, x, out.swish, n);

  out.bnY = new Float32Array(n);
  out.bnMean = new Float32Array(channels);
  out.bnVariance = new Float32Array(channels);
  addon.batchNormTrainingForward(x, scale, offset, 1e-3, rows, channels, out.bnY, out.bnMean, out.bnVariance);
  out.bnDx = new Float32Array(n);
  out.bnDScale = new Float32Array(channels);
  out.bnDOffset = new Float32Array(channels);
  addon.batchNormTrainingBackward(
    x,
    dy,
    out.bnMean,
    out.bnVariance,
    scale,
    1e-3,
    rows,
    channels,
    out.bnDx,
    out.bnDScale,
    out.bnDOffset,
  );
  return out;
}

/** Values in [-2, 2) from a small LCG: the same inputs in both processes. */
function lcg(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = (seed * 2654435761) % 4294967296;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) % 4294967296;
    a[i] = (s / 4294967296) * 4 - 2;
  }
  return a;
}
