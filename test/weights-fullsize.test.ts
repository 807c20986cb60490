// The full-size check: PyTorch writes a random state_dict with the official MiDaS v2
// keys and shapes (666 entries, 105,565,929 numbers, ~422 MB) in both torch.save
// formats; the converter's output must equal it tensor by tensor, bit for bit (f32,
// and f16 against numpy's rounding), checked by an independent Python script, and must
// match the architecture's key list. Files live in a temp dir removed afterwards.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, openSync, readSync, closeSync, rmSync, statSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertCheckpoint, type ConvertStats } from '../tools/convert-weights/index.js';
import { checkWeights, parseSafetensorsHeader, safetensorsHeaderLength } from '../src/nn/safetensors.js';
import { run } from './spawn.js';

const FIX = join(import.meta.dirname, 'fixtures', 'weights');
const PYTHON = '/usr/bin/python3';
const NUMBERS = 105_565_929;

let dir: string;
const stats: Record<string, ConvertStats> = {};

async function python(args: string[], timeoutMs: number): Promise<string> {
  const r = await run(PYTHON, args, { timeout: timeoutMs });
  if (r.error) throw new Error(`${PYTHON} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${PYTHON} ${args.join(' ')} failed (${r.status}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Reads just the header of a (large) safetensors file. */
function readHeader(path: string): ReturnType<typeof parseSafetensorsHeader> {
  const size = statSync(path).size;
  const fd = openSync(path, 'r');
  try {
    const first = new Uint8Array(8);
    readSync(fd, first, 0, 8, 0);
    const n = safetensorsHeaderLength(first, size, path);
    const prefix = new Uint8Array(8 + n);
    readSync(fd, prefix, 0, 8 + n, 0);
    return parseSafetensorsHeader(prefix, size, path);
  } finally {
    closeSync(fd);
  }
}

/** sha256 of a file's bytes from `start` on (the data block). */
function hashFrom(path: string, start: number): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  const buf = new Uint8Array(16 << 20);
  try {
    for (let pos = start; ; ) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      pos += n;
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

beforeAll(async () => {
  const probe = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      `the full-size weights test needs ${PYTHON} with torch and numpy (Debian: apt-get install python3-torch python3-numpy): ` +
        `${probe.error?.message ?? probe.stderr.trim().split('\n').pop()}`,
    );
  }
  dir = mkdtempSync(join(tmpdir(), 'midas-fullsize-'));
  await python([join(FIX, 'generate.py'), 'fullsize', dir], 300_000);
}, 320_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('full-size MiDaS v2 checkpoints', () => {
  for (const [format, dtype] of [['zip', 'f32'], ['legacy', 'f32'], ['zip', 'f16']] as const) {
    it(`converts the ${format} checkpoint to ${dtype}`, async () => {
      const input = join(dir, `midas_v2_random_${format}.pt`);
      const out = join(dir, `${format}.${dtype}.safetensors`);
      const s = await convertCheckpoint(input, out, { dtype });
      stats[`${format}.${dtype}`] = s;
      expect(s.format).toBe(format);
      expect(s.tensors).toBe(562);
      expect(s.skipped).toHaveLength(104);
      expect(s.skipped.every((t) => t.name.endsWith('num_batches_tracked') && t.dtype === 'int64')).toBe(true);
      expect(s.numbers + s.skipped.length).toBe(NUMBERS);
      expect(s.outputBytes).toBe(statSync(out).size);
      // Streaming: the process (vitest's worker included) stays well under 2x the file.
      expect(s.peakRssBytes).toBeLessThan(1.0 * s.inputBytes);
      expect(process.resourceUsage().maxRSS * 1024).toBeLessThan(2 * s.inputBytes);
      console.log(
        `[weights-fullsize] ${format} → ${dtype}: ${(s.inputBytes / 1e6).toFixed(1)} MB in ${s.seconds.toFixed(2)} s, ` +
          `${s.mbPerSecond.toFixed(0)} MB/s, peak RSS ${(s.peakRssBytes / 2 ** 20).toFixed(0)} MiB (process max so far ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB)`,
      );

      // The architecture's key list: every key present and shaped right (num_batches_tracked optional).
      const keys = JSON.parse(readFileSync(join(FIX, 'midas_v2_keys.json'), 'utf8')) as { keys: [string, number[], string][] };
      const header = readHeader(out);
      const shapes = new Map([...header.tensors].map(([k, v]) => [k, v.shape]));
      expect(() => checkWeights(shapes, new Map(keys.keys.map(([k, sh]) => [k, sh])), { what: out })).not.toThrow();
      expect([...header.tensors.values()].every((t) => t.dtype === (dtype === 'f32' ? 'F32' : 'F16'))).toBe(true);
    });
  }

  it('wrote the same data from both formats', () => {
    const a = join(dir, 'zip.f32.safetensors');
    const b = join(dir, 'legacy.f32.safetensors');
    expect(hashFrom(a, readHeader(a).dataStart)).toBe(hashFrom(b, readHeader(b).dataStart));
  });

  it('equals PyTorch bit for bit, by an independent Python check of the files', async () => {
    const out = await python(
      [
        join(FIX, 'compare.py'),
        ...[join(dir, 'midas_v2_random_zip.pt'), join(dir, 'zip.f32.safetensors'), 'f32'],
        ...[join(dir, 'midas_v2_random_legacy.pt'), join(dir, 'legacy.f32.safetensors'), 'f32'],
        ...[join(dir, 'midas_v2_random_zip.pt'), join(dir, 'zip.f16.safetensors'), 'f16'],
      ],
      300_000,
    );
    const lines = out.trim().split('\n');
    expect(lines).toHaveLength(3);
    for (const l of lines) expect(l).toMatch(/^ok .*: 562 tensors, 105565825 numbers bit-identical .*; 104 integer buffers left out; layout valid$/);
  });
});
