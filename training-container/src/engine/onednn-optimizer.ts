import type * as tf from '@tensorflow/tfjs';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { OnednnAddon } from '../../native/onednn/index.js';
import { ADAM_UPDATE } from './fused-kernels.ts';
import { type NativeKernel, output, required, values } from './onednn-conv.ts';

/** Adam's per-variable update as one native pass (contract in ./fused-kernels.ts). */
export function optimizerKernels(addon: OnednnAddon): Record<string, NativeKernel> {
  return {
    [ADAM_UPDATE]: (args) => {
      const backend = args.backend as MathBackendCPU;
      const t = required(args, 'value', 'gradient', 'm', 'v', 'accBeta1', 'accBeta2');
      const [value, gradient, m, v, accBeta1, accBeta2] = [
        t.value,
        t.gradient,
        t.m,
        t.v,
        t.accBeta1,
        t.accBeta2,
      ].map((x) => values(backend, x));
      const n = value?.length ?? 0;
      if (!value || !gradient || !m || !v || !accBeta1 || !accBeta2)
        throw new Error(`${ADAM_UPDATE}: float32 inputs expected`);
      if (gradient.length !== n || m.length !== n || v.length !== n)
        throw new Error(`${ADAM_UPDATE}: value, gradient and moments must have the same size`);
      const a = args.attrs as { learningRate: number; beta1: number; beta2: number; epsilon: number };
      const outs = [output(backend, n), output(backend, n), output(backend, n)] as const;
      // tfjs rounds 1 - beta (a double) and 1 - beta^t (a float32 op) to float32: so does this.
      const f = Math.fround;
      addon.adamUpdate(
        value,
        gradient,
        m,
        v,
        n,
        a.learningRate,
        a.beta1,
        a.beta2,
        f(1 - a.beta1),
        f(1 - a.beta2),
        a.epsilon,
        f(1 - accBeta1[0]),
        f(1 - accBeta2[0]),
        ...outs,
      );
      return outs.map((o) => backend.makeTensorInfo(t.value.shape, 'float32', o)) as tf.TensorInfo[];
    },
  };
}
