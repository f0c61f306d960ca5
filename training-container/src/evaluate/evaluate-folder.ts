import { decodeImages, type SkippedFile } from '../data/decode.ts';
import { groupScans } from '../data/groups.ts';
import { listImageFolder } from '../data/image-folder.ts';
import { type EngineInfo, type EngineName, initEngine } from '../engine/index.ts';
import { LABELS } from '../labels.ts';
// Registers the model's custom layers so a saved EfficientNet deserialises.
import '../model/index.ts';
import { loadModel } from '../model-io.ts';
import { type LookupScore, lookupBaseline } from './lookup-baseline.ts';
import { type Metrics, metricsFromProbabilities, metricsOfSubset } from './metrics.ts';
import { predictProbabilities } from './predict.ts';

export interface EvaluateFolderOptions {
  /** A model folder written by the trainer (model.json, weights.bin, preprocessing.json). */
  modelDir: string;
  /** Image folder with class sub-folders (either naming style). */
  dataDir: string;
  /**
   * The model's training images (class sub-folders): when given, the result also carries the
   * lookup baseline, what a 1-NN lookup of these images scores on `dataDir`.
   */
  trainDir?: string;
  /** Default 'auto'. */
  engine?: EngineName | 'auto';
  /** Default 32. */
  batchSize?: number;
  log?: (line: string) => void;
  onProgress?: (phase: 'decode' | 'predict' | 'decode train', done: number, total: number) => void;
}

export interface FolderEvaluation {
  metrics: Metrics;
  /** Only with `trainDir`. */
  lookupBaseline?: LookupScore;
  /**
   * Only with `trainDir`: the images with no copy among the training images (one per scan, the
   * dataset audit's grouping, as in the trainer's evaluation.json), and the lookup on them.
   */
  leakFree?: Metrics & { grouping: string; lookupBaseline: LookupScore };
  skipped: SkippedFile[];
  engine: EngineInfo;
}

/** Scores a saved model on an image folder through the same preprocessing as training and serving. */
export async function evaluateFolder(options: EvaluateFolderOptions): Promise<FolderEvaluation> {
  const log = options.log ?? (() => {});
  const engine = await initEngine(options.engine ?? 'auto', log);
  const { model, config } = await loadModel(options.modelDir);
  const labelOrder = config.labels.map((l) => LABELS.indexOf(l as (typeof LABELS)[number]));
  if (labelOrder.some((i, k) => i !== k)) {
    throw new Error(`model labels ${config.labels.join(', ')} differ from ${LABELS.join(', ')}`);
  }
  const folder = await listImageFolder(options.dataDir);
  if (folder.files.length === 0) {
    throw new Error(
      `no images found in ${folder.root}: expected class folders named ${LABELS.join(', ')} (or glioma_tumor style)`,
    );
  }
  // Listed before the long decode, so a wrong --train fails at once.
  const trainFolder = options.trainDir === undefined ? undefined : await listImageFolder(options.trainDir);
  if (trainFolder && trainFolder.files.length === 0) {
    throw new Error(
      `no images found in ${trainFolder.root}: expected class folders named ${LABELS.join(', ')} (or glioma_tumor style)`,
    );
  }
  const set = await decodeImages(folder.files, {
    imageSize: config.imageSize,
    preprocessing: config.preprocessing,
    onProgress: (d, t) => options.onProgress?.('decode', d, t),
    onSkip: (s) => log(`skipping ${s.relPath}: ${s.reason}`),
  });
  const indices = set.files.map((_, i) => i);
  const probs = await predictProbabilities(model, set, indices, options.batchSize ?? 32, (d, t) =>
    options.onProgress?.('predict', d, t),
  );
  model.dispose();
  let lookup: LookupScore | undefined;
  let leakFree: FolderEvaluation['leakFree'];
  if (trainFolder) {
    const train = await decodeImages(trainFolder.files, {
      imageSize: config.imageSize,
      preprocessing: config.preprocessing,
      onProgress: (d, t) => options.onProgress?.('decode train', d, t),
      onSkip: (s) => log(`skipping training image ${s.relPath}: ${s.reason}`),
    });
    if (train.files.length === 0) throw new Error(`no image in ${trainFolder.root} could be decoded`);
    const grouping = await groupScans(
      'audit',
      { dir: trainFolder.root, set: train },
      { dir: folder.root, set },
      log,
    );
    const clean = grouping.leakFreeTest ?? indices;
    const scores = lookupBaseline(train, set, clean, LABELS);
    lookup = scores.overall;
    leakFree = {
      ...metricsOfSubset(probs, set.labels, clean, LABELS),
      grouping: grouping.method,
      lookupBaseline: scores.subset,
    };
  }
  return {
    metrics: metricsFromProbabilities(probs, set.labels, LABELS),
    ...(lookup && { lookupBaseline: lookup }),
    ...(leakFree && { leakFree }),
    skipped: set.skipped,
    engine,
  };
}
