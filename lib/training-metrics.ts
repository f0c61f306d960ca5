/**
 * SageMaker metric definitions for the trainer's per-epoch log line, which looks like
 * `epoch=3 train_loss=0.4100 train_acc=0.8600 val_loss=0.3800 val_acc=0.8800 lr=0.001000`.
 * Each regex is anchored on `epoch=N ` so other log lines cannot feed a metric.
 */
const NUMBER = '([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)';

const field = (name: string) => `epoch=\\d+ .*\\b${name}=${NUMBER}`;

export const TRAINING_METRIC_DEFINITIONS: ReadonlyArray<{ Name: string; Regex: string }> = [
  { Name: 'epoch', Regex: `\\bepoch=(\\d+) ` },
  { Name: 'train:loss', Regex: field('train_loss') },
  { Name: 'train:accuracy', Regex: field('train_acc') },
  { Name: 'validation:loss', Regex: field('val_loss') },
  { Name: 'validation:accuracy', Regex: field('val_acc') },
  { Name: 'learning_rate', Regex: field('lr') },
];
