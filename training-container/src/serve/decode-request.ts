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
  type Instance,
  isBatchImageType,
  JSON_CONTENT_TYPE,
  JSONLINES_CONTENT_TYPES,
  MAX_INSTANCES,
  mediaType,
  parseJsonRequest,
  SUPPORTED_CONTENT_TYPES,
  X_IMAGE_CONTENT_TYPE,
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
 * for bad input. JSON Lines bodies are not decoded here: ./jsonlines.ts answers them record by record.
 */
export async function decodeRequest(
  contentType: string | undefined,
  body: Buffer,
  preprocessing: number | PreprocessConfig,
  maxInstances = MAX_INSTANCES,
  /** `?explain=` for an image body (a JSON body says it in its own `explain`). */
  explainImage = false,
  /**
   * Batch Transform mode: any `image/*` type and `application/x-image` are image bodies too (the
   * decoder sniffs the bytes), since a job has one ContentType for all its objects.
   */
  options: { batch?: boolean } = {},
): Promise<DecodedRequest> {
  const type = mediaType(contentType);
  const image = isImageBody(type, options.batch ?? false);
  if (!type || !(image || type === JSON_CONTENT_TYPE)) {
    throw new ClientError(
      415,
      'UNSUPPORTED_MEDIA_TYPE',
      `content type ${type ? `"${type}"` : '(none)'} is not supported; send ${containerContentTypes(options.batch ?? false).join(', ')}`,
    );
  }
  if (body.length === 0) throw new ClientError(400, 'EMPTY_BODY', 'request body is empty');

  if (image) {
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
    const input = await decodeInstance(instance, preprocessing, `instances[${i}]`);
    images.push(input.pixels);
    if (explain) frames.push(input.frame);
  }
  return explain ? { kind: 'batch', images, explain, frames } : { kind: 'batch', images, explain };
}

/** Whether `type` is an image body: image/jpeg and image/png, in batch mode also any image/* and application/x-image. */
export function isImageBody(type: string | undefined, batch: boolean): boolean {
  if (!type) return false;
  return (IMAGE_CONTENT_TYPES as readonly string[]).includes(type) || (batch && isBatchImageType(type));
}

/** Every content type `/invocations` takes, for the 415 message. */
function containerContentTypes(batch: boolean): string[] {
  return [
    ...SUPPORTED_CONTENT_TYPES,
    ...JSONLINES_CONTENT_TYPES,
    ...(batch ? [X_IMAGE_CONTENT_TYPE, 'image/*'] : []),
  ];
}

/** One instance (`b64` or `pixels`) of a JSON or JSON Lines body into the model's input; `what` names it in errors. */
export async function decodeInstance(
  instance: Instance,
  preprocessing: number | PreprocessConfig,
  what: string,
  /** How base64 errors name the field. */
  b64What = `${what}.b64`,
): Promise<ModelInput> {
  return 'b64' in instance
    ? decodeImage(decodeBase64(instance.b64, b64What), preprocessing, what)
    : decodePixels(instance.pixels, instance.shape, preprocessing, what);
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
