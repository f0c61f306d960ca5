import { describe, expect, it } from 'vitest';
import { trainingCurvesSvg } from '../../training-container/src/evaluate/charts.ts';
import { formatEpochLine } from '../../training-container/src/train/loop.ts';

const point = (epoch: number, val: number) => ({
  epoch,
  train_loss: 1 / epoch,
  train_acc: 0.5,
  val_loss: val,
  val_acc: val,
  lr: 0.001,
  seconds: 1,
});

describe('training curves and epoch lines without a validation part', () => {
  it('names the validation curve only when there is one', () => {
    expect(trainingCurvesSvg([point(1, 0.9), point(2, 0.8)], 't')).toContain('>validation</text>');
    const none = trainingCurvesSvg([point(1, Number.NaN), point(2, Number.NaN)], 't');
    expect(none).toContain('>training</text>');
    expect(none).not.toContain('>validation</text>');
  });

  it('leaves val_* out of a run on all images, but prints a validated run that diverged', () => {
    expect(formatEpochLine(point(3, Number.NaN), false)).toBe(
      'epoch=3 train_loss=0.3333 train_acc=0.5000 lr=0.001000',
    );
    expect(formatEpochLine(point(3, Number.NaN))).toBe(
      'epoch=3 train_loss=0.3333 train_acc=0.5000 val_loss=NaN val_acc=NaN lr=0.001000',
    );
  });
});
