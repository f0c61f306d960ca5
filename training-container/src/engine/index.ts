import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { registerLeanBatchNormGradient } from './batchnorm-grad.ts';

/**
 * Run-time engine selection. The same trainer and server code runs on whichever engine the
 * machine has; the choice is logged as one line so a training report can say what ran.
 *
 * 'auto' tries, in order: tfjs-node-gpu -> tfjs-node (both only exist in the Docker image, so
 * they are imported dynamically and never listed in package.json) -> onednn (native addon, see
 * ./onednn.ts) -> wasm -> cpu. 'webgpu' is opt-in only: it needs a Vulkan GPU and the `webgpu`
 * (Dawn) npm package, which is not a dependency.
 */
export type EngineName = 'tfjs-node-gpu' | 'tfjs-node' | 'onednn' | 'wasm' | 'webgpu' | 'cpu';

export interface EngineInfo {
  name: EngineName;
  /** The tfjs backend name as `tf.getBackend()` reports it. */
  backend: string;
  /** Human-readable: threads, SIMD, device. */
  detail: string;
  /** With 'auto': the engines tried first and why each could not start. */
  skipped?: { engine: EngineName; reason: string }[];
}

export const ENGINE_NAMES: readonly EngineName[] = [
  'tfjs-node-gpu',
  'tfjs-node',
  'onednn',
  'wasm',
  'webgpu',
  'cpu',
];
const AUTO_ORDER: readonly EngineName[] = ['tfjs-node-gpu', 'tfjs-node', 'onednn', 'wasm', 'cpu'];

/** Thrown when a named engine cannot start here; `initEngine('auto')` catches it and moves on. */
export class EngineUnavailableError extends Error {
  constructor(
    readonly engine: EngineName,
    readonly reason: string,
  ) {
    super(`engine ${engine} is not available: ${reason}`);
    this.name = 'EngineUnavailableError';
  }
}

/**
 * Largest batch that trains EfficientNetB0 at `imageSize` within the wasm engine's 4 GiB heap.
 * Measured (tfjs 4.22, Adam): the heap peaks near 0.2 GB + 12.7 KB per pixel per sample
 * (96 px x 16: 2.1 GB, 128 px x 16: 3.6 GB, 96 px x 32: 4.0 GB); running out aborts the wasm
 * module for good, so this keeps batch x pixels under 262,144 (= 16 x 128 x 128). Train bigger
 * effective batches with gradient accumulation.
 */
export function maxWasmBatch(imageSize: number): number {
  return Math.max(1, Math.floor((16 * 128 * 128) / (imageSize * imageSize)));
}

let current: EngineInfo | undefined;
let currentPreference: EngineName | 'auto' | undefined;

/** The engine picked by the last successful `initEngine`, if any. */
export function currentEngine(): EngineInfo | undefined {
  return current;
}

/**
 * Picks and initialises an engine. With a named engine, failure throws (the caller asked for it);
 * with 'auto' (default) each unavailable engine costs one log line and the next one is tried.
 * Calling it again with the same preference while its engine is active is a no-op.
 */
export async function initEngine(
  preference: EngineName | 'auto' = 'auto',
  log: (line: string) => void = (line) => console.log(line),
): Promise<EngineInfo> {
  if (preference !== 'auto' && !ENGINE_NAMES.includes(preference)) {
    throw new Error(
      `unknown engine ${JSON.stringify(preference)}: expected auto or one of ${ENGINE_NAMES.join(', ')}`,
    );
  }
  if (current && currentPreference === preference && tf.getBackend() === current.backend) return current;
  // Backend-independent, and it removes the full-size Tile that dominated batch-norm backprop.
  registerLeanBatchNormGradient();
  const candidates = preference === 'auto' ? AUTO_ORDER : [preference];
  const skipped: { engine: EngineName; reason: string }[] = [];
  for (const name of candidates) {
    try {
      const info: EngineInfo = { ...(await startEngine(name)), ...(skipped.length > 0 ? { skipped } : {}) };
      current = info;
      currentPreference = preference;
      log(`engine=${info.name} backend=${info.backend} ${info.detail}`);
      return info;
    } catch (err) {
      if (preference !== 'auto') throw err;
      const reason =
        err instanceof EngineUnavailableError ? err.reason : err instanceof Error ? err.message : String(err);
      log(`engine ${name} skipped: ${reason}`);
      skipped.push({ engine: name, reason });
    }
  }
  throw new Error('no tfjs engine could start (not even cpu)');
}

