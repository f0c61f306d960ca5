import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { LABELS } from '../../training-container/src/labels.ts';
import { FlipTta, TtaMean } from '../../training-container/src/model/index.ts';
import { saveModel } from '../../training-container/src/model-io.ts';
import { heatmapLevel } from '../../training-container/src/serve/gradcam.ts';

/**
 * A hand-set model for Grad-CAM tests: class 0 means "bright", with flip TTA inside, so a bright
 * square planted off-centre in a black image is what its heatmap must point at.
 */

export const SIZE = 16;
/** The square: columns 2-5, rows 3-6. Its mirror under FlipTta: columns 10-13. */
export const SQUARE = { left: 2, top: 3, side: 4 };

/** input -> FlipTta -> conv "bright" (3x3 mean of the pixels, ReLU) + a dead filter -> GAP -> dense softmax -> TtaMean. */
export async function saveBrightnessModel(dir: string): Promise<void> {
  await tf.setBackend('cpu');
  const input = tf.input({ shape: [SIZE, SIZE, 3] });
  let x = new FlipTta({ name: 'tta_flip' }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.rescaling({ scale: 1 / 255 }).apply(x) as tf.SymbolicTensor;
  const conv = tf.layers.conv2d({
    filters: 2,
    kernelSize: 3,
    padding: 'same',
    activation: 'relu',
    name: 'conv',
  });
  x = conv.apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({ name: 'avg_pool' }).apply(x) as tf.SymbolicTensor;
  const dense = tf.layers.dense({ units: LABELS.length, activation: 'softmax', name: 'predictions' });
  let output = dense.apply(x) as tf.SymbolicTensor;
  output = new TtaMean({ name: 'tta_mean' }).apply(output) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: output });
  const kernel = new Float32Array(3 * 3 * 3 * 2);
  for (let i = 0; i < kernel.length; i += 2) kernel[i] = 1 / 27;
  conv.setWeights([tf.tensor4d(kernel, [3, 3, 3, 2]), tf.zeros([2])]);
  dense.setWeights([
    tf.tensor2d([
      [40, -40, -40, -40],
      [0, 0, 0, 0],
    ]),
    tf.zeros([LABELS.length]),
  ]);
  await saveModel(model, dir, { imageSize: SIZE, labels: [...LABELS], architecture: 'brightness-test' });
  model.dispose();
}

export function squareImage(): Float32Array {
  const rgb = new Float32Array(SIZE * SIZE * 3);
  for (let y = SQUARE.top; y < SQUARE.top + SQUARE.side; y++) {
    for (let x = SQUARE.left; x < SQUARE.left + SQUARE.side; x++)
      rgb.fill(255, (y * SIZE + x) * 3, (y * SIZE + x) * 3 + 3);
  }
  return rgb;
}

export async function squarePng(): Promise<Buffer> {
  const rgb = Buffer.from(Uint8Array.from(squareImage()));
  return sharp(rgb, { raw: { width: SIZE, height: SIZE, channels: 3 } })
    .png()
    .toBuffer();
}

/** The heatmap's levels (0-255), read back through the colour map. */
export async function heatLevels(
  pngBase64: string,
): Promise<{ width: number; height: number; levels: number[] }> {
  const { data, info } = await sharp(Buffer.from(pngBase64, 'base64'))
    .raw()
    .toBuffer({ resolveWithObject: true });
  const levels: number[] = [];
  for (let i = 0; i < info.width * info.height; i++) {
    levels.push(
      heatmapLevel(data[i * info.channels], data[i * info.channels + 1], data[i * info.channels + 2]),
    );
  }
  return { width: info.width, height: info.height, levels };
}
