import * as tf from '@tensorflow/tfjs';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { OnednnAddon } from '../../native/onednn/index.js';
import { BATCH_NORM_TRAINING, BATCH_NORM_TRAINING_GRAD } from './fused-kernels.ts';
import { ONEDNN_BACKEND } from './onednn-backend.ts';
import { type NativeKernel, output, required, values } from './onednn-conv.ts';
import { BROADCAST_SCALE, SQUARE_GRAD } from './onednn-elementwise.ts';

/**
 * Batch normalisation and the sigmoid gradient. tfjs builds FusedBatchNorm's gradient from about a
 * dozen full-size ops (tile, sub, several mul, sums) and sigmoid's from three; here each is one
 * native kernel. Gradients are registered per kernel name for every backend, so the replacement
 * delegates to tfjs's own gradient unless the onednn backend is active and the shapes fit.
 */

const BN_GRAD = 'OnednnFusedBatchNormGrad';
const SIGMOID_GRAD = 'OnednnSigmoidGrad';

function cpuKernel(name: string): NativeKernel {
  const config = tf.getKernel(name, 'cpu');
  if (!config) throw new Error(`tfjs cpu backend has no ${name} kernel`);
  return config.kernelFunc as NativeKernel;
}

/** Per-channel statistics along x's last axis, all float32: the only layout tfjs-layers produces. */
function channelsOk(x: tf.TensorInfo, ...perChannel: (tf.TensorInfo | undefined)[]): boolean {
  const c = x.shape[x.shape.length - 1];
  return (
    x.dtype === 'float32' &&
    x.shape.length >= 1 &&
    perChannel.every(
      (t) => t === undefined || (t.dtype === 'float32' && tf.util.sizeFromShape(t.shape) === c),
    )
  );
}

export function batchNormKernels(addon: OnednnAddon): Record<string, NativeKernel> {
  const fallback = cpuKernel('FusedBatchNorm');
  return {
    FusedBatchNorm: (args) => {
      const backend = args.backend as MathBackendCPU;
      const { x, mean, variance } = required(args, 'x', 'mean', 'variance');
      const { scale, offset } = args.inputs;
      if (!channelsOk(x, mean, variance, scale, offset)) return fallback(args);
      const c = x.shape[x.shape.length - 1];
      const xv = values(backend, x);
      const [mv, vv] = [values(backend, mean), values(backend, variance)];
      const sv = scale ? values(backend, scale) : null;
      const ov = offset ? values(backend, offset) : null;
      if (!xv || !mv || !vv || sv === undefined || ov === undefined) return fallback(args);
      const y = output(backend, xv.length);
      const eps = (args.attrs?.varianceEpsilon as number | undefined) ?? 0.001;
      addon.batchNormForward(xv, mv, vv, sv, ov, eps, xv.length / c, c, y);
      return backend.makeTensorInfo(x.shape, 'float32', y);
    },

    [BN_GRAD]: (args) => {
      const backend = args.backend as MathBackendCPU;
      const { x, dy, mean, variance } = required(args, 'x', 'dy', 'mean', 'variance');
      const { scale } = args.inputs;
      const c = x.shape[x.shape.length - 1];
      const [xv, dyv, mv, vv] = [x, dy, mean, variance].map((t) => values(backend, t));
      const sv = scale ? values(backend, scale) : null;
      if (!xv || !dyv || !mv || !vv || sv === undefined)
        throw new Error(`${BN_GRAD}: float32 inputs expected`);
      const dx = output(backend, xv.length);
      const perChannel = [
        new Float32Array(c),
        new Float32Array(c),
        new Float32Array(c),
        new Float32Array(c),
      ] as const;
      const eps = (args.attrs?.varianceEpsilon as number | undefined) ?? 0.001;
      addon.batchNormBackward(xv, dyv, mv, vv, sv, eps, xv.length / c, c, dx, ...perChannel);
      return [
        backend.makeTensorInfo(x.shape, 'float32', dx),
        ...perChannel.map((v) => backend.makeTensorInfo(mean.shape, 'float32', v)),
      ];
    },

    // The model's one-kernel batch-norm for training (../model/batch-norm.ts has the contract).
    [BATCH_NORM_TRAINING]: (args) => {
      const backend = args.backend as MathBackendCPU;
      const { x, scale, offset } = required(args, 'x', 'scale', 'offset');
      const c = x.shape[x.shape.length - 1];
      const [xv, sv, ov] = [x, scale, offset].map((t) => values(backend, t));
      if (!xv || !sv || !ov || !channelsOk(x, scale, offset) || xv.length === 0)
        throw new Error(`${BATCH_NORM_TRAINING}: float32 x with per-channel scale and offset expected`);
      const y = output(backend, xv.length);
      const [mean, variance] = [new Float32Array(c), new Float32Array(c)];
      const eps = args.attrs?.varianceEpsilon as number;
      addon.batchNormTrainingForward(xv, sv, ov, eps, xv.length / c, c, y, mean, variance);
      return [
        backend.makeTensorInfo(x.shape, 'float32', y),
        backend.makeTensorInfo([c], 'float32', mean),
        backend.makeTensorInfo([c], 'float32', variance),
      ];
    },

    [BATCH_NORM_TRAINING_GRAD]: (args) => {
      const backend = args.backend as MathBackendCPU;
      const { dy, x, mean, variance, scale } = required(args, 'dy', 'x', 'mean', 'variance', 'scale');
      const c = x.shape[x.shape.length - 1];
      const [dyv, xv, mv, vv, sv] = [dy, x, mean, variance, scale].map((t) => values(backend, t));
      if (!dyv || !xv || !mv || !vv || !sv || dyv.length !== xv.length)
        throw new Error(`${BATCH_NORM_TRAINING_GRAD}: float32 inputs expected`);
      const dx = output(backend, xv.length);
      const [dScale, dOffset] = [new Float32Array(c), new Float32Array(c)];
      const eps = args.attrs?.varianceEpsilon as number;
      addon.batchNormTrainingBackward(xv, dyv, mv, vv, sv, eps, xv.length / c, c, dx, dScale, dOffset);
      return [
        backend.makeTensorInfo(x.shape, 'float32', dx),
        backend.makeTensorInfo(scale.shape, 'float32', dScale),
        backend.makeTensorInfo(scale.shape, 'float32', dOffset),
      ];
    },

    [SIGMOID_GRAD]: (args) => {
      const backend = args.backend as MathBackendCPU;
      const { dy, y } = required(args, 'dy', 'y');
      const [dyv, yv] = [values(backend, dy), values(backend, y)];
      if (!dyv || !yv) throw new Error(`${SIGMOID_GRAD}: float32 inputs expected`);
      const dx = output(backend, dyv.length);
      addon.sigmoidGrad(dyv, yv, dx, dx.length);
      return backend.makeTensorInfo(dy.shape, 'float32', dx);
    },
  };
}

