import * as tf from '@tensorflow/tfjs';
import { type ArtifactConfig, loadModel, preprocessConfigOf } from '../model-io.ts';
import type { PreprocessConfig } from '../preprocess.ts';
import type { Prediction } from './contract.ts';
import { ExplainUnsupportedError, GradCam, heatmapPng } from './gradcam.ts';

/**
 * The loaded model plus the bookkeeping around one batched prediction. Every tensor made here
 * is disposed before `predict` returns, so the tensor count stays flat however many requests come.
 */
export class Predictor {
  private gradCam?: GradCam;

  private constructor(
    private readonly model: tf.LayersModel,
    readonly config: ArtifactConfig,
  ) {}

  /** Loads the model from `dir` on the current backend and runs one warm-up prediction. */
  static async load(dir: string): Promise<Predictor> {
    const { model, config } = await loadModel(dir);
    const predictor = new Predictor(model, config);
    // The first call compiles kernels (and, on wasm/GPU, allocates): pay it before /ping says ready.
    await predictor.predict([new Float32Array(config.imageSize * config.imageSize * 3)]);
    return predictor;
  }

  get imageSize(): number {
    return this.config.imageSize;
  }

  /** How requests are preprocessed: as the model was trained (its preprocessing.json). */
  get preprocessing(): PreprocessConfig {
    return preprocessConfigOf(this.config);
  }

  /**
   * Predicts a batch of HWC RGB images (each `imageSize^2 * 3` values in [0, 255]), in order.
   * `explain`: each prediction also carries a Grad-CAM heatmap of its class (./gradcam.ts), a PNG
   * at the model's input size; the probabilities then come from the same forward pass.
   */
  async predict(images: readonly Float32Array[], options: { explain?: boolean } = {}): Promise<Prediction[]> {
    const size = this.config.imageSize;
    const pixelsPerImage = size * size * 3;
    const batch = new Float32Array(images.length * pixelsPerImage);
    images.forEach((image, i) => {
      if (image.length !== pixelsPerImage) {
        throw new Error(`image ${i} has ${image.length} values, expected ${pixelsPerImage}`);
      }
      batch.set(image, i * pixelsPerImage);
    });
    if (options.explain) return this.explain(batch, images.length);
    const output = tf.tidy(() => {
      const input = tf.tensor4d(batch, [images.length, size, size, 3]);
      return this.model.predict(input) as tf.Tensor;
    });
    let values: Float32Array;
    try {
      values = (await output.data()) as Float32Array;
    } finally {
      output.dispose();
    }
    const classes = this.config.labels.length;
    return images.map((_, i) => this.toPrediction(values.subarray(i * classes, (i + 1) * classes)));
  }

  private async explain(batch: Float32Array, count: number): Promise<Prediction[]> {
    const size = this.config.imageSize;
    try {
      this.gradCam ??= GradCam.forModel(this.model);
    } catch (err) {
      // A model without a convolution block to explain: permanent for this model, not a 500.
      throw new ExplainUnsupportedError(`cannot explain this model: ${(err as Error).message}`);
    }
    const input = tf.tensor4d(batch, [count, size, size, 3]);
    let explained: Awaited<ReturnType<GradCam['explain']>>;
    try {
      explained = await this.gradCam.explain(input);
    } finally {
      input.dispose();
    }
    const classes = this.config.labels.length;
    return Promise.all(
      explained.cams.map(async (cam, i) => ({
        ...this.toPrediction(explained.probabilities.subarray(i * classes, (i + 1) * classes)),
        heatmap: { width: size, height: size, png: (await heatmapPng(cam, size)).toString('base64') },
      })),
    );
  }

  dispose(): void {
    this.model.dispose();
  }

  private toPrediction(scores: Float32Array): Prediction {
    // The model ends in softmax; renormalising only absorbs float32 rounding so the sum is 1.
    const total = scores.reduce((a, b) => a + b, 0) || 1;
    const probabilities: Record<string, number> = {};
    let best = 0;
    this.config.labels.forEach((label, k) => {
      probabilities[label] = scores[k] / total;
      if (scores[k] > scores[best]) best = k;
    });
    return { label: this.config.labels[best], probabilities, modelVersion: this.config.modelVersion };
  }
}
