// First-run download against a local HTTP server on 127.0.0.1: hash match and
// mismatch, an interrupted transfer, a redirect, a 404, and no server at all.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { download, hashPrefixOf } from '../src/node/download.js';
import { readSafetensors, resolveWeights } from '../src/node/weights.js';

const checkpoint = readFileSync(new URL('./fixtures/weights/basic_zip.pt', import.meta.url));
const prefix = createHash('sha256').update(checkpoint).digest('hex').slice(0, 8);
const good = `small-${prefix}.pt`;

let server: http.Server;
let base: string;
let dir: string;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const url = req.url ?? '';
    if (url === `/good/${good}` || url === '/bad/small-deadbeef.pt') {
      res.writeHead(200, { 'content-length': checkpoint.length });
      res.end(checkpoint);
    } else if (url === `/cut/${good}`) {
      res.writeHead(200, { 'content-length': checkpoint.length });
      res.write(checkpoint.subarray(0, checkpoint.length >> 1), () => res.socket?.destroy());
    } else if (url === `/redirect/${good}`) {
      res.writeHead(302, { location: `/good/${good}` });
      res.end();
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'midas-dl-'));
});
afterEach(() => {
  for (const f of readdirSync(dir)) rmSync(path.join(dir, f), { recursive: true, force: true });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('download', () => {
  it('reads the sha256 prefix from the file name as torch.hub does', () => {
    expect(hashPrefixOf('model-f46da743.pt')).toBe('f46da743');
    expect(hashPrefixOf('/x/midas_v21-f6b98070.pt')).toBe('f6b98070');
    expect(hashPrefixOf('weights.pt')).toBeNull();
  });

  it('keeps a file whose sha256 starts with the prefix in its name', async () => {
    const dest = path.join(dir, good);
    let seen = 0;
    await download(`${base}/good/${good}`, dest, { onProgress: (done) => (seen = done) });
    expect(readFileSync(dest).equals(checkpoint)).toBe(true);
    expect(seen).toBe(checkpoint.length);
    expect(readdirSync(dir)).toEqual([good]);
  });

  it('follows a redirect', async () => {
    const dest = path.join(dir, good);
    await download(`${base}/redirect/${good}`, dest);
    expect(readFileSync(dest).equals(checkpoint)).toBe(true);
  });

  it('discards a file whose hash does not match, leaving nothing behind', async () => {
    const dest = path.join(dir, 'small-deadbeef.pt');
    await expect(download(`${base}/bad/small-deadbeef.pt`, dest)).rejects.toThrow(/does not start with deadbeef/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('an interrupted transfer is an error and leaves nothing behind', async () => {
    const dest = path.join(dir, good);
    await expect(download(`${base}/cut/${good}`, dest)).rejects.toThrow(/closed after|aborted|ECONNRESET/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a 404 is an error naming the URL', async () => {
    await expect(download(`${base}/nothing/${good}`, path.join(dir, good))).rejects.toThrow(`${base}/nothing/${good}: HTTP 404`);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('weights on first use', () => {
  const env = { home: process.env['MIDAS_HOME'], url: process.env['MIDAS_WEIGHTS_URL'] };
  afterEach(() => {
    for (const [k, v] of [['MIDAS_HOME', env.home], ['MIDAS_WEIGHTS_URL', env.url]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it('downloads, checks, converts and caches; the second call uses the cache', async () => {
    process.env['MIDAS_HOME'] = dir;
    process.env['MIDAS_WEIGHTS_URL'] = `${base}/good/${good}`;
    const lines: string[] = [];
    const file = await resolveWeights(undefined, { log: (l) => lines.push(l) });
    expect(file).toBe(path.join(dir, `small-${prefix}.safetensors`));
    expect(readSafetensors(file).names.length).toBeGreaterThan(0);
    expect(lines.some((l) => l.startsWith('downloading'))).toBe(true);
    const again: string[] = [];
    expect(await resolveWeights(undefined, { log: (l) => again.push(l) })).toBe(file);
    expect(again).toEqual([]);
  });

  it('offline: a clear error naming the URL and --weights', async () => {
    process.env['MIDAS_HOME'] = dir;
    // A port nothing listens on: bind one, note it, close it.
    const s = http.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    process.env['MIDAS_WEIGHTS_URL'] = `http://127.0.0.1:${port}/model-f46da743.pt`;
    await expect(resolveWeights(undefined)).rejects.toThrow(/could not download .*127\.0\.0\.1.*ECONNREFUSED.*--weights FILE/);
    expect(existsSync(path.join(dir, 'model-f46da743.pt'))).toBe(false);
  });

  it('a .pt given with --weights is converted once into the cache, keyed by its content', async () => {
    process.env['MIDAS_HOME'] = dir;
    const pt = new URL('./fixtures/weights/basic_legacy.pt', import.meta.url).pathname;
    const first = await resolveWeights(pt);
    expect(first.startsWith(path.join(dir, 'converted', 'basic_legacy-'))).toBe(true);
    expect(await resolveWeights(pt)).toBe(first);
    // A safetensors file is taken as it is.
    expect(await resolveWeights(first)).toBe(first);
  });
});
