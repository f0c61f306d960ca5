import { describe, expect, it } from 'vitest';
import { TRAINING_METRIC_DEFINITIONS } from '../../lib/training-metrics.ts';

// The trainer's per-epoch line, exactly as it prints it.
const LINE = 'epoch=3 train_loss=0.4100 train_acc=0.8600 val_loss=0.3800 val_acc=0.8800 lr=0.001000';

function metric(name: string, line: string): string | undefined {
  const def = TRAINING_METRIC_DEFINITIONS.find((d) => d.Name === name);
  if (!def) throw new Error(`no metric ${name}`);
  return new RegExp(def.Regex).exec(line)?.[1];
}

describe('training metric definitions', () => {
  it('read every value of the per-epoch log line', () => {
    expect(metric('epoch', LINE)).toBe('3');
    expect(metric('train:loss', LINE)).toBe('0.4100');
    expect(metric('train:accuracy', LINE)).toBe('0.8600');
    expect(metric('validation:loss', LINE)).toBe('0.3800');
    expect(metric('validation:accuracy', LINE)).toBe('0.8800');
    expect(metric('learning_rate', LINE)).toBe('0.001000');
  });

  it('read exponents and ignore lines that are not epoch lines', () => {
    expect(
      metric('learning_rate', 'epoch=12 train_loss=1.2 train_acc=0.5 val_loss=1.3 val_acc=0.4 lr=1e-05'),
    ).toBe('1e-05');
    expect(metric('validation:loss', 'final val_loss=0.1')).toBeUndefined();
    expect(metric('train:loss', 'loading weights lr=0.1')).toBeUndefined();
  });

  it('keep train and validation values apart', () => {
    const line = 'epoch=1 train_loss=0.9 train_acc=0.1 val_loss=0.2 val_acc=0.3 lr=0.01';
    expect(metric('train:loss', line)).toBe('0.9');
    expect(metric('validation:loss', line)).toBe('0.2');
    expect(metric('train:accuracy', line)).toBe('0.1');
    expect(metric('validation:accuracy', line)).toBe('0.3');
  });

  it('read the test lines: accuracy apart from balanced and leak-free accuracy, and each recall', () => {
    const test =
      'test: accuracy=0.7081 balanced_accuracy=0.7057 leak_free_accuracy=0.2469 (n=81 of 394) lookup_accuracy=0.7843 leak_free_lookup_accuracy=0.2840';
    expect(metric('test:accuracy', test)).toBe('0.7081');
    expect(metric('test:balanced_accuracy', test)).toBe('0.7057');
    expect(metric('test:leak_free_accuracy', test)).toBe('0.2469');
    const recall = 'test_recall: glioma=0.2700 meningioma=0.7800 notumor=1.0000 pituitary=0.7700';
    expect(metric('test:recall:glioma', recall)).toBe('0.2700');
    expect(metric('test:recall:meningioma', recall)).toBe('0.7800');
    expect(metric('test:recall:notumor', recall)).toBe('1.0000');
    expect(metric('test:recall:pituitary', recall)).toBe('0.7700');
    expect(metric('test:accuracy', LINE)).toBeUndefined();
    expect(metric('test:recall:glioma', test)).toBeUndefined();
  });
});
