import * as tf from '@tensorflow/tfjs';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { OnednnAddon } from '../../native/onednn/index.js';
import { batchNormKernels, replaceGradients } from './onednn-batchnorm.ts';
import { convKernels, type NativeKernel } from './onednn-conv.ts';
import { elementwiseKernels } from './onednn-elementwise.ts';
import { registerSwishActivation, swishKernels } from './onednn-swish.ts';

/** The tfjs backend name the onednn engine registers. */
export const ONEDNN_BACKEND = 'onednn';

/**
 * The tfjs cpu backend (same tensor storage: plain TypedArrays in JS memory) with the kernels that
 * dominate EfficientNet training swapped for oneDNN ones. Sharing the storage means every stock cpu
 * kernel keeps working unchanged and a native kernel reads its inputs without a copy.
 */
export class OnednnBackend extends MathBackendCPU {
  constructor() {
    super();
    // The cpu backend's first write prints "install tfjs-node to speed things up": not helpful here.
    (this as unknown as { firstUse: boolean }).firstUse = false;
  }
}

/** Names of the kernels that run natively (everything else is the stock cpu kernel). */
export function nativeKernelTable(addon: OnednnAddon): Record<string, NativeKernel> {
  return {
    ...convKernels(addon),
    ...elementwiseKernels(addon),
    ...batchNormKernels(addon),
    ...swishKernels(addon),
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
