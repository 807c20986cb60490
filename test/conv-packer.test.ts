// The packing thread (src/node/conv_packer.ts, src/node/pack_worker.ts): what it hands
// over must be exactly what packConvWeight gives on the main thread, in order, with the
// file's errors reported as one line naming it; and a network loaded through it must
// compute exactly what the same weights packed on the main thread compute.
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packConvWeight, type TileConfig } from '../src/kernels/conv2d_tiled.js';
import { createMidas } from '../src/midas/model.js';
import { midasWeights } from '../src/midas/weights.js';
import { toFloat16Bits } from '../src/nn/half.js';
import type { ConvPackJob } from '../src/nn/packing.js';
import { Runtime } from '../src/nn/runtime.js';
import { WorkerConvPacker } from '../src/node/conv_packer.js';
import { chooseGpu } from '../src/node/adapters.js';
import { loadMidas } from '../src/node/load.js';
import { StreamedSafetensors } from '../src/node/streamed.js';
import { readSafetensors } from '../src/node/weights.js';
import { encodeHeader, planSafetensors } from '../tools/convert-weights/safetensors-write.js';
import { REDUCED_SMALL, REDUCED_V2 } from './reduced.js';

interface Conv {
  name: string;
  shape: [number, number, number, number];
  groups: number;
  tile: TileConfig;
  scale?: boolean;
  f16?: boolean;
}

// Padded output channels (12 of tile 16), grouped, 1x1 and 7x7, a folded BN's scale,
// an F16 tensor in the file; the large one is several times the small budget below.
const CONVS: Conv[] = [
  { name: 'stem.weight', shape: [64, 3, 7, 7], groups: 1, tile: { tm: 2, nv: 8 }, scale: true },
  { name: 'a.weight', shape: [12, 8, 3, 3], groups: 1, tile: { tm: 4, nv: 4 } },
  { name: 'b.weight', shape: [64, 8, 3, 3], groups: 8, tile: { tm: 4, nv: 2 }, scale: true },
  { name: 'c.weight', shape: [256, 128, 1, 1], groups: 1, tile: { tm: 4, nv: 8 }, f16: true },
  { name: 'd.weight', shape: [128, 256, 3, 3], groups: 1, tile: { tm: 3, nv: 8 }, scale: true },
  { name: 'e.weight', shape: [32, 16, 1, 1], groups: 1, tile: { tm: 4, nv: 8 } },
];

function values(c: Conv): Float32Array {
  const n = c.shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  let s = c.name.length * 7919;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    v[i] = (s / 2 ** 32 - 0.5) * 2;
  }
  // What the file holds: F16 tensors are read back as their rounded values.
  return c.f16 ? new Float32Array(readHalf(toFloat16Bits(v))) : v;
}

function readHalf(bits: Uint16Array): number[] {
  return [...bits].map((h) => {
    const e = (h >> 10) & 31;
    const m = h & 1023;
    const sign = h & 0x8000 ? -1 : 1;
    return e === 0 ? sign * m * 2 ** -24 : sign * (1 + m / 1024) * 2 ** (e - 15);
  });
}

function scaleOf(c: Conv): Float64Array | undefined {
  return c.scale ? Float64Array.from({ length: c.shape[0] }, (_, i) => 0.5 + i / 37) : undefined;
}

let dir: string;
let file: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'midas-packer-'));
  file = path.join(dir, 'convs.safetensors');
  const { tensors, dataBytes } = planSafetensors(CONVS.map((c) => ({ name: c.name, dtype: c.f16 ? ('F16' as const) : ('F32' as const), shape: [...c.shape] })));
  const header = encodeHeader(tensors, { source: 'test/conv-packer.test.ts' });
  const bytes = new Uint8Array(header.length + dataBytes);
  bytes.set(header);
  for (const t of tensors) {
    const c = CONVS.find((x) => x.name === t.name)!;
    const v = values(c);
    const raw = c.f16 ? toFloat16Bits(v) : v;
    bytes.set(new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength), header.length + t.begin);
  }
  writeFileSync(file, bytes);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every conv, stored as f32 or, with `f16`, every other one as f16. */
function jobsFor(source: StreamedSafetensors, f16 = false): ConvPackJob[] {
  return CONVS.map((c, i) => ({ entry: source.entry(c.name), shape: c.shape, groups: c.groups, tile: c.tile, scale: scaleOf(c), dtype: f16 && i % 2 ? 'f16' : 'f32' }));
}

