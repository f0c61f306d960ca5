import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import h5wasm, { type Dataset, type Group } from 'h5wasm/node';

/** Where Keras downloads B0's ImageNet weights from; the Docker image fetches this at build time. */
export const KERAS_B0_NOTOP_URL = 'https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5';

export interface LoadedWeights {
  /** Number of weight tensors copied from the file. */
  loaded: number;
  /** Model layers with weights that the file has no group for (e.g. the new classification head). */
  skipped: string[];
}

/**
 * Copies Keras ImageNet weights (`efficientnetb0_notop.h5`, the legacy Keras h5 layout
 * `/<layer>/<layer>/<weight>:0` with a `weight_names` attribute per layer group) into a model
 * built by `buildClassifier`. Matching is by layer name and weight name, never by order, and a
 * shape mismatch is an error: it means the architecture differs from the file's.
 */
export async function loadImagenetWeights(
  model: tf.LayersModel,
  h5PathOrUrl: string,
): Promise<LoadedWeights> {
  const { file, cleanup } = await localCopy(h5PathOrUrl);
  try {
    await h5wasm.ready;
    const h5 = new h5wasm.File(file, 'r');
    try {
      return copyWeights(model, h5);
    } finally {
      h5.close();
    }
  } finally {
    await cleanup();
  }
}

function copyWeights(model: tf.LayersModel, h5: Group): LoadedWeights {
  const groups = new Set(h5.keys());
  let loaded = 0;
  const skipped: string[] = [];
  for (const layer of model.layers) {
    if (layer.weights.length === 0) continue;
    const groupName = findGroup(layer.name, groups);
    if (!groupName) {
      skipped.push(layer.name);
      continue;
    }
    const stored = datasetsByWeightName(h5.get(groupName) as Group);
    tf.tidy(() => {
      for (const weight of layer.weights) {
        const short = shortName(weight.originalName);
        const dataset = stored.get(short);
        if (!dataset) {
          throw new Error(`ImageNet weights: layer ${layer.name} has no weight "${short}" in the h5 file`);
        }
        const shape = dataset.shape ?? [];
        if (shape.join('x') !== weight.shape.join('x')) {
          throw new Error(
            `ImageNet weights: ${layer.name}/${short} has shape [${shape}] in the file but [${weight.shape}] ` +
              'in the model (the model must be EfficientNetB0 at width=1, depth=1)',
          );
        }
        weight.write(tf.tensor(toFloat32(dataset.value), weight.shape as number[], 'float32'));
        loaded++;
      }
    });
  }
  return { loaded, skipped };
}

/** Keras names preprocessing layers by creation order (normalization, normalization_1, ...). */
function findGroup(layerName: string, groups: Set<string>): string | undefined {
  if (groups.has(layerName)) return layerName;
  if (layerName === 'normalization') return [...groups].find((g) => /^normalization(_\d+)?$/.test(g));
  return undefined;
}

/** "stem_conv/kernel:0" and tfjs' "stem_conv/kernel" both become "kernel". */
function shortName(name: string): string {
  return name.replace(/:\d+$/, '').split('/').pop() as string;
}

function datasetsByWeightName(group: Group): Map<string, Dataset> {
  const out = new Map<string, Dataset>();
  const visit = (g: Group) => {
    for (const name of g.keys()) {
      const entity = g.get(name);
      if (entity instanceof h5wasm.Group) visit(entity);
      else if (entity instanceof h5wasm.Dataset) out.set(shortName(name), entity);
    }
  };
  visit(group);
  return out;
}

function toFloat32(value: unknown): Float32Array {
  if (value instanceof Float32Array) return value;
  if (ArrayBuffer.isView(value) && 'length' in value) {
    return Float32Array.from(Array.from(value as unknown as ArrayLike<number | bigint>, Number));
  }
  if (typeof value === 'number' || typeof value === 'bigint') return Float32Array.of(Number(value));
  throw new Error(`ImageNet weights: unsupported dataset value ${typeof value}`);
}

/** h5wasm opens files by path: URLs are downloaded to a temporary file first. */
async function localCopy(source: string): Promise<{ file: string; cleanup: () => Promise<void> }> {
  if (/^https?:\/\//.test(source)) {
    let bytes: ArrayBuffer;
    try {
      const res = await fetch(source);
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      bytes = await res.arrayBuffer();
    } catch (err) {
      throw new Error(
        `cannot download ImageNet weights from ${source} (${err instanceof Error ? err.message : String(err)}). ` +
          'Offline, download efficientnetb0_notop.h5 elsewhere and pass its path; the Docker image ' +
          `fetches ${KERAS_B0_NOTOP_URL} at build time.`,
      );
    }
    const dir = await mkdtemp(path.join(os.tmpdir(), 'b0-weights-'));
    const file = path.join(dir, 'weights.h5');
    await writeFile(file, new Uint8Array(bytes));
    return { file, cleanup: () => rm(dir, { recursive: true, force: true }) };
  }
  try {
    await access(source);
  } catch {
    throw new Error(
      `ImageNet weights file not found: ${source}. Download ${KERAS_B0_NOTOP_URL} to that path ` +
        '(the Docker image does this at build time), or train from scratch without ImageNet weights.',
    );
  }
  return { file: source, cleanup: async () => {} };
}
