import * as tf from '@tensorflow/tfjs';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { OnednnAddon } from '../../native/onednn/index.js';
import { ONEDNN_BACKEND } from './onednn-backend.ts';
import { type NativeKernel, output, required, values } from './onednn-conv.ts';

/**
 * Swish (x * sigmoid(x), EfficientNet's activation) as one native pass forward and one backward.
 * tfjs-layers computes it as mul(sigmoid(mul(x, 1)), x), and its gradient as two multiplies, the
 * sigmoid gradient and an add. The layers registry looks activations up by name when a layer is
 * built, so registering this class under 'swish' makes models built afterwards use it, with no
 * change to the model code or its saved form (the config still says 'swish'). On any other
 * backend it computes exactly what tfjs-layers does.
 */

const SWISH = 'OnednnSwish';
const SWISH_GRAD = 'OnednnSwishGrad';
const UNARY_SWISH = 10;
const BINARY_SWISH_GRAD = 8;

export function swishKernels(addon: OnednnAddon): Record<string, NativeKernel> {
  return {
    [SWISH]: (args) => {
      const backend = args.backend as MathBackendCPU;
      const { x } = required(args, 'x');
      const xv = values(backend, x);
      if (!xv) throw new Error(`${SWISH}: float32 input expected`);
      const y = output(backend, xv.length);
      addon.unary(UNARY_SWISH, xv, y, y.length);
      return backend.makeTensorInfo(x.shape, 'float32', y);
    },
    [SWISH_GRAD]: (args) => {
      const backend = args.backend as MathBackendCPU;
      const { dy, x } = required(args, 'dy', 'x');
      const [dyv, xv] = [values(backend, dy), values(backend, x)];
      if (!dyv || !xv) throw new Error(`${SWISH_GRAD}: float32 inputs expected`);
      const dx = output(backend, xv.length);
      const unit = Int32Array.of(1);
      addon.binary(BINARY_SWISH_GRAD, dyv, xv, dx, Int32Array.of(dx.length), unit, unit);
      return backend.makeTensorInfo(x.shape, 'float32', dx);
    },
  };
}

const nativeSwish = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
  save([x]);
  return {
    value: tf.engine().runKernel(SWISH, { x }) as tf.Tensor,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
      tf.engine().runKernel(SWISH_GRAD, { dy, x: saved[0] }) as tf.Tensor,
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor) => tf.Tensor;

/** Drop-in for tfjs-layers' Swish activation (same class name, same config). */
export class OnednnSwishActivation extends tf.serialization.Serializable {
  static className = 'swish';

  override getClassName(): string {
    return OnednnSwishActivation.className;
  }

  getConfig(): tf.serialization.ConfigDict {
    return {};
  }

  apply(x: tf.Tensor, alpha = 1): tf.Tensor {
    if (alpha === 1 && x.dtype === 'float32' && tf.getBackend() === ONEDNN_BACKEND) return nativeSwish(x);
    return tf.tidy(() => tf.mul(tf.sigmoid(tf.mul(x, alpha)), x));
  }
}

let registered = false;

/** Makes 'swish' in layers built from now on resolve to the native-capable activation. */
export function registerSwishActivation(): void {
  if (registered) return;
  registered = true;
  tf.serialization.registerClass(OnednnSwishActivation);
}