async function startEngine(name: EngineName): Promise<EngineInfo> {
  switch (name) {
    case 'tfjs-node-gpu':
    case 'tfjs-node':
      return startTfjsNode(name);
    case 'onednn':
      return startOnednn();
    case 'wasm':
      return startWasm();
    case 'webgpu':
      return startWebgpu();
    case 'cpu':
      await activate('cpu', name);
      return { name, backend: 'cpu', detail: 'threads=1 (plain JavaScript)' };
  }
}

async function activate(backend: string, engine: EngineName): Promise<void> {
  if (!(await tf.setBackend(backend)))
    throw new EngineUnavailableError(engine, `tf.setBackend('${backend}') failed`);
  await tf.ready();
}

/** Dynamic import by a computed name so neither TypeScript nor a bundler insists the package exists. */
async function importOptional(pkg: string, engine: EngineName, hint = ''): Promise<unknown> {
  try {
    return await import(pkg);
  } catch (err) {
    const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new EngineUnavailableError(engine, `cannot import ${pkg} (${reason})${hint}`);
  }
}

const WEBGPU_HINT =
  '; webgpu is opt-in: `npm install webgpu @tensorflow/tfjs-backend-webgpu` on a machine with a Vulkan GPU';

async function startTfjsNode(name: 'tfjs-node-gpu' | 'tfjs-node'): Promise<EngineInfo> {
  // Importing the package registers its 'tensorflow' backend with the tfjs-core instance that
  // `@tensorflow/tfjs` uses (both resolve to the same hoisted tfjs-core in the image).
  await importOptional(`@tensorflow/${name}`, name);
  await activate('tensorflow', name);
  return { name, backend: 'tensorflow', detail: `threads=${os.availableParallelism()} (libtensorflow)` };
}

async function startOnednn(): Promise<EngineInfo> {
  // HOOK (issue 7): ./onednn.ts exports `registerOnednnBackend(): Promise<EngineInfo>`; it registers
  // a native backend. Until that module exists this engine is skipped with one log line.
  const modulePath = './onednn.ts';
  let mod: { registerOnednnBackend?: () => Promise<EngineInfo> };
  try {
    mod = await import(modulePath);
  } catch (err) {
    const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new EngineUnavailableError('onednn', `native module not present (${reason})`);
  }
  if (typeof mod.registerOnednnBackend !== 'function') {
    throw new EngineUnavailableError('onednn', './onednn.ts does not export registerOnednnBackend()');
  }
  return mod.registerOnednnBackend();
}

let wasmConfigured = false;

async function startWasm(): Promise<EngineInfo> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const { registerWasmTrainingKernels } = await import('./wasm-kernels.ts');
  if (!wasmConfigured) {
    // In Node the backend's own guess of its folder is wrong under ESM loaders; point it at the
    // package's dist folder explicitly. Multithreading is off in Node (tfjs issue 3830: the
    // threaded build needs Web Workers), so XNNPACK runs on one thread.
    const require = createRequire(import.meta.url);
    const dist = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
    wasm.setWasmPaths(`${dist}${path.sep}`);
    registerWasmTrainingKernels();
    wasmConfigured = true;
  }
  await activate('wasm', 'wasm');
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  const threads = wasm.getThreadsCount();
  return {
    name: 'wasm',
    backend: 'wasm',
    detail: `threads=${threads} simd=${simd} (XNNPACK + training kernels)`,
  };
}

interface DawnGpu {
  requestAdapter(): Promise<{ info?: { vendor?: string; architecture?: string } } | null>;
}

async function startWebgpu(): Promise<EngineInfo> {
  // Dawn for Node: the `webgpu` package's `create()` returns a navigator.gpu and `globals` holds
  // the GPU* constants the tfjs webgpu backend reads from the global scope.
  const dawn = (await importOptional('webgpu', 'webgpu', WEBGPU_HINT)) as {
    create: (flags: string[]) => DawnGpu;
    globals: Record<string, unknown>;
  };
  Object.assign(globalThis, dawn.globals);
  const gpu = dawn.create([]);
  const g = globalThis as { navigator?: object };
  g.navigator ??= {};
  Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
  await importOptional('@tensorflow/tfjs-backend-webgpu', 'webgpu', WEBGPU_HINT);
  await activate('webgpu', 'webgpu');
  const info = (await gpu.requestAdapter())?.info;
  const device = `${info?.vendor ?? ''} ${info?.architecture ?? ''}`.trim() || 'unknown';
  return { name: 'webgpu', backend: 'webgpu', detail: `threads=gpu device=${device} (Dawn)` };
}
