// Long runs, resource limits and faults, on the reduced network of test/fixtures/midas.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { existsSync } from 'node:fs';
import { checkInputFits } from '../src/midas/model.js';
import { MIDAS_V2, type MidasConfig } from '../src/midas/config.js';
import { Runtime } from '../src/nn/runtime.js';
import { nodeGpu } from '../src/node/gpu.js';
import { loadMidas, type MidasModel } from '../src/node/load.js';
import { maxAbsDiff, random } from './reference.js';
import { REDUCED, REDUCED_WEIGHTS } from './reduced.js';
import { runNode } from './spawn.js';

const WEIGHTS = REDUCED_WEIGHTS;

function rawImage(width: number, height: number, seed: number) {
  const v = random(width * height * 3, seed);
  return { data: Uint8Array.from(v, (x) => Math.round((x + 1) * 127.5)), width, height, channels: 3 as const };
}

describe('long runs', () => {
  let model: MidasModel;
  beforeAll(async () => {
    model = await loadMidas({ weights: WEIGHTS, config: REDUCED, size: 128 });
  });
  afterAll(() => model?.dispose());

  // Live GPU buffers, pool and allocations must not move at all once warm.
  it('100 predictions in one process: live GPU buffers, the pool, allocations and bind groups stay exactly flat after warm-up', async () => {
    const img = rawImage(83, 61, 1);
    for (let i = 0; i < 10; i++) await model.predict(img);
    const before = model.runtime.stats();
    for (let i = 0; i < 100; i++) {
      const r = await model.predict(img);
      expect(r.depth.length).toBe(83 * 61);
    }
    const after = model.runtime.stats();
    expect(after.liveTensors).toBe(before.liveTensors);
    expect(after.allocatedBuffers).toBe(before.allocatedBuffers);
    expect(after.pooledBytes).toBe(before.pooledBytes);
    // Same buffers in the same order each time: every bind group comes from the cache.
    expect(after.bindGroupsCreated).toBe(before.bindGroupsCreated);
  });

  // RSS, in a process of its own with the collector exposed so the JS heap's own
  // swings do not count: it climbs for the first ~200 predictions while the native
  // allocators, Mesa and V8 warm up (181 -> 255 MiB measured), then stays within a few
  // MiB (measured 4-8 MiB per 100; a leak of one 83x61 map per call would be 2 MiB, of one
  // activation set 20+ MiB).
  it('100 predictions after warm-up grow RSS by less than 20 MiB', async () => {
    const dist = new URL('../dist/src/node/index.js', import.meta.url);
    expect(existsSync(dist), 'run `npm run build` first (npm test does)').toBe(true);
    const script = `
      const { loadMidas } = await import(${JSON.stringify(dist.href)});
      const model = await loadMidas({ weights: ${JSON.stringify(WEIGHTS)}, config: ${JSON.stringify(REDUCED)}, size: 128 });
      const img = { data: new Uint8Array(83 * 61 * 3).map((_, i) => (i * 7) % 251), width: 83, height: 61, channels: 3 };
      const rss = () => { globalThis.gc(); globalThis.gc(); return process.memoryUsage().rss; };
      for (let i = 0; i < 200; i++) await model.predict(img);
      const a = rss();
      for (let i = 0; i < 100; i++) await model.predict(img);
      const b = rss();
      console.log(JSON.stringify({ a, b }));
      process.exit(0);`;
    const r = await runNode(['--expose-gc', '--input-type=module', '-e', script], { timeout: 300_000 });
    expect(r.status, r.stderr).toBe(0);
    const { a, b } = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { a: number; b: number };
    console.log(`RSS after 200 predictions ${(a / 2 ** 20).toFixed(1)} MiB, after 100 more ${(b / 2 ** 20).toFixed(1)} MiB`);
    expect(b - a).toBeLessThan(20 * 2 ** 20);
  });

  // fitSize: a 1x1 image scales up to the full size; a side that would round to 0
  // (a 5x400 strip) is clamped to 32 (the hub would fail there).
  it('a 1x1 image and a 5x400 strip run and give maps of their own size', async () => {
    const one = await model.predict(rawImage(1, 1, 2));
    expect([one.width, one.height, one.depth.length]).toEqual([1, 1, 1]);
    expect(Number.isFinite(one.depth[0])).toBe(true);
    const strip = await model.predict(rawImage(5, 400, 3));
    expect([strip.width, strip.height, strip.depth.length]).toEqual([5, 400, 2000]);
    expect(strip.depth.every(Number.isFinite)).toBe(true);
  });

  it('images of different sizes reuse the pool: a repeat of the same sizes allocates nothing', async () => {
    const sizes = [[83, 61], [40, 90], [128, 33]] as const;
    for (const [w, h] of sizes) await model.predict(rawImage(w, h, w));
    const before = model.runtime.stats().allocatedBuffers;
    for (const [w, h] of sizes) await model.predict(rawImage(w, h, w));
    expect(model.runtime.stats().allocatedBuffers).toBe(before);
  });
});

