// The self-check behind `midas info --check` (src/midas/selfcheck.ts): which kernel
// variants a prediction runs on an adapter, each run small against the CPU, and that a
// wrong result fails by name.
import { describe, expect, it } from 'vitest';
import { MIDAS_SMALL, MIDAS_V2 } from '../src/midas/config.js';
import { compare, convReference, sampleOutputs } from '../src/midas/cpu_kernels.js';
import { callOf, modelVariants, variantName } from '../src/midas/kernel_variants.js';
import { selfCheck, type SelfCheckResult } from '../src/midas/selfcheck.js';
import { Runtime } from '../src/nn/runtime.js';
import { nodeGpu } from '../src/node/gpu.js';
import { plainRuntime, testRuntime } from './gpu.js';
import { REDUCED, REDUCED_SMALL } from './reduced.js';

const expectAllPass = (r: SelfCheckResult) => {
  for (const v of r.variants) {
    expect(v.problem, v.name).toBeUndefined();
    expect(v.ok, `${v.name}: error ${v.error} over tolerance ${v.tolerance}`).toBe(true);
    expect(v.compared, v.name).toBeGreaterThan(0);
  }
  expect(r.ok).toBe(true);
};

describe('the variants of a prediction', () => {
  for (const [name, config, size] of [['v2', MIDAS_V2, 384], ['small', MIDAS_SMALL, 256]] as const) {
    it(`${name} at ${size}: every dispatch belongs to one variant (one shader), each with a call to make again`, async () => {
      const rt = await testRuntime();
      const { variants, dispatches } = modelVariants(rt, config, size);
      // The network's dispatches, the transform's two and the resize back.
      expect(dispatches).toBe(name === 'v2' ? 134 + 3 : 105 + 3);
      expect(variants.reduce((a, v) => a + v.dispatches, 0)).toBe(dispatches);
      expect(new Set(variants.map((v) => v.shader)).size).toBe(variants.length);
      expect(new Set(variants.map((v) => v.name)).size).toBe(variants.length);
      for (const v of variants) expect(typeof v.call, `${v.name}: ${String(v.call)}`).toBe('object');
      const ops = new Set(variants.map((v) => (v.call as { op: string }).op));
      expect([...ops].sort()).toEqual(name === 'v2' ? ['add', 'conv', 'maxpool', 'normalize', 'resize'] : ['add', 'conv', 'normalize', 'resize']);
      if (name === 'small') expect(variants.some((v) => v.name.startsWith('depthwise '))).toBe(true);
    });
  }

  it('follow the adapter: without subgroups other conv shaders run', async () => {
    const [sg, plain] = [await testRuntime(), await plainRuntime()];
    const shaders = (rt: Runtime) => new Set(modelVariants(rt, MIDAS_V2, 384).variants.map((v) => v.shader));
    const a = shaders(sg);
    const b = shaders(plain);
    expect(sg.subgroupMinSize).toBeGreaterThan(0);
    expect([...b].filter((s) => s.includes('subgroup'))).toEqual([]);
    expect([...a].some((s) => s.includes('subgroupBroadcast'))).toBe(true);
  });

  it('a label without sizes names a variant; a kernel with no CPU reference is said so', () => {
    expect(variantName('conv2d_tiled 3x3/1 g32 256->256 @96x96 [relu]')).toBe('conv2d_tiled 3x3/1 g32 256->256 [relu]');
    expect(variantName('resize bilinear align_corners 12x12->24x24 c256')).toBe('resize bilinear align_corners c256');
    expect(variantName('maxpool2d 3x3/2 [1x192x192x64]')).toBe('maxpool2d 3x3/2');
    const record = { scope: '', kernel: 'batchnorm2d 64 [1x8x8x64]', input: [1, 8, 8, 64], output: [1, 8, 8, 64], workgroups: [1, 1, 1] as const, macs: 0, shader: '' };
    expect(callOf(record, new Map())).toBe("no CPU reference for the kernel 'batchnorm2d'");
    expect(callOf({ ...record, kernel: 'conv2d_tiled 1x1/1 g1 8->8 @8x8', scope: 'x' }, new Map())).toBe("'conv2d_tiled 1x1/1 g1 8->8 @8x8' ran under 'x', which is not a Conv2d");
  });
});

