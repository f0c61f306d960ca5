import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * A machine without the addon (no libdnnl-dev at install): simulated by pointing the loader at a
 * missing file before anything loads it. 'auto' must skip onednn with exactly one log line that
 * says why, and land on wasm; asking for onednn by name must fail with that reason.
 */
process.env.ONEDNN_ADDON_PATH = path.join(os.tmpdir(), 'brain-tumor-no-such-dir', 'onednn.node');
const { initEngine } = await import('../../training-container/src/engine/index.ts');

describe('onednn engine without the addon', () => {
  it('auto skips it with one logged line and falls back to wasm', async () => {
    const lines: string[] = [];
    const info = await initEngine('auto', (line) => lines.push(line));
    expect(info.name).toBe('wasm');
    const onednnLines = lines.filter((l) => l.includes('onednn'));
    expect(onednnLines).toHaveLength(1);
    expect(onednnLines[0]).toMatch(/^engine onednn skipped: .*onednn\.node is not built: .*libdnnl-dev/);
    // The trainer's pace warning reads the reason from here.
    expect(info.skipped?.find((s) => s.engine === 'onednn')?.reason).toMatch(/not built/);
  });

  it('asking for it by name fails with the reason', async () => {
    await expect(initEngine('onednn', () => {})).rejects.toThrow(
      /engine onednn is not available: .*not built/,
    );
  });
});
