// First-run download of the official checkpoint, as torch.hub does it: to a
// temporary name, sha256 checked against the prefix in the file's name, then
// renamed into the cache. A failed or interrupted transfer leaves nothing behind.
import { createHash } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';

export interface DownloadOptions {
  /** Called as bytes arrive; total is 0 when the server sends no length. */
  onProgress?: (done: number, total: number) => void;
  /** Give up when no byte arrives for this long (ms). Default 60 s. */
  idleTimeoutMs?: number;
}

/** torch.hub's HASH_REGEX: the hex after the last '-' before the extension. */
export function hashPrefixOf(fileName: string): string | null {
  const m = /-([a-f0-9]+)\.[^.]+$/.exec(path.basename(fileName));
  return m ? m[1]! : null;
}

export class DownloadError extends Error {
  override name = 'DownloadError';
}

/** Downloads `url` to `dest` (atomically) and checks its sha256 against the prefix in dest's name. */
export async function download(url: string, dest: string, options: DownloadOptions = {}): Promise<void> {
  const prefix = hashPrefixOf(dest);
  const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.part-${process.pid}`);
  await fs.mkdir(path.dirname(dest), { recursive: true });
  try {
    const sha = await fetchTo(url, tmp, options, 5);
    if (prefix && !sha.startsWith(prefix)) {
      throw new DownloadError(`${url}: sha256 ${sha.slice(0, 16)}… does not start with ${prefix} (the hash in its name); the file was discarded`);
    }
    await fs.rename(tmp, dest);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}

function fetchTo(url: string, file: string, options: DownloadOptions, redirectsLeft: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      reject(new DownloadError(`${url}: not a valid URL`));
      return;
    }
    const get = u.protocol === 'https:' ? https.get : u.protocol === 'http:' ? http.get : null;
    if (!get) {
      reject(new DownloadError(`${url}: only http and https URLs are supported`));
      return;
    }
    const req = get(u, { headers: { 'user-agent': 'midas-webgpu' } }, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        if (redirectsLeft === 0) reject(new DownloadError(`${url}: too many redirects`));
        else fetchTo(new URL(res.headers.location, u).href, file, options, redirectsLeft - 1).then(resolve, reject);
        return;
      }
      if (status !== 200) {
        res.resume();
        reject(new DownloadError(`${url}: HTTP ${status} ${res.statusMessage ?? ''}`.trim()));
        return;
      }
      const total = Number(res.headers['content-length'] ?? 0);
      const hash = createHash('sha256');
      const out = createWriteStream(file);
      let done = 0;
      let failed = false;
      const fail = (e: Error) => {
        if (failed) return;
        failed = true;
        res.destroy();
        out.destroy();
        reject(e);
      };
      res.on('data', (chunk: Buffer) => {
        done += chunk.length;
        hash.update(chunk);
        options.onProgress?.(done, total);
      });
      res.on('aborted', () => fail(new DownloadError(`${url}: the connection closed after ${done} of ${total || '?'} bytes`)));
      res.on('error', (e) => fail(new DownloadError(`${url}: ${e.message} after ${done} bytes`)));
      res.on('end', () => {
        if (total && done !== total) fail(new DownloadError(`${url}: the connection closed after ${done} of ${total} bytes`));
      });
      out.on('error', (e) => fail(new DownloadError(`${file}: ${e.message}`)));
      out.on('finish', () => {
        if (failed) return;
        if (total && done !== total) return; // reported by 'end'
        resolve(hash.digest('hex'));
      });
      res.pipe(out);
    });
    req.setTimeout(options.idleTimeoutMs ?? 60_000, () => req.destroy(new DownloadError(`${url}: no data for ${(options.idleTimeoutMs ?? 60_000) / 1000} s`)));
    req.on('error', (e) => {
      const code = (e as NodeJS.ErrnoException).code;
      reject(e instanceof DownloadError ? e : new DownloadError(`${url}: ${code ?? e.message}`));
    });
  });
}
