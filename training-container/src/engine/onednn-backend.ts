import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { OnednnAddon } from '../../native/onednn/index.js';
import { batchNormKernels, replaceGradients } from './onednn-batchnorm.ts';
import { convKernels, type NativeKernel } from './onednn-conv.ts';
import { elementwiseKernels } from './onednn-elementwise.ts';
import { optimizerKernels } from './onednn-optimizer.ts';
import { registerSwishActivation, swishKernels } from './onednn-swish.ts';

/** The tfjs backend name the onednn engine registers. */
export const ONEDNN_BACKEND = 'onednn';

/**
 * Freed output buffers are kept for reuse up to this many bytes: ONEDNN_POOL_MB, else a quarter of
 * the memory this process may use (the cgroup limit in a container), at most 8 GiB. One B0
 * training step at batch 16 allocates about 1.2 GB of outputs at 128 px and 3.5 GB at 224 px; when
 * the pool holds all of it, steady-state steps allocate nothing (measured at 128 px: 264-306 ms per
 * step with the whole step pooled, 620-800 ms with a 512 MB pool).
 */
export function poolBytes(env: NodeJS.ProcessEnv = process.env): number {
  if (env.ONEDNN_POOL === '0') return 0;
  const mb = Number(env.ONEDNN_POOL_MB);
  if (env.ONEDNN_POOL_MB !== undefined && Number.isFinite(mb) && mb >= 0) return mb * 2 ** 20;
  const limit = Math.min(os.totalmem(), process.constrainedMemory?.() || Number.POSITIVE_INFINITY);
  return Math.min(limit / 4, 8 * 2 ** 30);
}

/**
 * The tfjs cpu backend (same tensor storage: plain TypedArrays in JS memory) with the kernels that
 * dominate EfficientNet training swapped for oneDNN ones. Sharing the storage means every stock cpu
 * kernel keeps working unchanged and a native kernel reads its inputs without a copy.
 *
 * Native kernels take their outputs from a pool of freed Float32Arrays: a fresh 25 MB array costs
 * about five times the add that fills it (zeroing and first-touch page faults). An array is only
 * recycled when nothing else can still see it: it was allocated here, no second tensor was ever
 * written with it (or a view of it: cpu kernels such as Slice return subarrays), and it was never
 * handed out by readSync/dataSync. ONEDNN_POOL=0 turns the pool off; see poolBytes() for its size.
 */
export class OnednnBackend extends MathBackendCPU {
  private readonly free = new Map<number, Float32Array[]>();
  private pooledBytes = 0;
  /** Buffers allocated by allocFloat32 that may be recycled. */
  private readonly owned = new WeakSet<ArrayBuffer>();
  /** Buffers currently stored in some tensor. */
  private readonly live = new WeakSet<ArrayBuffer>();
  private readonly poolLimit = poolBytes();
  private readonly pooling = this.poolLimit > 0;

  constructor() {
    super();
    // The cpu backend's first write prints "install tfjs-node to speed things up": not helpful here.
    (this as unknown as { firstUse: boolean }).firstUse = false;
  }

  /** An output array for a native kernel: recycled when possible, so its contents are arbitrary. */
  allocFloat32(n: number): Float32Array {
    const reused = this.free.get(n)?.pop();
    if (reused) {
      this.pooledBytes -= reused.byteLength;
      return reused;
    }
    const fresh = new Float32Array(n);
    if (this.pooling) this.owned.add(fresh.buffer);
    return fresh;
  }

  private track(values: unknown): void {
    if (!ArrayBuffer.isView(values)) return;
    const buffer = values.buffer as ArrayBuffer;
    if (this.live.has(buffer))
      this.owned.delete(buffer); // a second tensor shares it: never recycle
    else this.live.add(buffer);
  }

  override write(values: tf.backend_util.BackendValues, shape: number[], dtype: tf.DataType): tf.DataId {
    this.track(values);
    return super.write(values, shape, dtype);
  }

  override move(
    dataId: tf.DataId,
    values: tf.backend_util.BackendValues,
    shape: number[],
    dtype: tf.DataType,
    refCount: number,
  ): void {
    this.track(values);
    super.move(dataId, values, shape, dtype, refCount);
  }

  override readSync(dataId: tf.DataId): tf.backend_util.BackendValues {
    const values = this.data.get(dataId)?.values;
    if (ArrayBuffer.isView(values)) this.owned.delete(values.buffer as ArrayBuffer);
    return super.readSync(dataId);
  }

  override disposeData(dataId: tf.DataId, force = false): boolean {
    const values = this.data.has(dataId) ? this.data.get(dataId).values : undefined;
    const released = super.disposeData(dataId, force);
    if (released && values instanceof Float32Array && !this.data.has(dataId)) this.recycle(values);
    return released;
  }

  private recycle(values: Float32Array): void {
    const buffer = values.buffer as ArrayBuffer;
    this.live.delete(buffer);
    if (!this.owned.has(buffer) || values.byteOffset !== 0 || values.byteLength !== buffer.byteLength) return;
    if (this.pooledBytes + values.byteLength > this.poolLimit) return;
    const list = this.free.get(values.length) ?? [];
    list.push(values);
    this.free.set(values.length, list);
    this.pooledBytes += values.byteLength;
  }
}

/** Names of the kernels that run natively (everything else is the stock cpu kernel). */
export function nativeKernelTable(addon: OnednnAddon): Record<string, NativeKernel> {
  return {
    ...convKernels(addon),
    ...elementwiseKernels(addon),
    ...batchNormKernels(addon),
    ...swishKernels(addon),
    ...optimizerKernels(addon),
  };
}

/**
 * Registers the 'onednn' backend once: every cpu kernel under the new backend name, then the
 * native ones on top. Returns the names of the native kernels.
 */
export function registerOnednnKernels(addon: OnednnAddon): string[] {
  const native = nativeKernelTable(addon);
  if (!tf.findBackendFactory(ONEDNN_BACKEND)) {
    // Priority 0: never picked implicitly; the engine selector sets it explicitly.
    tf.registerBackend(ONEDNN_BACKEND, () => new OnednnBackend(), 0);
    for (const config of tf.getKernelsForBackend('cpu')) {
      if (!(config.kernelName in native)) tf.registerKernel({ ...config, backendName: ONEDNN_BACKEND });
    }
    for (const [kernelName, kernelFunc] of Object.entries(native)) {
      tf.registerKernel({ kernelName, backendName: ONEDNN_BACKEND, kernelFunc: kernelFunc as tf.KernelFunc });
    }
    replaceGradients();
    registerSwishActivation();
  }
  return Object.keys(native);
}
