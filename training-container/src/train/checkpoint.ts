import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { EarlyStoppingState, PlateauState } from './callbacks.ts';

/**
 * Checkpoints for spot interruptions: SageMaker syncs /opt/ml/checkpoints to S3 and puts it back
 * when the job restarts. One folder per save, `step-000123` (optimizer steps so far), holding
 *
 *   state.json     epoch/step position, learning rate, callback state, history, fingerprint
 *   model.bin      every model weight (trainable and batch-norm statistics), in model.weights order
 *   optimizer.bin  Adam's iteration count and moments
 *   best.bin       the early-stopping snapshot of the best weights (when there is one)
 *   average.bin    the moving average of the weights (with `ema_decay`)
 *
 * A folder is written under a temporary name and renamed, so a half-written one is never read.
 */
export interface EpochRecord {
  epoch: number;
  train_loss: number;
  train_acc: number;
  val_loss: number;
  val_acc: number;
  lr: number;
  seconds: number;
}

export interface CheckpointState {
  /** Hash of the settings and split the checkpoint belongs to; others are not resumed. */
  fingerprint: string;
  /** Epochs fully completed. */
  epoch: number;
  /** Optimizer steps already done inside epoch `epoch + 1` (non-zero after a SIGTERM mid-epoch). */
  stepInEpoch: number;
  /** Running sums of the interrupted epoch, so its logged metrics cover all of it. */
  partial: { lossSum: number; correct: number; seen: number; seconds: number };
  learningRate: number;
  reduceLr: PlateauState;
  earlyStopping: EarlyStoppingState;
  history: EpochRecord[];
  /** Set once training ended (early stop, time limit, last epoch): resume goes straight to outputs. */
  finished?: string;
  /** Epochs a cosine schedule spans: `epochs`, or fewer when the time limit cannot hold them. */
  plannedEpochs?: number;
  /** Steps folded into the weight average (`ema_decay`): its decay ramps up with them. */
  averageUpdates?: number;
}

type NamedTensor = { name: string; tensor: tf.Tensor };

export interface Checkpoint {
  state: CheckpointState;
  model: tf.NamedTensorMap;
  optimizer: NamedTensor[];
  best?: tf.Tensor[];
  average?: tf.Tensor[];
  dir: string;
}

const PREFIX = 'step-';
const KEEP = 2;

export async function saveCheckpoint(
  root: string,
  globalStep: number,
  parts: {
    state: CheckpointState;
    model: tf.LayersModel;
    optimizer: tf.Optimizer;
    best?: tf.Tensor[];
    average?: tf.Tensor[];
  },
): Promise<string> {
  await mkdir(root, { recursive: true });
  const name = `${PREFIX}${String(globalStep).padStart(9, '0')}`;
  const final = path.join(root, name);
  const tmp = path.join(root, `.tmp-${name}-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp);
  // Named by position: layer-name counters differ between processes, positions do not.
  const modelTensors = parts.model.weights.map((w, i) => ({ name: String(i), tensor: w.read() }));
  const specs: Record<string, tf.io.WeightsManifestEntry[]> = {};
  const write = async (file: string, tensors: NamedTensor[]) => {
    const { data, specs: s } = await tf.io.encodeWeights(tensors);
    specs[file] = s;
    await writeFile(path.join(tmp, file), new Uint8Array(data));
  };
  await write('model.bin', modelTensors);
  await write('optimizer.bin', await parts.optimizer.getWeights());
  if (parts.best)
    await write(
      'best.bin',
      parts.best.map((tensor, i) => ({ name: `best${i}`, tensor })),
    );
  if (parts.average)
    await write(
      'average.bin',
      parts.average.map((tensor, i) => ({ name: `average${i}`, tensor })),
    );
  await writeFile(path.join(tmp, 'state.json'), JSON.stringify({ ...parts.state, specs }, null, 1));
  await rm(final, { recursive: true, force: true });
  await rename(tmp, final);
  for (const old of (await listCheckpoints(root)).slice(KEEP))
    await rm(old, { recursive: true, force: true });
  return final;
}

/** Newest first. */
async function listCheckpoints(root: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return [];
  }
  return names
    .filter((n) => n.startsWith(PREFIX))
    .sort()
    .reverse()
    .map((n) => path.join(root, n));
}

/**
 * Loads the newest readable checkpoint, or undefined. A damaged one (e.g. a partial S3 sync) is
 * reported through `warn` and the next older one is tried.
 */
export async function loadLatestCheckpoint(
  root: string,
  warn: (message: string) => void = () => {},
): Promise<Checkpoint | undefined> {
  for (const dir of await listCheckpoints(root)) {
    // What was decoded before a later file failed: freed, since the older checkpoint is used instead.
    const decoded: tf.NamedTensorMap[] = [];
    try {
      const { specs, ...state } = JSON.parse(
        await readFile(path.join(dir, 'state.json'), 'utf8'),
      ) as CheckpointState & {
        specs: Record<string, tf.io.WeightsManifestEntry[]>;
      };
      const read = async (file: string) => {
        const bytes = await readFile(path.join(dir, file));
        const map = tf.io.decodeWeights(
          bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
          specs[file],
        );
        decoded.push(map);
        return map;
      };
      const model = await read('model.bin');
      const optimizerMap = await read('optimizer.bin');
      const optimizer = specs['optimizer.bin'].map((s) => ({ name: s.name, tensor: optimizerMap[s.name] }));
      const list = async (file: string) => {
        if (!specs[file]) return undefined;
        const map = await read(file);
        return specs[file].map((s) => map[s.name]);
      };
      const best = await list('best.bin');
      const average = await list('average.bin');
      return { state, model, optimizer, best, average, dir };
    } catch (err) {
      for (const map of decoded) tf.dispose(Object.values(map));
      warn(`checkpoint ${dir} is unreadable, trying an older one: ${(err as Error).message}`);
    }
  }
  return undefined;
}

/** Removes every checkpoint (they belong to other settings, or the job completed). */
export async function clearCheckpoints(root: string): Promise<void> {
  for (const dir of await listCheckpoints(root)) await rm(dir, { recursive: true, force: true });
}

/** Puts checkpointed weights back into a freshly built model of the same architecture. */
export function restoreModelWeights(model: tf.LayersModel, weights: tf.NamedTensorMap): void {
  const tensors = model.weights.map((w, i) => {
    const t = weights[String(i)];
    if (!t || JSON.stringify(t.shape) !== JSON.stringify(w.shape)) {
      throw new Error(
        `checkpoint weight ${i} does not fit ${w.originalName} ${JSON.stringify(w.shape)}: the model differs`,
      );
    }
    return t;
  });
  model.setWeights(tensors);
}
