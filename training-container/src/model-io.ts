import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { LABELS } from './labels.ts';
import { PREPROCESS_V1, type PreprocessConfig, PreprocessOptionsSchema } from './preprocess.ts';
// Registers EfficientNet's custom layers (DropConnect, Normalization, ChannelScale) for tf.loadLayersModel.
import './model/layers.ts';

/**
 * The model artifact: what `train` writes to /opt/ml/model and `serve` loads from it.
 *
 *   model.json          tfjs layers topology + weights manifest
 *   weights.bin         all weights, one file
 *   preprocessing.json  image size, class order, version and preprocessing options; read by every
 *                       consumer, which feeds the model exactly as it was trained
 *
 * Written with our own IO handler rather than `file://`, because `file://` exists only in
 * tfjs-node and this code must run on every engine.
 */
export const ArtifactConfigSchema = z.object({
  imageSize: z.number().int().positive(),
  labels: z.array(z.string()).length(LABELS.length),
  /** Content hash of the weights: changes whenever the model does. */
  modelVersion: z.string(),
  architecture: z.string().default('efficientnet-b0'),
  /**
   * How images are preprocessed (preprocess.ts). Absent in artifacts written before the options
   * existed: those are version 1, so they load and predict exactly as before.
   */
  preprocessing: PreprocessOptionsSchema.default(() => ({ ...PREPROCESS_V1 })),
});
export type ArtifactConfig = z.infer<typeof ArtifactConfigSchema>;

/** What `imageToRgb`/`pixelsToRgb` need to feed this model as it was trained. */
export function preprocessConfigOf(config: ArtifactConfig): PreprocessConfig {
  return { imageSize: config.imageSize, ...config.preprocessing };
}

const MODEL_JSON = 'model.json';
const WEIGHTS_BIN = 'weights.bin';
const PREPROCESSING_JSON = 'preprocessing.json';

/**
 * What preprocessing.json holds: `background` is left out at its default (`keep`), so a model that
 * does not use it reads as before in code that predates the option (its schema refuses unknown keys).
 */
function written(artifact: ArtifactConfig) {
  const { background, ...rest } = artifact.preprocessing;
  return { ...artifact, preprocessing: background === 'keep' ? rest : artifact.preprocessing };
}

export async function saveModel(
  model: tf.LayersModel,
  dir: string,
  config: Omit<ArtifactConfig, 'modelVersion' | 'architecture' | 'preprocessing'> &
    Partial<Pick<ArtifactConfig, 'architecture' | 'preprocessing'>>,
): Promise<ArtifactConfig> {
  await mkdir(dir, { recursive: true });
  let artifact: ArtifactConfig | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weights = Buffer.from(
        artifacts.weightData ? concatWeightData(artifacts.weightData) : new ArrayBuffer(0),
      );
      const modelVersion = createHash('sha256').update(weights).digest('hex').slice(0, 16);
      const modelJson = {
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs ?? [] }],
      };
      artifact = ArtifactConfigSchema.parse({ architecture: 'efficientnet-b0', ...config, modelVersion });
      // Write to temporary names then rename, so a reader never sees half a model.
      await atomicWrite(path.join(dir, WEIGHTS_BIN), weights);
      await atomicWrite(path.join(dir, MODEL_JSON), JSON.stringify(modelJson));
      await atomicWrite(path.join(dir, PREPROCESSING_JSON), JSON.stringify(written(artifact), null, 2));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (!artifact) throw new Error('model.save did not call the save handler');
  return artifact;
}

export async function loadArtifactConfig(dir: string): Promise<ArtifactConfig> {
  const file = path.join(dir, PREPROCESSING_JSON);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new Error(`no model found in ${dir}: ${PREPROCESSING_JSON} is missing`);
  }
  return ArtifactConfigSchema.parse(JSON.parse(text));
}

/** Loads a model saved by `saveModel` on the current tfjs backend. */
export async function loadModel(dir: string): Promise<{ model: tf.LayersModel; config: ArtifactConfig }> {
  const config = await loadArtifactConfig(dir);
  const modelJson = JSON.parse(await readFile(path.join(dir, MODEL_JSON), 'utf8'));
  const weights = await readFile(path.join(dir, WEIGHTS_BIN));
  const weightData = weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength);
  const model = await tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: modelJson.modelTopology,
      weightSpecs: modelJson.weightsManifest[0].weights,
      weightData,
    }),
  );
  return { model, config };
}

function concatWeightData(data: ArrayBuffer | ArrayBuffer[]): ArrayBuffer {
  if (!Array.isArray(data)) return data;
  const total = data.reduce((n, b) => n + b.byteLength, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const b of data) {
    out.set(new Uint8Array(b), offset);
    offset += b.byteLength;
  }
  return out.buffer;
}

async function atomicWrite(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}
