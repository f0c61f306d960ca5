import * as tf from '@tensorflow/tfjs';
import { ADAM_UPDATE } from '../engine/fused-kernels.ts';

/**
 * tfjs's AdamOptimizer, with each variable's update as one kernel where the backend has one
 * (ADAM_UPDATE: the onednn engine). tfjs spends about a dozen tensor ops per variable, which for
 * EfficientNetB0's 213 variables is thousands of kernel calls per step. Same state (moment
 * variables, beta powers, iterations) and the same formula in float32, so checkpoints written by
 * either path load into the other; on every other backend this is tfjs's own code.
 */
export class Adam extends tf.AdamOptimizer {
  static override className = 'Adam';

  constructor(learningRate: number, beta1 = 0.9, beta2 = 0.999, epsilon?: number) {
    super(learningRate, beta1, beta2, epsilon as number);
  }

  override applyGradients(variableGradients: Parameters<tf.AdamOptimizer['applyGradients']>[0]): void {
    if (!tf.getKernel(ADAM_UPDATE, tf.getBackend())) {
      super.applyGradients(variableGradients);
      return;
    }
    const self = this as unknown as AdamInternals;
    const entries = Array.isArray(variableGradients)
      ? variableGradients.map((v) => [v.name, v.tensor] as const)
      : Object.entries(variableGradients);
    tf.tidy(() => {
      entries.forEach(([name, gradient], i) => {
        const value = tf.engine().registeredVariables[name];
        // Moments are created lazily and indexed by position, exactly as tfjs does.
        self.accumulatedFirstMoment[i] ??= { originalName: `${name}/m`, variable: zeroVariable(value) };
        self.accumulatedSecondMoment[i] ??= { originalName: `${name}/v`, variable: zeroVariable(value) };
        if (gradient == null) return;
        const m = self.accumulatedFirstMoment[i].variable;
        const v = self.accumulatedSecondMoment[i].variable;
        const [newValue, newM, newV] = tf.engine().runKernel(
          ADAM_UPDATE,
          { value, gradient, m, v, accBeta1: self.accBeta1, accBeta2: self.accBeta2 },
          {
            learningRate: self.learningRate,
            beta1: self.beta1,
            beta2: self.beta2,
            epsilon: self.epsilon,
          },
        ) as tf.Tensor[];
        m.assign(newM);
        v.assign(newV);
        value.assign(newValue);
      });
      self.accBeta1.assign(tf.mul(self.accBeta1, self.beta1));
      self.accBeta2.assign(tf.mul(self.accBeta2, self.beta2));
    });
    (this as unknown as { incrementIterations(): void }).incrementIterations();
  }
}

/** The fields of tfjs's AdamOptimizer this class updates (protected in its typings). */
interface AdamInternals {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: { originalName: string; variable: tf.Variable }[];
  accumulatedSecondMoment: { originalName: string; variable: tf.Variable }[];
}

function zeroVariable(like: tf.Tensor): tf.Variable {
  return tf.tidy(() => tf.zerosLike(like).variable(false));
}
