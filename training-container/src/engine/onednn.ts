import { createRequire } from 'node:module';
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
 * explicit values in the environment win (`OMP_NUM_THREADS=4 OMP_WAIT_POLICY=ACTIVE` on a
 * dedicated machine with larger images).
 * - OMP_NUM_THREADS=1: one thread trains the shipped CPU profiles fastest. Their kernels are
 *   small (a 96-px step is about 800 of them, most well under a millisecond), and waking a
 *   sleeping OpenMP worker costs 90-170 us on the project's 2-core VM: a `quick` epoch took 45.6 s
 *   on two threads and 31.6 s on one, and even a B0 step at 224 px was slower on two (2,373 ms
 *   against 2,145; docs/onednn.md). Spinning workers wake fast but starve other processes
 *   sharing the cores (CI's two test workers: 3.97 s a step against 0.26 s).
 * - OMP_WAIT_POLICY=PASSIVE: for whoever raises the thread count on shared cores, idle workers
 *   sleep instead of spinning.
 */
export const DEFAULT_OMP_ENV = { OMP_NUM_THREADS: '1', OMP_WAIT_POLICY: 'PASSIVE' } as const;

/** Fills in the OpenMP settings `env` does not set; returns the ones it set. */
export function configureThreads(env: NodeJS.ProcessEnv = process.env): Partial<typeof DEFAULT_OMP_ENV> {
  const set: Partial<Record<keyof typeof DEFAULT_OMP_ENV, string>> = {};
  for (const [key, value] of Object.entries(DEFAULT_OMP_ENV) as [keyof typeof DEFAULT_OMP_ENV, string][]) {
    if (env[key] === undefined || env[key] === '') {
      env[key] = value;
      set[key] = value;
    }
  }
  return set as Partial<typeof DEFAULT_OMP_ENV>;
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
