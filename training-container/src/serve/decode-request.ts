import {
  type Box,
  ImageDecodeError,
  imageInput,
  type ModelInput,
  type PreprocessConfig,
  pixelsInput,
} from '../preprocess.ts';
import {
  ClientError,
  decodeBase64,
  explainQueryOnJson,
  IMAGE_CONTENT_TYPES,
  JSON_CONTENT_TYPE,
  MAX_INSTANCES,
  mediaType,
  parseJsonRequest,
  SUPPORTED_CONTENT_TYPES,
} from './contract.ts';

/** A request turned into model inputs: `single` answers one object, `batch` answers `{predictions}`. */
export interface DecodedRequest {
  kind: 'single' | 'batch';
  images: Float32Array[];
  /** Whether the predictions carry heatmaps (`"explain": true`, or `?explain=true` with an image body). */
  explain: boolean;
  /** With `explain`: each image's frame (preprocess.ts `ModelInput.frame`), in order. */
  frames?: Box[];
}

/**
 * Turns an `/invocations` body into preprocessed images, through the same preprocessing module
 * the trainer uses, with the model's recorded preprocessing (a bare image size means version 1).
 * Every client mistake becomes a ClientError (4xx); nothing else is thrown
 * for bad input.
 */
export async function decodeRequest(
  contentType: string | undefined,
  body: Buffer,
  preprocessing: number | PreprocessConfig,
  maxInstances = MAX_INSTANCES,
  /** `?explain=` for an image body (a JSON body says it in its own `explain`). */
  explainImage = false,
): Promise<DecodedRequest> {
  const type = mediaType(contentType);
  if (!type || !SUPPORTED_CONTENT_TYPES.includes(type)) {
    throw new ClientError(
      415,
      'UNSUPPORTED_MEDIA_TYPE',
      `content type ${type ? `"${type}"` : '(none)'} is not supported; send ${SUPPORTED_CONTENT_TYPES.join(', ')}`,
    );
  }
  if (body.length === 0) throw new ClientError(400, 'EMPTY_BODY', 'request body is empty');

  if ((IMAGE_CONTENT_TYPES as readonly string[]).includes(type)) {
    const input = await decodeImage(body, preprocessing, 'image');
    if (!explainImage) return { kind: 'single', images: [input.pixels], explain: false };
    return { kind: 'single', images: [input.pixels], explain: true, frames: [input.frame] };
  }
  if (type !== JSON_CONTENT_TYPE) throw new Error(`unhandled content type ${type}`);
  if (explainImage) throw explainQueryOnJson();

  const { instances, explain } = parseJsonRequest(body.toString('utf8'), maxInstances);
  // Sequential on purpose: decoding in parallel would hold every full-size image in memory at once.
  const images: Float32Array[] = [];
  const frames: Box[] = [];
  for (const [i, instance] of instances.entries()) {
    const what = `instances[${i}]`;
    const input =
      'b64' in instance
        ? await decodeImage(decodeBase64(instance.b64, `${what}.b64`), preprocessing, what)
        : await decodePixels(instance.pixels, instance.shape, preprocessing, what);
    images.push(input.pixels);
    if (explain) frames.push(input.frame);
  }
  return explain ? { kind: 'batch', images, explain, frames } : { kind: 'batch', images, explain };
}

async function decodeImage(
  bytes: Uint8Array,
  preprocessing: number | PreprocessConfig,
  what: string,
): Promise<ModelInput> {
  try {
    return await imageInput(bytes, preprocessing);
  } catch (err) {
    throw toClientError(err, what);
  }
}

async function decodePixels(
  pixels: unknown[],
  shape: [number, number, number],
  preprocessing: number | PreprocessConfig,
  what: string,
): Promise<ModelInput> {
  try {
    // pixelsInput checks every value is a finite number in [0, 255].
    return await pixelsInput(pixels as number[], shape, preprocessing);
  } catch (err) {
    throw toClientError(err, what);
  }
}

function toClientError(err: unknown, what: string): unknown {
  if (!(err instanceof ImageDecodeError)) return err;
  switch (err.code) {
    case 'EMPTY':
      return new ClientError(400, 'EMPTY_BODY', `${what} is empty`);
    case 'TOO_LARGE':
      return new ClientError(413, 'IMAGE_TOO_LARGE', `${what}: ${err.message}`);
    case 'BAD_PIXELS':
      return new ClientError(400, 'INVALID_PIXELS', `${what}: ${err.message}`);
    default:
      // sharp's messages name the problem ("unsupported image format", "premature end") without paths.
      return new ClientError(400, 'UNDECODABLE_IMAGE', `${what}: ${err.message}`);
  }
}
