import { z } from 'zod';
import {
  ClientError,
  decodeBase64,
  JSON_CONTENT_TYPE,
  MAX_BODY_BYTES,
  mediaType,
  parseInstancesRequest,
  SUPPORTED_CONTENT_TYPES,
} from '../../training-container/src/serve/contract.ts';

/** The fields of an API Gateway REST proxy event that the handler reads. */
export const ProxyEventSchema = z.object({
  httpMethod: z.string(),
  headers: z.record(z.string(), z.string().optional()).nullish(),
  body: z.string().nullish(),
  isBase64Encoded: z.boolean().nullish(),
  requestContext: z.object({ requestId: z.string().optional() }).loose().nullish(),
});
export type ProxyEvent = z.infer<typeof ProxyEventSchema>;

export interface PredictRequest {
  contentType: string;
  body: Buffer;
  /** Instances in a JSON request (for the log); 1 for an image. */
  instances: number;
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
 * Validates a POST body at the edge, with the same contract and limits as the container, so
 * malformed requests are answered here without paying for an endpoint call. Image bytes are
 * only checked for size: decoding them is the container's job.
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
  // Base64 is 4/3 of the bytes: refuse oversize bodies before decoding them.
  const approxBytes = event.isBase64Encoded ? Math.floor((raw.length * 3) / 4) : Buffer.byteLength(raw);
  if (approxBytes > MAX_BODY_BYTES + 2) throw tooLarge();
  const body = event.isBase64Encoded ? decodeBase64(raw, 'request body') : Buffer.from(raw, 'utf8');
  if (body.length > MAX_BODY_BYTES) throw tooLarge();
  if (body.length === 0) throw new ClientError(400, 'EMPTY_BODY', 'request body is empty');
  const instances = type === JSON_CONTENT_TYPE ? parseInstancesRequest(body.toString('utf8')).length : 1;
  return { contentType: type, body, instances };
}

function tooLarge(): ClientError {
  return new ClientError(
    413,
    'PAYLOAD_TOO_LARGE',
    `request body is larger than ${MAX_BODY_BYTES / 2 ** 20} MB`,
  );
}
