import { createRequire } from 'node:module';
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import type * as Loader from '../../native/onednn/index.js';
import { type EngineInfo, EngineUnavailableError } from './index.ts';
import { ONEDNN_BACKEND, registerOnednnKernels } from './onednn-backend.ts';

/**
 * The onednn engine: tfjs's cpu backend with convolutions (and the elementwise work that
 * dominates next) on the native addon in ../../native/onednn. Unavailable, with the loader's
 * reason, when the addon was not built (no libdnnl-dev at `npm ci`).
 *
 * Native kernels run synchronously on the calling thread plus OpenMP workers: while one runs,
 * the Node event loop is blocked. That is fine for the batch trainer; a server that must stay
 * responsive runs inference in a worker thread.
 */

/** The addon loader (CommonJS), or its reason for not loading. */
export function loadOnednnAddon(): ReturnType<typeof Loader.load> {
  return loader().load();
}

export function onednnLoadError(): Error | undefined {
  return loader().loadError();
}

type AddonLoader = Pick<typeof Loader, 'load' | 'loadError'>;

const missingLoader: AddonLoader = {
  load: () => undefined,
  loadError: () => new Error('training-container/native/onednn is not part of this installation'),
};

/** The package's CommonJS loader; absent when only src/ was copied (the GPU Docker image). */
function loader(): AddonLoader {
  try {
    return createRequire(import.meta.url)('../../native/onednn/index.js') as AddonLoader;
  } catch {
    return missingLoader;
  }
}

/**
 * libgomp reads its settings once, when it loads with the addon, so they are set here first;
 * explicit values in the environment win.
 * - OMP_NUM_THREADS: the CPUs this process may use (libgomp would otherwise count every host CPU,
 *   oversubscribing a CPU-limited container).
 * - OMP_WAIT_POLICY=PASSIVE: idle workers sleep instead of spinning. With the cores shared (CI's
 *   two vitest workers, other processes) spinning workers starve the thread they wait for: a tiny
 *   EfficientNet step measured 3.97 s with the default policy, 0.18 s passive, 0.26 s on 1 thread.
 */
function configureThreads(): void {
  process.env.OMP_NUM_THREADS ??= String(os.availableParallelism());
  process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
}

export async function registerOnednnBackend(): Promise<EngineInfo> {
  configureThreads();
  const addon = loadOnednnAddon();
  if (!addon) throw new EngineUnavailableError('onednn', onednnLoadError()?.message ?? 'addon did not load');
  const native = registerOnednnKernels(addon);
  if (!(await tf.setBackend(ONEDNN_BACKEND))) {
    throw new EngineUnavailableError('onednn', `tf.setBackend('${ONEDNN_BACKEND}') failed`);
  }
  await tf.ready();
  const info = addon.info();
  return {
    name: 'onednn',
    backend: ONEDNN_BACKEND,
    detail: `threads=${info.threads} (oneDNN ${info.dnnlVersion}, ${native.length} native kernels, rest tfjs cpu)`,
  };
}
