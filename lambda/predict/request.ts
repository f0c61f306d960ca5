import { z } from 'zod';
import {
  base64DecodedLength,
  ClientError,
  decodeBase64,
  explainQueryOnJson,
  JSON_CONTENT_TYPE,
  MAX_IMAGE_BYTES,
  MAX_JSON_BODY_BYTES,
  mediaType,
  parseExplainQuery,
  parseInstancesRequest,
  SUPPORTED_CONTENT_TYPES,
} from '../../training-container/src/serve/contract.ts';

/** The fields of an API Gateway REST proxy event that the handler reads. */
export const ProxyEventSchema = z.object({
  httpMethod: z.string(),
  headers: z.record(z.string(), z.string().optional()).nullish(),
  body: z.string().nullish(),
  isBase64Encoded: z.boolean().nullish(),
  queryStringParameters: z.record(z.string(), z.string().optional()).nullish(),
  requestContext: z.object({ requestId: z.string().optional() }).loose().nullish(),
});
export type ProxyEvent = z.infer<typeof ProxyEventSchema>;

export interface PredictRequest {
  contentType: string;
  body: Buffer;
  /** Instances in a JSON request (for the log); 1 for an image. */
  instances: number;
  /**
   * An image body sent with `?explain=true`: forwarded as `{"instances": [{"b64"}], "explain": true}`
   * (InvokeEndpoint has no query string), so the endpoint answers `{"predictions": [one]}`, which
   * `clientResponse` unwraps to the single prediction an image body gets.
   */
  unwrapSingle?: boolean;
}

/** Header lookup as HTTP intends it: names are case-insensitive. */
export function header(event: ProxyEvent, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(event.headers ?? {})) {
    if (key.toLowerCase() === wanted) return value;
  }
  return undefined;
}

/**
 * Validates a POST body at the edge, with the container's contract, so malformed requests are
 * answered here without paying for an endpoint call. The size limits are the API's own, below
 * the container's: they must hold while the event still fits Lambda (see MAX_IMAGE_BYTES). Image
 * bytes are only checked for size: decoding them is the container's job.
 */
export function parsePredictRequest(event: ProxyEvent): PredictRequest {
  const type = mediaType(header(event, 'content-type'));
  if (!type || !SUPPORTED_CONTENT_TYPES.includes(type)) {
    throw new ClientError(
      415,
      'UNSUPPORTED_MEDIA_TYPE',
      `content type ${type ? `"${type}"` : '(none)'} is not supported; send ${SUPPORTED_CONTENT_TYPES.join(', ')}`,
    );
  }
  const raw = event.body ?? '';
  if (raw.length === 0) throw new ClientError(400, 'EMPTY_BODY', 'request body is empty');
  const json = type === JSON_CONTENT_TYPE;
  const limit = json ? MAX_JSON_BODY_BYTES : MAX_IMAGE_BYTES;
  // Counted before decoding, so an oversize body costs no copy.
  const bytes = event.isBase64Encoded ? base64DecodedLength(raw) : Buffer.byteLength(raw);
  if (bytes > limit) throw json ? jsonTooLarge() : imageTooLarge('image');
  const body = event.isBase64Encoded ? decodeBase64(raw, 'request body') : Buffer.from(raw, 'utf8');
  if (body.length === 0) throw new ClientError(400, 'EMPTY_BODY', 'request body is empty');
  const explain = parseExplainQuery(event.queryStringParameters?.explain);
  if (!json && explain) {
    const request = { instances: [{ b64: body.toString('base64') }], explain: true };
    return {
      contentType: JSON_CONTENT_TYPE,
      body: Buffer.from(JSON.stringify(request)),
      instances: 1,
      unwrapSingle: true,
    };
  }
  if (!json) return { contentType: type, body, instances: 1 };
  if (explain) throw explainQueryOnJson();
  const instances = parseInstancesRequest(body.toString('utf8'));
  instances.forEach((instance, i) => {
    if ('b64' in instance && base64DecodedLength(instance.b64) > MAX_IMAGE_BYTES) {
      throw imageTooLarge(`instances[${i}]: image`);
    }
  });
  return { contentType: type, body, instances: instances.length };
}

/** The endpoint's answer as the client gets it: unchanged, or unwrapped for `unwrapSingle`. Invalid JSON passes unchanged. */
export function clientResponse(request: PredictRequest, text: string): string {
  if (!request.unwrapSingle) return text;
  try {
    const single = (JSON.parse(text) as { predictions?: unknown[] }).predictions?.[0];
    return single === undefined ? text : JSON.stringify(single);
  } catch {
    return text;
  }
}

const MIB = 2 ** 20;

function imageTooLarge(what: string): ClientError {
  return new ClientError(
    413,
    'PAYLOAD_TOO_LARGE',
    `${what} is larger than ${MAX_IMAGE_BYTES / MIB} MiB (${MAX_IMAGE_BYTES} bytes), the API's limit`,
  );
}

function jsonTooLarge(): ClientError {
  return new ClientError(
    413,
    'PAYLOAD_TOO_LARGE',
    `JSON body is larger than ${MAX_JSON_BODY_BYTES} bytes, the API's limit (one ${MAX_IMAGE_BYTES / MIB} MiB image as base64 plus 1 KiB)`,
  );
}
