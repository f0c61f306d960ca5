import type { Readable } from 'node:stream';
import { errorCodes, type FastifyInstance } from 'fastify';

/**
 * Request bodies as raw bytes, with a size limit that every client can read the answer to.
 *
 * fastify's own limit answers 413 as soon as the body is known to be too large and then closes
 * the connection while the client is still sending. The unread bytes make the kernel reset the
 * connection, so a client that writes the whole body before it reads (Node's `fetch` with a
 * streamed body, for one) fails with EPIPE/ECONNRESET instead of seeing the 413. Here an
 * oversized body is read to its end and thrown away (up to a cap), and only then answered with
 * fastify's 413 error, which the route's error handler turns into its JSON body. A client that
 * sends more than the cap, or keeps sending past the drain time, is answered at once as before.
 */
export interface BodyLimitOptions {
  /** Largest accepted body in bytes. */
  limit: number;
  /** Bytes past the limit still read (and discarded) so the client can finish sending; default 64 MiB. */
  drainBytes?: number;
  /** How long to keep draining an oversized body before answering anyway; default 30 s. */
  drainMs?: number;
}

export const DEFAULT_DRAIN_BYTES = 64 * 1024 * 1024;
export const DEFAULT_DRAIN_MS = 30_000;

/**
 * Replaces every content-type parser of `app` by one that hands the route the body as a Buffer
 * (the route decides by content type), enforcing `limit` as described above.
 */
export function acceptRawBodies(app: FastifyInstance, options: BodyLimitOptions): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (request, payload, done) => {
    readBody(payload, request.headers['content-length'], options, (err, body) =>
      err ? done(err, undefined) : done(null, body),
    );
  });
}

/** Reads `payload` into one Buffer; over the limit, drains it and reports fastify's 413 error. */
export function readBody(
  payload: Readable,
  contentLength: string | undefined,
  options: BodyLimitOptions,
  done: (err: Error | null, body?: Buffer) => void,
): void {
  const { limit } = options;
  const cap = limit + (options.drainBytes ?? DEFAULT_DRAIN_BYTES);
  const declared = contentLength === undefined ? Number.NaN : Number(contentLength);
  const tooLarge = () => new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE();
  // A client that announces more than we would drain gets the answer at once.
  if (declared > cap) {
    done(tooLarge());
    return;
  }
  const chunks: Buffer[] = [];
  let received = 0;
  let draining = false;
  let timer: NodeJS.Timeout | undefined;
  let finished = false;

  const finish = (err: Error | null, body?: Buffer) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    payload.off('data', onData);
    payload.off('end', onEnd);
    payload.off('error', onError);
    // Whatever still arrives is discarded (the stream keeps flowing) until the connection closes.
    if (err) payload.on('error', () => {});
    done(err, body);
  };
  const startDraining = () => {
    draining = true;
    chunks.length = 0;
    timer = setTimeout(() => finish(tooLarge()), options.drainMs ?? DEFAULT_DRAIN_MS);
    timer.unref();
  };
  function onData(chunk: Buffer | string) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    received += bytes.length;
    if (!draining && (received > limit || declared > limit)) startDraining();
    if (draining) {
      if (received > cap) finish(tooLarge());
      return;
    }
    chunks.push(bytes);
  }
  function onEnd() {
    if (draining || received > limit || declared > limit) return finish(tooLarge());
    if (!Number.isNaN(declared) && received !== declared) {
      return finish(new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH());
    }
    finish(null, Buffer.concat(chunks, received));
  }
  function onError(err: Error & { statusCode?: number }) {
    if (!(typeof err.statusCode === 'number' && err.statusCode >= 400)) err.statusCode = 400;
    finish(err);
  }
  payload.on('data', onData);
  payload.on('end', onEnd);
  payload.on('error', onError);
  if (declared > limit) startDraining();
  payload.resume();
}