describe('WorkerConvPacker', () => {
  for (const [budget, f16] of [[undefined, false], [1, false], [1, true]] as const) {
    const how = `${budget ? 'one buffer at a time, reused' : 'the default budget'}${f16 ? ', every other conv as f16 bits' : ''}`;
    it(`hands over exactly packConvWeight's layout, in order (${how})`, () => {
      const source = StreamedSafetensors.open(file);
      const packer = new WorkerConvPacker(source, { budget });
      try {
        const jobs = jobsFor(source, f16);
        packer.start(jobs);
        expect(packer.jobsInWorker).toBe(CONVS.length);
        for (const [i, job] of jobs.entries()) {
          const got = packer.take(job);
          const packed = packConvWeight(values(CONVS[i]!), job.shape, job.groups, job.tile, job.scale).data;
          const want = job.dtype === 'f16' ? toFloat16Bits(packed) : packed;
          expect(got, CONVS[i]!.name).toBeInstanceOf(want.constructor);
          expect(got!.length).toBe(want.length);
          expect(Buffer.from(got!.buffer, got!.byteOffset, got!.byteLength).equals(Buffer.from(want.buffer)), CONVS[i]!.name).toBe(true);
        }
      } finally {
        packer.close();
        source.close();
      }
    });
  }

  it('leaves entries of other sources to the caller, and refuses jobs taken out of order', () => {
    const source = StreamedSafetensors.open(file);
    const other = StreamedSafetensors.open(file);
    const packer = new WorkerConvPacker(source);
    try {
      const [first, second] = jobsFor(source);
      const foreign: ConvPackJob = { ...first!, entry: other.entry(CONVS[0]!.name) };
      packer.start([first!, foreign, second!]);
      expect(packer.jobsInWorker).toBe(2);
      expect(packer.take(foreign)).toBeUndefined();
      expect(() => packer.take(second!)).toThrow(/conv 1 taken before conv 0/);
      expect(packer.take(first!)).toBeDefined();
      expect(packer.take(second!)).toBeDefined();
    } finally {
      packer.close();
      source.close();
      other.close();
    }
  });

  it('gives up on a worker whose script never runs: the caller packs every job', () => {
    const broken = path.join(dir, 'broken-worker.mjs');
    writeFileSync(broken, "throw new Error('this worker does not start');\n");
    const source = StreamedSafetensors.open(file);
    const packer = new WorkerConvPacker(source, { script: pathToFileURL(broken), bootMs: 500 });
    try {
      const jobs = jobsFor(source);
      packer.start(jobs);
      expect(packer.jobsInWorker).toBe(CONVS.length);
      const started = performance.now();
      for (const job of jobs) expect(packer.take(job)).toBeUndefined();
      expect(performance.now() - started).toBeLessThan(30_000);
      expect(packer.jobsInWorker).toBe(0);
    } finally {
      packer.close();
      source.close();
    }
  });

  it('reports a file cut short after it was opened as one line naming the file', () => {
    const cut = path.join(dir, 'cut.safetensors');
    const bytes = readFileSync(file);
    writeFileSync(cut, bytes);
    const source = StreamedSafetensors.open(cut);
    const packer = new WorkerConvPacker(source);
    try {
      truncateSync(cut, bytes.length - 1000);
      const jobs = jobsFor(source);
      packer.start(jobs);
      let error: Error | undefined;
      try {
        for (const job of jobs) packer.take(job);
      } catch (e) {
        error = e as Error;
      }
      expect(error?.message).toMatch(new RegExp(`^${cut.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: `));
      expect(error?.message).not.toContain('\n');
      // Later takes repeat the error rather than wait.
      expect(() => packer.take(jobs.at(-1)!)).toThrow(error!.message);
    } finally {
      packer.close();
      source.close();
    }
  });
});

describe('a network loaded through the packing thread', () => {
  const cases = [
    [REDUCED_V2, 'f32'],
    [REDUCED_SMALL, 'f32'],
    [REDUCED_V2, 'f16'],
  ] as const;
  for (const [fixture, precision] of cases) {
    it(`${fixture.name}, ${precision}: loadMidas's depth map equals, bit for bit, the one from weights packed on the main thread`, async () => {
      const size = 64;
      const image = { data: new Uint8Array(96 * 80 * 3).map((_, i) => (i * 37) % 251), width: 96, height: 80 };
      const runtime = await Runtime.create(await chooseGpu(undefined));
      try {
        if (precision === 'f16' && !runtime.features.f16) return expect.fail(`${runtime.adapterName} lacks shader-f16`);
        const viaThread = await loadMidas({ weights: fixture.weights, config: fixture.config, size, precision, tune: false, warmUp: false, runtime });
        const threaded = await viaThread.predict({ ...image, channels: 3 });
        viaThread.dispose();
        const inMemory = midasWeights(readSafetensors(fixture.weights), fixture.config);
        const plain = await createMidas(runtime, inMemory, { size, precision, config: fixture.config }, false);
        const main = await plain.predict(image);
        plain.dispose();
        expect(threaded.depth.length).toBe(main.depth.length);
        expect(Buffer.from(threaded.depth.buffer).equals(Buffer.from(main.depth.buffer))).toBe(true);
      } finally {
        runtime.destroy();
      }
    });
  }
});
