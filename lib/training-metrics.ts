import { LABELS } from '../training-container/src/labels.ts';

/**
 * SageMaker metric definitions for the trainer's log lines:
 * - per epoch: `epoch=3 train_loss=0.4100 train_acc=0.8600 val_loss=0.3800 val_acc=0.8800 lr=0.001000`
 * - once, on the test channel: `test: accuracy=0.7081 balanced_accuracy=0.7057 leak_free_accuracy=0.2469 ...`
 *   and `test_recall: glioma=0.2700 meningioma=0.7800 notumor=1.0000 pituitary=0.7700`.
 * Each regex is anchored on its line's prefix so other log lines cannot feed a metric. The
 * `test:*` names are what the model registry's approval gate reads (lambda/model-registry).
 */
const NUMBER = '([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)';

const field = (name: string) => `epoch=\\d+ .*\\b${name}=${NUMBER}`;
// `\s` before the name: `accuracy=` must not match inside `balanced_accuracy=`.
const test = (name: string) => `(?:^|\\s)test: (?:.*\\s)?${name}=${NUMBER}`;
const recall = (label: string) => `(?:^|\\s)test_recall: (?:.*\\s)?${label}=${NUMBER}`;
/** The trainer's class names, in its output order: a recall metric for each. */
export const RECALL_LABELS = LABELS;

export const TRAINING_METRIC_DEFINITIONS: ReadonlyArray<{ Name: string; Regex: string }> = [
  { Name: 'epoch', Regex: `\\bepoch=(\\d+) ` },
  { Name: 'train:loss', Regex: field('train_loss') },
  { Name: 'train:accuracy', Regex: field('train_acc') },
  { Name: 'validation:loss', Regex: field('val_loss') },
  { Name: 'validation:accuracy', Regex: field('val_acc') },
  { Name: 'learning_rate', Regex: field('lr') },
  { Name: 'test:accuracy', Regex: test('accuracy') },
  { Name: 'test:balanced_accuracy', Regex: test('balanced_accuracy') },
  { Name: 'test:leak_free_accuracy', Regex: test('leak_free_accuracy') },
  ...RECALL_LABELS.map((label) => ({ Name: `test:recall:${label}`, Regex: recall(label) })),
];
