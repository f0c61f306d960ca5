import type * as tf from '@tensorflow/tfjs';

/**
 * tfjs-layers has early stopping but no reduce-on-plateau, and its callbacks cannot be
 * checkpointed. These two follow Keras' semantics (monitor validation loss, `min_delta`,
 * `patience`) and expose their state so a resumed job carries on exactly where it stopped.
 */
export interface PlateauState {
  best: number;
  wait: number;
}

export interface ReduceLROnPlateauOptions {
  /** New rate = rate * factor. */
  factor: number;
  /** Epochs without improvement before reducing. */
  patience: number;
  minLr: number;
  /** Smallest decrease of the monitored loss that counts as improvement. Default 1e-4 (Keras). */
  minDelta?: number;
}

export class ReduceLROnPlateau {
  state: PlateauState = { best: Number.POSITIVE_INFINITY, wait: 0 };
  constructor(private readonly options: ReduceLROnPlateauOptions) {}

  /** Returns the learning rate for the next epoch. */
  onEpochEnd(monitored: number, lr: number): number {
    const { factor, patience, minLr, minDelta = 1e-4 } = this.options;
    if (monitored < this.state.best - minDelta) {
      this.state = { best: monitored, wait: 0 };
      return lr;
    }
    this.state.wait++;
    if (this.state.wait < patience || lr <= minLr) return lr;
    this.state.wait = 0;
    return Math.max(lr * factor, minLr);
  }
}

export interface EarlyStoppingState extends PlateauState {
  /** 1-based epoch whose weights are the best so far (0 = none yet). */
  bestEpoch: number;
}

export interface EarlyStoppingOptions {
  patience: number;
  minDelta?: number;
}

/**
 * Keeps a copy of the best weights (by validation loss) and says when to stop. Unlike Keras,
 * the best weights are restored at the end of training however it ends, so the saved model is
 * always the best epoch.
 */
export class EarlyStopping {
  state: EarlyStoppingState = { best: Number.POSITIVE_INFINITY, wait: 0, bestEpoch: 0 };
  private best: tf.Tensor[] | undefined;
  constructor(private readonly options: EarlyStoppingOptions) {}

  /** Returns true when training should stop. */
  onEpochEnd(epoch: number, monitored: number, model: tf.LayersModel): boolean {
    const { patience, minDelta = 1e-4 } = this.options;
    if (monitored < this.state.best - minDelta) {
      this.state = { best: monitored, wait: 0, bestEpoch: epoch };
      this.setBestWeights(model.getWeights().map((w) => w.clone()));
      return false;
    }
    this.state.wait++;
    return this.state.wait >= patience;
  }

  get bestWeights(): tf.Tensor[] | undefined {
    return this.best;
  }

  /** Takes ownership of `weights` (from a checkpoint or a snapshot). */
  setBestWeights(weights: tf.Tensor[] | undefined): void {
    for (const w of this.best ?? []) w.dispose();
    this.best = weights;
  }

  /** Puts the best weights back into the model; returns false when there are none. */
  restoreBest(model: tf.LayersModel): boolean {
    if (!this.best) return false;
    model.setWeights(this.best);
    return true;
  }
}
