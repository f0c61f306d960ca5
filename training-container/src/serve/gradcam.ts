import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';

/**
 * Grad-CAM (Selvaraju et al. 2017) for the predicted class, on the last 4-D activation before
 * the classification head (EfficientNet: `top_activation`, the map global pooling averages).
 *
 * The model is split at that activation: a feature sub-model (input -> activation, sharing the
 * loaded model's layers and weights) and the head re-applied layer by layer (pooling, dropout,
 * dense, TtaMean). `tf.grad` of the class score (the dense layer's logit, not its softmax, which
 * saturates) w.r.t. the activation gives the channel weights: mean gradient over the map. The
 * map is ReLU(sum_c weight_c * A_c), normalised to [0, 1] per image.
 *
 * Flip TTA (FlipTta/TtaMean, model/layers.ts) stacks each image and its mirror on the batch
 * axis, so the feature sub-model returns 2N maps and the score is the mean over both views: the
 * second half's maps are mirrored back and averaged with the first half's, which explains the
 * prediction the model actually makes.
 *
 * Only ops of the tfjs API are used (tf.grad, no backend-specific kernels), so it runs on every
 * engine that has the gradients of the head's ops (mean, matMul, add, split); an engine that lacks
 * one fails with ExplainUnsupportedError naming the engine.
 */

/** The engine cannot compute what explain needs (a missing gradient or kernel). */
export class ExplainUnsupportedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExplainUnsupportedError';
  }
}

/** One image's Grad-CAM at the activation's resolution, values in [0, 1]. */
export interface CamMap {
  width: number;
  height: number;
  values: Float32Array;
}

export interface Explained {
  /** The model's output for the batch ([N, classes], row-major), computed from the same pass. */
  probabilities: Float32Array;
  cams: CamMap[];
}

export class GradCam {
  private constructor(
    private readonly features: tf.LayersModel,
    private readonly head: tf.layers.Layer[],
    readonly layerName: string,
    private readonly flipTta: boolean,
  ) {}

  /**
   * Splits `model` at the last 4-D activation: walks back from the output through single-input
   * layers until a layer's input is 4-D. Throws when the head is not such a chain.
   */
  static forModel(model: tf.LayersModel): GradCam {
    if (model.outputs.length !== 1) throw new Error('Grad-CAM needs a model with one output');
    const head: tf.layers.Layer[] = [];
    let t: tf.SymbolicTensor = model.outputs[0];
    while (t.shape.length !== 4) {
      const layer = t.sourceLayer;
      const node = layer.inboundNodes[t.nodeIndex];
      if (node?.inputTensors.length !== 1) {
        throw new Error(
          `Grad-CAM: no single-input chain from the output back to a 4-D activation (at ${layer.name})`,
        );
      }
      head.unshift(layer);
      t = node.inputTensors[0];
    }
    if (head.length === 0) throw new Error('Grad-CAM: the model output is itself 4-D');
    const features = tf.model({ inputs: model.inputs, outputs: t, name: `${model.name}_gradcam_features` });
    const flipTta = model.layers.some((l) => l.getClassName() === 'FlipTta');
    return new GradCam(features, head, t.sourceLayer.name, flipTta);
  }

  /**
   * Probabilities and Grad-CAM maps for a batch of model inputs `[N, size, size, 3]`; the class
   * explained is each image's most probable one. Every intermediate tensor is disposed.
   */
  async explain(input: tf.Tensor4D): Promise<Explained> {
    const n = input.shape[0];
    let result: [tf.Tensor, tf.Tensor];
    try {
      result = tf.tidy(() => {
        const maps = this.features.predict(input) as tf.Tensor4D;
        const probs = this.applyHead(maps, false);
        const classes = probs.shape[1] as number;
        const onehot = tf.oneHot(tf.argMax(probs, 1), classes);
        const score = (a: tf.Tensor) => tf.sum(tf.mul(this.applyHead(a, true), onehot));
        const grads = tf.grad(score)(maps);
        const weights = tf.mean(grads, [1, 2], true);
        let cam = tf.relu(tf.sum(tf.mul(weights, maps), 3)) as tf.Tensor3D;
        if (cam.shape[0] === 2 * n && this.flipTta) {
          const [own, mirrored] = tf.split(cam, 2, 0);
          cam = tf.div(tf.add(own, tf.reverse(mirrored, 2)), 2);
        } else if (cam.shape[0] !== n) {
          throw new Error(`Grad-CAM: ${cam.shape[0]} activation maps for ${n} images`);
        }
        const peak = tf.max(cam, [1, 2], true);
        return [probs, tf.divNoNan(cam, peak)];
      });
    } catch (err) {
      throw asUnsupported(err);
    }
    const [probs, cam] = result;
    try {
      const [p, c] = await Promise.all([probs.data(), cam.data()]);
      const [, height, width] = cam.shape as [number, number, number];
      const cams = Array.from({ length: n }, (_, i) => ({
        width,
        height,
        values: Float32Array.from(c.subarray(i * width * height, (i + 1) * width * height)),
      }));
      return { probabilities: p as Float32Array, cams };
    } finally {
      probs.dispose();
      cam.dispose();
    }
  }

