import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/**
 * Bump when thumbnails or the same-scan decision change: old entries then simply stop matching.
 * Thumbnails and comparison results live in separate namespaces so a threshold change keeps the
 * (expensive) decoded thumbnails.
 */
const THUMB_VERSION = 'thumb-v2';
const RESULT_VERSION = 'pairs-v1';

/** `$BRAIN_TUMOR_CACHE/audit`, else `~/.cache/brain-tumor/audit` (the OS temp dir when there is no home). */
export function defaultCacheDir(): string {
  if (process.env.BRAIN_TUMOR_CACHE) return path.join(process.env.BRAIN_TUMOR_CACHE, 'audit');
  const home = os.homedir();
  return home
    ? path.join(home, '.cache', 'brain-tumor', 'audit')
    : path.join(os.tmpdir(), 'brain-tumor', 'audit');
}

/**
 * Content-addressed store: thumbnails keyed by the image's sha256, comparison results keyed by a
 * hash of the set of images compared. Every failure to read or write is a cache miss, never an
 * error: the audit must work on a read-only disk.
 */
export class AuditCache {
  private warned = false;

  constructor(
    private readonly dir: string | undefined,
    private readonly warn: (message: string) => void = () => {},
  ) {}

  async getThumbnail(sha256: string, size: number): Promise<Uint8Array | undefined> {
    const bytes = await this.read(this.thumbPath(sha256));
    return bytes?.length === size * size ? bytes : undefined;
  }

  putThumbnail(sha256: string, thumb: Uint8Array): Promise<void> {
    return this.write(this.thumbPath(sha256), thumb);
  }

  async getResult<T>(key: string): Promise<T | undefined> {
    const bytes = await this.read(this.resultPath(key));
    if (!bytes) return undefined;
    try {
      return JSON.parse(Buffer.from(bytes).toString('utf8')) as T;
    } catch {
      return undefined;
    }
  }

  putResult(key: string, value: unknown): Promise<void> {
    return this.write(this.resultPath(key), Buffer.from(JSON.stringify(value)));
  }

  private thumbPath(sha256: string): string | undefined {
    return this.dir && path.join(this.dir, THUMB_VERSION, sha256.slice(0, 2), `${sha256}.gray`);
  }

  private resultPath(key: string): string | undefined {
    // Results depend on the thumbnails too, so they live under both versions.
    return this.dir && path.join(this.dir, `${RESULT_VERSION}-${THUMB_VERSION}`, `${key}.json`);
  }

  private async read(file: string | undefined): Promise<Uint8Array | undefined> {
    if (!file) return undefined;
    try {
      return new Uint8Array(await readFile(file));
    } catch {
      return undefined;
    }
  }

  private async write(file: string | undefined, bytes: Uint8Array): Promise<void> {
    if (!file) return;
    try {
      await mkdir(path.dirname(file), { recursive: true });
      // Write-then-rename so a concurrent reader never sees half a file.
      const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
      await writeFile(tmp, bytes);
      await rename(tmp, file);
    } catch (err) {
      if (!this.warned) {
        this.warned = true;
        this.warn(
          `audit cache ${this.dir} is not writable (${(err as Error).message}); continuing without it`,
        );
      }
    }
  }
}