let gradientsReplaced = false;

/** Swaps in the one-kernel gradients (once per process); other backends keep tfjs's own. */
export function replaceGradients(): void {
  if (gradientsReplaced) return;
  gradientsReplaced = true;
  const onOnednn = () => tf.getBackend() === ONEDNN_BACKEND;

  const bn = tf.getGradient('FusedBatchNorm');
  if (bn) {
    tf.registerGradient({
      ...bn,
      gradFunc: (dy, saved, attrs) => {
        const [x, mean, variance, scale] = saved;
        const dyT = dy as tf.Tensor;
        if (
          !onOnednn() ||
          !channelsOk(x, mean, variance, scale) ||
          !tf.util.arraysEqual(dyT.shape, x.shape)
        ) {
          return bn.gradFunc(dy, saved, attrs);
        }
        // One kernel yields all five gradients. It runs here, not inside the per-input closures:
        // backprop calls each closure in its own tidy scope, which would dispose the siblings.
        const inputs: tf.NamedTensorMap = { x, dy: dyT, mean, variance };
        if (scale) inputs.scale = scale;
        const [dx, dMean, dVariance, dScale, dOffset] = tf
          .engine()
          .runKernel(BN_GRAD, inputs, attrs) as tf.Tensor[];
        return {
          x: () => dx,
          mean: () => dMean,
          variance: () => dVariance,
          scale: () => dScale,
          offset: () => dOffset,
        };
      },
    });
  }

  const mean = tf.getGradient('Mean');
  if (mean) {
    tf.registerGradient({
      ...mean,
      gradFunc: (dy, saved, attrs) => {
        const [x] = saved;
        const dyT = dy as tf.Tensor;
        if (!onOnednn() || dyT.dtype !== 'float32') return mean.gradFunc(dy, saved, attrs);
        const axes = tf.util.parseAxisParam(attrs.axis as number | number[], x.shape);
        const expanded = x.shape.map((s, d) => (axes.includes(d) ? 1 : s));
        const reduceSize = tf.util.sizeFromShape(axes.map((d) => x.shape[d]));
        return {
          x: () =>
            tf
              .engine()
              .runKernel(
                BROADCAST_SCALE,
                { x: tf.reshape(dyT, expanded) },
                { shape: x.shape, scale: 1 / reduceSize },
              ) as tf.Tensor,
        };
      },
    });
  }

  const square = tf.getGradient('Square');
  if (square) {
    tf.registerGradient({
      ...square,
      gradFunc: (dy, saved, attrs) => {
        const [x] = saved;
        const dyT = dy as tf.Tensor;
        if (!onOnednn() || x.dtype !== 'float32' || !tf.util.arraysEqual(dyT.shape, x.shape)) {
          return square.gradFunc(dy, saved, attrs);
        }
        return { x: () => tf.engine().runKernel(SQUARE_GRAD, { dy: dyT, x }) as tf.Tensor };
      },
    });
  }

  const sigmoid = tf.getGradient('Sigmoid');
  if (sigmoid) {
    tf.registerGradient({
      ...sigmoid,
      gradFunc: (dy, saved, attrs) => {
        const [y] = saved;
        const dyT = dy as tf.Tensor;
        if (!onOnednn() || y.dtype !== 'float32' || !tf.util.arraysEqual(dyT.shape, y.shape)) {
          return sigmoid.gradFunc(dy, saved, attrs);
        }
        return { x: () => tf.engine().runKernel(SIGMOID_GRAD, { dy: dyT, y }) as tf.Tensor };
      },
    });
  }
}
