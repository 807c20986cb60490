// The shader warm-up loadMidas runs while the weights load (src/midas/warm.ts): it
// creates exactly the pipelines a prediction then uses, on the main device and on
// helpers, and changes no result.
import { describe, expect, it } from 'vitest';
import { loadMidas } from '../src/node/load.js';
import { modelShaders, splitShaders, warmShaders } from '../src/midas/warm.js';
import { modelVariants } from '../src/midas/kernel_variants.js';
import { MIDAS_SMALL, MIDAS_V2 } from '../src/midas/config.js';
import { Runtime, shaderBindings } from '../src/nn/runtime.js';
import { nodeGpu } from '../src/node/gpu.js';
import { startWarmUp, warmHelpers, warmMarker } from '../src/node/warm.js';
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { testRuntime } from './gpu.js';
import { REDUCED_SMALL, REDUCED_V2 } from './reduced.js';

const image = (w: number, h: number) => {
  const data = new Uint8Array(w * h * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + (i >> 7)) & 255;
  return { data, width: w, height: h, channels: 3 as const };
};

describe('shader warm-up', () => {
  it("shaderBindings reads every planned shader's bindings: 0..n-1, storage buffers, then the params block", async () => {
    const rt = await testRuntime();
    for (const fixture of [REDUCED_V2, REDUCED_SMALL]) {
      const shaders = modelShaders(rt, fixture.config, 64);
      expect(shaders.length).toBeGreaterThan(3);
      for (const code of shaders) {
        const b = shaderBindings(code);
        expect(b.map((x) => x.binding)).toEqual(b.map((_, i) => i));
        expect(b.at(-1)!.kind).toBe('uniform');
        expect(b.slice(0, -1).every((x) => x.kind === 'storage')).toBe(true);
      }
    }
  });

  it('the shaders planned on a square image are every shader a photo of another shape runs (full-size v2 at 384, small at 256)', async () => {
    const rt = await testRuntime();
    for (const [config, size] of [[MIDAS_V2, 384], [MIDAS_SMALL, 256]] as const) {
      const planned = new Set(modelShaders(rt, config, size));
      for (const [width, height] of [[640, 480], [480, 640], [1280, 720], [333, 500], [97, 1000]]) {
        const used = modelVariants(rt, config, size, 'f32', { width, height }).variants;
        const unplanned = used.filter((v) => !planned.has(v.shader)).map((v) => v.name);
        expect(unplanned, `${width}x${height} at ${size}`).toEqual([]);
      }
    }
  });

  it('splitShaders gives each shader to exactly one group, the longest spread first', () => {
    const codes = ['a'.repeat(900), 'b'.repeat(500), 'c'.repeat(400), 'd'.repeat(300), 'e'.repeat(200), 'f'.repeat(100)];
    const groups = splitShaders(codes, 2);
    expect(groups.flat().sort()).toEqual([...codes].sort());
    const cost = groups.map((g) => g.reduce((n, c) => n + c.length, 0));
    expect(Math.abs(cost[0]! - cost[1]!)).toBeLessThanOrEqual(100);
    expect(splitShaders(codes, 1)).toEqual([[...codes].sort((a, b) => b.length - a.length)]);
  });

  for (const fixture of [REDUCED_V2, REDUCED_SMALL]) {
    it(`${fixture.name}: after warmShaders on the device and a helper, a prediction creates no pipeline, and loadMidas gives the same depth with and without it`, async () => {
      const gpu = nodeGpu();
      const rt = await Runtime.create(gpu);
      const helper = await Runtime.create(gpu);
      try {
        const size = fixture.manifest.size;
        const shaders = modelShaders(rt, fixture.config, size);
        await warmShaders(rt, shaders, [helper]);
        const planned = new Set(shaders).size;
        expect(rt.stats().pipelinesCreated + helper.stats().pipelinesCreated).toBe(planned);
        expect(helper.stats().pipelinesCreated).toBeGreaterThan(0);

        expect(rt.stats().pipelinesCreated).toBeGreaterThan(0);

        // On a given runtime loadMidas warms it alone: the helper's share too.
        const warm = await loadMidas({ weights: fixture.weights, config: fixture.config, size, tune: false, runtime: rt });
        expect(rt.stats().pipelinesCreated).toBe(planned);
        const a = await warm.predict(image(size, size));
        expect(rt.stats().pipelinesCreated).toBe(planned);
        warm.dispose();

        const plain = await loadMidas({ weights: fixture.weights, config: fixture.config, size, tune: false, warmUp: false });
        const b = await plain.predict(image(size, size));
        expect(plain.runtime.stats().pipelinesCreated).toBe(planned);
        plain.dispose();
        expect(a.depth).toEqual(b.depth);
      } finally {
        helper.destroy();
        rt.destroy();
      }
    });
  }

  it('helpers are opened until the shaders have been compiled once (the marker in $MIDAS_HOME/warm); MIDAS_WARM_HELPERS overrides', async () => {
    const saved = { home: process.env['MIDAS_HOME'], helpers: process.env['MIDAS_WARM_HELPERS'] };
    process.env['MIDAS_HOME'] = mkdtempSync(path.join(os.tmpdir(), 'midas-warm-'));
    delete process.env['MIDAS_WARM_HELPERS'];
    const gpu = nodeGpu();
    const rt = await Runtime.create(gpu);
    try {
      const { config, manifest } = REDUCED_SMALL;
      const marker = warmMarker(rt, modelShaders(rt, config, manifest.size));
      expect(existsSync(marker)).toBe(false);
      const first = await startWarmUp(rt, gpu, config, manifest.size, 'f32');
      await first.done;
      // lavapipe on a machine with a spare core: 1 (at most 3); other adapters: 0.
      expect(first.helpers).toBe(warmHelpers(rt, false));
      expect(existsSync(marker)).toBe(true);
      const second = await startWarmUp(rt, gpu, config, manifest.size, 'f32');
      await second.done;
      expect(second.helpers).toBe(0);
      process.env['MIDAS_WARM_HELPERS'] = '2';
      const forced = await startWarmUp(rt, gpu, config, manifest.size, 'f32');
      await forced.done;
      expect(forced.helpers).toBe(2);
      process.env['MIDAS_WARM_HELPERS'] = 'many';
      expect(() => warmHelpers(rt)).toThrow(/MIDAS_WARM_HELPERS must be a whole number of helper devices \(got 'many'\)/);
    } finally {
      for (const [k, v] of [['MIDAS_HOME', saved.home], ['MIDAS_WARM_HELPERS', saved.helpers]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      rt.destroy();
    }
  });
});