  /** The head on concrete activations, in inference mode; `logits`: the final softmax left out. */
  private applyHead(maps: tf.Tensor, logits: boolean): tf.Tensor {
    let x = maps;
    for (const layer of this.head) {
      const config = layer.getConfig();
      if (logits && layer.getClassName() === 'Dense' && config.activation === 'softmax') {
        const [kernel, bias] = layer.getWeights();
        x = tf.matMul(x as tf.Tensor2D, kernel as tf.Tensor2D);
        if (config.useBias !== false && bias) x = tf.add(x, bias);
      } else {
        x = layer.apply(x, { training: false }) as tf.Tensor;
      }
    }
    return x;
  }
}

function asUnsupported(err: unknown): unknown {
  const message = err instanceof Error ? err.message : String(err);
  if (/gradient|not registered|not implemented|not yet implemented/i.test(message)) {
    return new ExplainUnsupportedError(
      `explain is not supported on the ${tf.getBackend()} engine: computing Grad-CAM failed (${message})`,
    );
  }
  return err;
}

/** Jet-like colour map, 256 RGB entries: dark blue (0) -> blue -> cyan -> yellow -> red (1). */
export const HEATMAP_COLOURS: Uint8Array = (() => {
  const stops = [
    [0, 0, 128],
    [0, 0, 255],
    [0, 255, 255],
    [255, 255, 0],
    [255, 0, 0],
  ];
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (stops.length - 1);
    const k = Math.min(stops.length - 2, Math.floor(t));
    const f = t - k;
    for (let ch = 0; ch < 3; ch++)
      lut[i * 3 + ch] = Math.round(stops[k][ch] + f * (stops[k + 1][ch] - stops[k][ch]));
  }
  return lut;
})();

/** Bilinear upsampling of a map to `size x size` (pixel centres aligned, edges clamped), as 0-255 levels. */
export function resizeCam(cam: CamMap, size: number): Uint8Array {
  const out = new Uint8Array(size * size);
  const { width: w, height: h, values } = cam;
  const at = (x: number, y: number) => values[y * w + x];
  for (let y = 0; y < size; y++) {
    const sy = Math.min(h - 1, Math.max(0, ((y + 0.5) * h) / size - 0.5));
    const y0 = Math.floor(sy);
    const y1 = Math.min(h - 1, y0 + 1);
    const fy = sy - y0;
    for (let x = 0; x < size; x++) {
      const sx = Math.min(w - 1, Math.max(0, ((x + 0.5) * w) / size - 0.5));
      const x0 = Math.floor(sx);
      const x1 = Math.min(w - 1, x0 + 1);
      const fx = sx - x0;
      const top = at(x0, y0) * (1 - fx) + at(x1, y0) * fx;
      const bottom = at(x0, y1) * (1 - fx) + at(x1, y1) * fx;
      const v = top * (1 - fy) + bottom * fy;
      out[y * size + x] = Math.round(Math.min(1, Math.max(0, Number.isFinite(v) ? v : 0)) * 255);
    }
  }
  return out;
}

/** The map at `size x size`, colour-mapped (HEATMAP_COLOURS) and encoded as an RGB PNG. */
export async function heatmapPng(cam: CamMap, size: number): Promise<Buffer> {
  const levels = resizeCam(cam, size);
  const rgb = Buffer.alloc(size * size * 3);
  for (let i = 0; i < levels.length; i++) {
    const k = levels[i] * 3;
    rgb[i * 3] = HEATMAP_COLOURS[k];
    rgb[i * 3 + 1] = HEATMAP_COLOURS[k + 1];
    rgb[i * 3 + 2] = HEATMAP_COLOURS[k + 2];
  }
  return sharp(rgb, { raw: { width: size, height: size, channels: 3 } })
    .png()
    .toBuffer();
}

/** Inverse of the colour map for one RGB pixel: the level (0-255) of the nearest entry. */
export function heatmapLevel(r: number, g: number, b: number): number {
  let best = 0;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 256; i++) {
    const d =
      (HEATMAP_COLOURS[i * 3] - r) ** 2 +
      (HEATMAP_COLOURS[i * 3 + 1] - g) ** 2 +
      (HEATMAP_COLOURS[i * 3 + 2] - b) ** 2;
    if (d < bestDistance) {
      bestDistance = d;
      best = i;
    }
  }
  return best;
}
