// Child of threads.test.ts: runs nativeOps on the OpenMP thread count of its environment and writes
// each result to OUT_DIR/<name>.f32, and the thread count libgomp reports to OUT_DIR/threads.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadOnednnAddon } from '../../training-container/src/engine/onednn.ts';
import { nativeOps } from './native-ops.ts';

const outDir = process.argv[2];
const addon = loadOnednnAddon();
if (!addon) throw new Error('the onednn addon did not load');
for (const [name, values] of Object.entries(nativeOps(addon))) {
  writeFileSync(
    path.join(outDir, `${name}.f32`),
    Buffer.from(values.buffer, values.byteOffset, values.byteLength),
  );
}
writeFileSync(path.join(outDir, 'threads'), String(addon.info().threads));
