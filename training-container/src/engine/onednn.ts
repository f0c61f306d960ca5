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

function loader(): typeof Loader {
  return createRequire(import.meta.url)('../../native/onednn/index.js') as typeof Loader;
}

/**
 * OpenMP reads OMP_NUM_THREADS once, when libgomp loads with the addon, so it is set here first.
 * Default: the CPUs this process may use (libgomp would otherwise count every host CPU, which
 * oversubscribes a CPU-limited container). An explicit OMP_NUM_THREADS wins.
 */
function configureThreads(): void {
  process.env.OMP_NUM_THREADS ??= String(os.availableParallelism());
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
