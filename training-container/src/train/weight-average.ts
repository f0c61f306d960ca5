import * as tf from '@tensorflow/tfjs';

/**
 * An exponential moving average of every model weight (trainable and batch-norm statistics),
 * updated after each optimizer step: avg = d * avg + (1 - d) * w. The averaged weights sit in a
 * wider, flatter part of the loss surface than the last step's, which usually generalises a little
 * better (Polyak averaging; timm's ModelEma averages the batch-norm buffers too, as here).
 *
 * The decay ramps up as d_n = min(decay, (1 + n) / (10 + n)) over the first updates, so the
 * average is not dominated by the random initial weights while `decay` is close to 1.
 */
export class WeightAverage {
  private average: tf.Tensor[] | undefined;
  /** Updates folded in so far; part of the checkpoint, because the ramp depends on it. */
  updates = 0;

  constructor(readonly decay: number) {
    if (!(decay > 0 && decay < 1)) throw new Error(`weight-average decay must be in (0, 1), got ${decay}`);
  }

  /** The decay the next update uses. */
  nextDecay(): number {
    return Math.min(this.decay, (1 + this.updates) / (10 + this.updates));
  }

  update(model: tf.LayersModel): void {
    const current = model.weights.map((w) => w.read());
    if (!this.average) {
      this.average = current.map((w) => tf.keep(w.clone()));
    } else {
      const d = this.nextDecay();
      const previous = this.average;
      this.average = tf.tidy(() =>
        previous.map((a, i) => tf.keep(tf.add(tf.mul(a, d), tf.mul(current[i], 1 - d)))),
      );
      tf.dispose(previous);
    }
    this.updates++;
  }

  /** The averaged weights in `model.weights` order (owned by this object), or undefined before any update. */
  get weights(): tf.Tensor[] | undefined {
    return this.average;
  }

  /** Takes ownership of `weights` (from a checkpoint). */
  restore(weights: tf.Tensor[], updates: number): void {
    this.dispose();
    this.average = weights;
    this.updates = updates;
  }

  /**
   * Runs `fn` with the averaged weights in `model`, then puts the training weights back. Before the
   * first update the model's own weights are used.
   */
  async withAverage<T>(model: tf.LayersModel, fn: () => Promise<T>): Promise<T> {
    if (!this.average) return fn();
    const training = model.getWeights().map((w) => w.clone());
    model.setWeights(this.average);
    try {
      return await fn();
    } finally {
      model.setWeights(training);
      tf.dispose(training);
    }
  }

  /** Leaves the averaged weights in `model` for good (the end of training). */
  applyTo(model: tf.LayersModel): boolean {
    if (!this.average) return false;
    model.setWeights(this.average);
    return true;
  }

  dispose(): void {
    tf.dispose(this.average ?? []);
    this.average = undefined;
  }
}