describe('activation size against the adapter limit', () => {
  const LAVAPIPE_LIMIT = 128 * 2 ** 20;

  it('full-size v2: a square image runs at --size 512 and is refused at 544 with the limit and the largest size that fits', () => {
    expect(() => checkInputFits(MIDAS_V2, 512, LAVAPIPE_LIMIT, 1000, 1000)).not.toThrow();
    expect(() => checkInputFits(MIDAS_V2, 544, LAVAPIPE_LIMIT, 1000, 1000)).toThrow(
      'a 544x544 network input needs a 145 MiB activation, over this adapter\'s maxStorageBufferBindingSize (128 MiB); use --size 512 or less for this image',
    );
    expect(() => checkInputFits(MIDAS_V2, 1536, LAVAPIPE_LIMIT, 1546, 1213)).toThrow(/use --size 576 or less/);
  });

  it('on a runtime capped at 4 MiB, predict runs just under the edge and refuses just over it, before any work', async () => {
    const rt = await Runtime.create(nodeGpu(), { capLimits: { maxStorageBufferBindingSize: 4 * 2 ** 20 } });
    // Reduced head: 8 channels at full size = 32 bytes a pixel: 352x352 fits 4 MiB, 384x384 does not.
    const under = await loadMidas({ weights: WEIGHTS, config: REDUCED, size: 352, runtime: rt });
    const r = await under.predict(rawImage(400, 400, 3));
    expect([r.width, r.height]).toEqual([400, 400]);
    under.dispose();
    const over = await loadMidas({ weights: WEIGHTS, config: REDUCED, size: 384, runtime: rt });
    const dispatches = rt.stats().dispatches;
    await expect(over.predict(rawImage(400, 400, 3))).rejects.toThrow(/over this adapter's maxStorageBufferBindingSize \(4 MiB\); use --size 352 or less/);
    expect(rt.stats().dispatches).toBe(dispatches);
    over.dispose();
    rt.destroy();
  });

  it('an output map bigger than one buffer is resized back in strips and equals the one-piece result', async () => {
    // 600x400 floats = 938 KiB of output: a 256 KiB cap makes strips of 109 rows. The
    // network runs at size 32 so every activation and weight fits that cap.
    const img = rawImage(600, 400, 5);
    const rt = await Runtime.create(nodeGpu(), { capLimits: { maxStorageBufferBindingSize: 256 * 1024 } });
    const strips = await loadMidas({ weights: WEIGHTS, config: REDUCED, size: 32, runtime: rt });
    const whole = await loadMidas({ weights: WEIGHTS, config: REDUCED, size: 32 });
    const s = await strips.predict(img);
    const o = await whole.predict(img);
    // The capped runtime also takes the CPU x-pass of the transform (the image is over
    // the cap), which differs from the GPU's by float rounding only.
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of o.depth) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
    expect(maxAbsDiff(s.depth, o.depth)).toBeLessThanOrEqual(1e-5 * (hi - lo));
    strips.dispose();
    whole.dispose();
    rt.destroy();
  });
});

describe('faults', () => {
  it('device lost in the middle of a run: predict rejects (no hang), and a new model works', async () => {
    const model = await loadMidas({ weights: WEIGHTS, config: REDUCED, size: 128 });
    const img = rawImage(83, 61, 7);
    await model.predict(img);
    const pending = model.predict(img);
    model.runtime.device.destroy();
    await expect(pending).rejects.toThrow();
    await expect(model.predict(img)).rejects.toThrow(/device (was )?(lost|destroyed)|WebGPU device lost/i);
    const fresh = await loadMidas({ weights: WEIGHTS, config: REDUCED, size: 128 });
    const r = await fresh.predict(img);
    expect(r.depth.length).toBe(83 * 61);
    fresh.dispose();
  });
});