describe('the comparison', () => {
  it('takes the output with the largest error against its tolerance; NaN and any difference from an exact kernel fail', () => {
    const ref = { index: null, value: Float64Array.from([1, 2, 3]), tol: Float64Array.from([0.1, 0.01, 0]) };
    expect(compare(Float32Array.from([1.05, 2, 3]), ref, 3)).toEqual({ ok: true, error: expect.closeTo(0.05, 6), tolerance: 0.1, compared: 3 });
    expect(compare(Float32Array.from([1, 2.02, 3]), ref, 3)).toMatchObject({ ok: false, tolerance: 0.01 });
    expect(compare(Float32Array.from([1, 2, 3.0001]), ref, 3)).toMatchObject({ ok: false, tolerance: 0 });
    expect(compare(Float32Array.from([NaN, 2, 3]), ref, 3)).toMatchObject({ ok: false, error: Infinity });
    expect(compare(Float32Array.from([1, 2]), ref, 3).ok).toBe(false);
  });

  it("a conv's tolerance is under a typical product at MiDaS's largest reduction (K = 3x3x2048)", () => {
    const cin = 2048;
    const K = 9 * cin;
    const x = Float32Array.from({ length: K }, (_, i) => Math.sin(i * 12.9898) * 0.5 + 0.5);
    const w = Float32Array.from({ length: K }, (_, i) => Math.cos(i * 78.233) / Math.sqrt(K));
    const ref = convReference(x, w, { n: 1, h: 3, w: 3, cin, cout: 1, kh: 3, kw: 3, sh: 1, sw: 1, pad: [0, 0, 0, 0], groups: 1 }, null);
    // x[(ky*3 + kx)*cin + ci] meets w[(ci*3 + ky)*3 + kx].
    let mag = 0;
    for (let t = 0; t < 9; t++) for (let ci = 0; ci < cin; ci++) mag += Math.abs(x[t * cin + ci]! * w[ci * 9 + t]!);
    const typical = mag / K;
    expect(ref.tol[0]!).toBeLessThan(typical / 2);
    // So one product missed or read wrongly fails the comparison.
    expect(compare(Float32Array.from([ref.value[0]!]), ref, 1).ok).toBe(true);
    expect(compare(Float32Array.from([ref.value[0]! + typical]), ref, 1).ok).toBe(false);
  });

  it('samples outputs over every pixel and channel when all would cost too much', () => {
    expect(sampleOutputs(10, 10, 1)).toBeNull();
    const s = sampleOutputs(64, 2048, 2048 * 9, 4e7)!;
    const pixels = new Set([...s].map((i) => Math.floor(i / 2048)));
    const channels = new Set([...s].map((i) => i % 2048));
    expect(pixels.size).toBe(64);
    expect(s.length * 2048 * 9).toBeLessThanOrEqual(4e7 + 2048 * 9 * 64);
    expect(channels.size).toBe(2048);
  });
});

describe('selfCheck on this adapter', () => {
  for (const [fixture, config] of [['reduced v2', REDUCED], ['reduced small', REDUCED_SMALL.config]] as const) {
    it(`${fixture}: every variant passes, with and without subgroups`, async () => {
      for (const rt of [await testRuntime(), await plainRuntime()]) {
        const seen: string[] = [];
        const r = await selfCheck(rt, { config, size: 64, onVariant: (v) => seen.push(v.name) });
        expectAllPass(r);
        expect(seen).toEqual(r.variants.map((v) => v.name));
        expect(r.adapter).toBe(rt.adapterName);
      }
    }, 600_000);
  }

  it('f16 weights and f16 math: their variants pass (shader-f16); an adapter without shader-f16 is refused by name', async () => {
    const rt = await testRuntime();
    if (rt.features.f16) {
      const r = await selfCheck(rt, { config: REDUCED, size: 64, precision: 'f16' });
      expectAllPass(r);
      expect(r.variants.some((v) => v.name.includes('w:f16'))).toBe(true);
      const math = await selfCheck(rt, { config: REDUCED, size: 64, precision: 'f16-math' });
      expectAllPass(math);
      expect(math.variants.some((v) => / f16( |$)/.test(v.name))).toBe(true);
    }
    // Without shader-f16: the test adapter itself where it lacks it (SwiftShader), else a device opened without it.
    const noF16 = rt.features.f16 ? await Runtime.create(nodeGpu(), { wantFeatures: { f16: false } }) : rt;
    try {
      for (const precision of ['f16', 'f16-math'] as const) {
        await expect(selfCheck(noF16, { config: REDUCED, size: 64, precision })).rejects.toThrow(`precision '${precision}' needs the shader-f16 feature, which ${noF16.adapterName} does not have`);
      }
    } finally {
      if (noF16 !== rt) noF16.destroy();
    }
  }, 600_000);

  it('a kernel given a wrong input fails, by name, with an error far over its tolerance; the rest pass', async () => {
    const rt = await testRuntime();
    const r = await selfCheck(rt, { config: REDUCED, size: 64, breakKernel: 'maxpool2d' });
    const failed = r.variants.filter((v) => !v.ok);
    expect(failed.map((v) => v.name)).toEqual(['maxpool2d 3x3/2']);
    expect(failed[0]!.error).toBeGreaterThan(1);
    expect(r.ok).toBe(false);
    const convs = await selfCheck(rt, { config: REDUCED, size: 64, breakKernel: 'conv2d_' });
    const broken = convs.variants.filter((v) => v.name.startsWith('conv2d_'));
    expect(broken.length).toBeGreaterThan(1);
    for (const v of convs.variants) expect(v.ok, v.name).toBe(!v.name.startsWith('conv2d_'));
    for (const v of broken) expect(v.error / v.tolerance).toBeGreaterThan(100);
  }, 600_000);
});
