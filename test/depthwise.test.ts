// The depthwise kernel against the CPU reference (test/reference.ts): kernel sizes 3
// and 5, strides 1 and 2, symmetric and per-side padding (TF "SAME" pads (0,0,1,1) for
// k3 and (1,1,2,2) for k5 on even sides), each fused activation, the fused residual,
// odd sizes that leave a thread's pixel block partly outside the image, channel
// counts that are not multiples of 4 (the scalar shader), and f16-stored weights.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Float16Array } from '@petamoriken/float16';
import { Runtime } from '../src/nn/runtime.js';
import { nodeGpu } from '../src/node/gpu.js';
import { DEPTHWISE_BLOCKS, depthwiseBytes, depthwiseConv2d, depthwiseTile, depthwiseWorkgroup, disposeDepthwise, isDepthwise, MAX_UNROLLED, depthwiseUnrolled, packDepthwise, packDepthwiseWeight, type DepthwiseTile } from '../src/kernels/depthwise.js';
import { conv2dNaive, convGeometry } from '../src/kernels/conv2d.js';
import type { Pad4 } from '../src/kernels/common.js';
import { conv2dRef, maxAbsDiff, random } from './reference.js';
import { F16_REFUSED, testRuntime } from './gpu.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await testRuntime();
});
afterAll(() => rt?.trim());

// k*k f32 products of values in [-1, 1] plus a bias: 1e-5 is ~20x the worst rounding
// error of 25 terms and far below an indexing mistake (O(0.1) or more).
const TOL = 1e-5;

type Act = 'none' | 'relu' | 'relu6';

interface DwCase {
  n: number; h: number; w: number; c: number; k: number; stride: number;
  pad: number | Pad4;
  act: Act;
  residual?: boolean;
  f16?: boolean;
}

const padText = (p: number | Pad4) => (typeof p === 'number' ? `pad ${p}` : `pad [${p.join(',')}]`);
const label = (d: DwCase) =>
  `${d.k}x${d.k}/${d.stride} ${padText(d.pad)} ${d.c} channels on ${d.n}x${d.h}x${d.w}` +
  `${d.act === 'none' ? '' : ` + ${d.act}`}${d.residual ? ' + residual' : ''}${d.f16 ? ', f16 weights' : ''}`;

/** Scales inputs to [-4, 4) so that a ReLU6 clips at both ends. */
const SCALE = 4;

async function runCase(d: DwCase, tile?: DepthwiseTile): Promise<{ got: Float32Array; ref: Float32Array; kernel: string }> {
  const x = random(d.n * d.h * d.w * d.c, d.h * 100 + d.w + d.c).map((v) => v * SCALE);
  const wt = random(d.c * d.k * d.k, d.c + d.k);
  const bias = random(d.c, d.c * 7 + 1);
  const [pt, pl, pb, pr] = typeof d.pad === 'number' ? [d.pad, d.pad, d.pad, d.pad] : d.pad;
  const g = { oh: Math.floor((d.h + pt + pb - d.k) / d.stride) + 1, ow: Math.floor((d.w + pl + pr - d.k) / d.stride) + 1 };
  const res = d.residual ? random(d.n * g.oh * g.ow * d.c, 99).map((v) => v * SCALE) : undefined;
  // f16 storage: the reference gets the same rounded weights.
  const wRef = d.f16 ? new Float32Array(new Float16Array(wt)) : wt;
  const ref = conv2dRef(x, wRef, {
    n: d.n, h: d.h, w: d.w, cin: d.c, cout: d.c, kh: d.k, kw: d.k, stride: d.stride, pad: d.pad, groups: d.c,
    bias, residual: res, relu: d.act === 'relu', relu6: d.act === 'relu6',
  });
  const xt = rt.upload(x, [d.n, d.h, d.w, d.c]);
  const rT = res ? rt.upload(res, [d.n, g.oh, g.ow, d.c]) : undefined;
  const packed = packDepthwise(rt, wt, [d.c, 1, d.k, d.k], bias, d.f16 ? 'f16' : 'f32');
  rt.records = [];
  const y = depthwiseConv2d(rt, xt, packed, { stride: d.stride, padding: d.pad, relu: d.act === 'relu', relu6: d.act === 'relu6', residual: rT }, tile);
  const kernel = rt.records.at(-1)!.kernel;
  rt.records = null;
  const got = await y.read();
  for (const t of [xt, rT, y]) t?.dispose();
  disposeDepthwise(packed);
  return { got, ref, kernel };
}

describe('depthwise conv against the CPU reference', () => {
  const cases: DwCase[] = [];
  // The grid: kernel x stride x padding x activation, at odd sizes with 12 channels.
  for (const k of [3, 5]) {
    for (const stride of [1, 2]) {
      const pads: (number | Pad4)[] = [(k - 1) / 2, k === 3 ? [0, 0, 1, 1] : [1, 1, 2, 2], [2, 0, 1, 3]];
      for (const pad of pads) {
        for (const act of ['none', 'relu', 'relu6'] as const) cases.push({ n: 1, h: 11, w: 13, c: 12, k, stride, pad, act });
      }
    }
  }
  // Residual (stride 1: the output has the input's shape, as in MobileNet blocks) with each activation.
  for (const act of ['none', 'relu', 'relu6'] as const) cases.push({ n: 2, h: 9, w: 7, c: 16, k: 5, stride: 1, pad: 2, act, residual: true });
  cases.push({ n: 1, h: 10, w: 10, c: 8, k: 3, stride: 1, pad: [0, 0, 1, 1], act: 'relu6', residual: true });
  // Channels not a multiple of 4: the scalar shader, same padded packing.
  for (const c of [1, 3, 6, 13]) cases.push({ n: 1, h: 7, w: 9, c, k: 3, stride: 2, pad: [0, 0, 1, 1], act: 'relu6' });
  cases.push({ n: 2, h: 6, w: 11, c: 7, k: 5, stride: 1, pad: 2, act: 'relu', residual: true });
  // Widths below, at and just past a thread's pixel block; one pixel; the network's even sides.
  for (const w of [1, 2, 4, 5, 9]) cases.push({ n: 1, h: 3, w, c: 4, k: 3, stride: 1, pad: 1, act: 'relu6' });
  cases.push({ n: 1, h: 1, w: 1, c: 20, k: 5, stride: 2, pad: [2, 2, 2, 2], act: 'relu6' }); // TF "SAME" for a 1x1 input
  cases.push({ n: 1, h: 16, w: 16, c: 144, k: 3, stride: 2, pad: [0, 0, 1, 1], act: 'relu6' });
  cases.push({ n: 1, h: 8, w: 8, c: 232, k: 5, stride: 1, pad: 2, act: 'relu6' });
  // f16-stored weights (f32 arithmetic), vec4 and scalar.
  cases.push({ n: 1, h: 11, w: 13, c: 24, k: 5, stride: 2, pad: [1, 1, 2, 2], act: 'relu6', f16: true });
  cases.push({ n: 1, h: 9, w: 10, c: 5, k: 3, stride: 1, pad: 1, act: 'none', residual: true, f16: true });

  for (const d of cases) {
    it(`${label(d)} within ${TOL}${d.f16 ? ' (shader-f16; refused without)' : ''}`, async () => {
      if (d.f16 && !rt.features.f16) {
        // f16 weights need shader-f16: where the adapter lacks it (SwiftShader) they are
        // refused by name, and nothing stays allocated.
        const live = rt.stats().liveTensors;
        expect(() => packDepthwise(rt, random(d.c * d.k * d.k, 1), [d.c, 1, d.k, d.k], undefined, 'f16')).toThrow(F16_REFUSED);
        expect(rt.stats().liveTensors).toBe(live);
        return;
      }
      const { got, ref, kernel } = await runCase(d);
      expect(kernel).toMatch(/^depthwise /);
      expect(maxAbsDiff(got, ref)).toBeLessThanOrEqual(TOL);
    });
  }

  it('the ReLU6 cases do clip at 0 and at 6 (the inputs reach both)', async () => {
    const { got } = await runCase({ n: 1, h: 11, w: 13, c: 12, k: 5, stride: 1, pad: 2, act: 'relu6' });
    expect(got.some((v) => v === 0)).toBe(true);
    expect(got.some((v) => v === 6)).toBe(true);
    expect(got.every((v) => v >= 0 && v <= 6)).toBe(true);
  });

  it(`agrees with conv2dNaive (groups = C) within ${TOL} on a stride-2 conv with TF "SAME" padding`, async () => {
    const d = { n: 1, h: 12, w: 12, c: 16, k: 5, stride: 2 };
    const x = random(d.h * d.w * d.c, 5);
    const wt = random(d.c * 25, 6);
    const bias = random(d.c, 7);
    const xt = rt.upload(x, [1, d.h, d.w, d.c]);
    const packed = packDepthwise(rt, wt, [d.c, 1, 5, 5], bias);
    const wT = rt.upload(wt, [d.c, 1, 5, 5]);
    const bT = rt.upload(bias, [d.c]);
    const opts = { stride: 2, padding: [1, 1, 2, 2] as const, relu6: true };
    const a = depthwiseConv2d(rt, xt, packed, opts);
    const b = conv2dNaive(rt, xt, wT, { ...opts, groups: d.c, bias: bT });
    expect(a.shape).toEqual([1, 6, 6, 16]);
    expect(maxAbsDiff(await a.read(), await b.read())).toBeLessThanOrEqual(TOL);
    for (const t of [xt, wT, bT, a, b]) t.dispose();
    disposeDepthwise(packed);
  });
});

describe('depthwise blocks and workgroups', () => {
  // Two images of odd sides: blocks cut by the right and bottom edges, workgroups with
  // idle lanes, rows of blocks from both images along z.
  // Each block the built-in choice considers at k3/1, and the two it may take for k5/2
  // (within MAX_UNROLLED; Mesa caches each compiled variant on disk).
  const d: DwCase = { n: 2, h: 13, w: 11, c: 8, k: 3, stride: 1, pad: 1, act: 'relu6', residual: true };
  const d2: DwCase = { n: 2, h: 13, w: 11, c: 8, k: 5, stride: 2, pad: [1, 1, 2, 2], act: 'relu' };
  const runs: [DwCase, number, number][] = [
    ...DEPTHWISE_BLOCKS.map(([tx, ty]) => [d, tx, ty] as [DwCase, number, number]),
    [d2, 2, 2], [d2, 1, 2],
  ];
  for (const [c, tx, ty] of runs) {
    it(`blocks of ${tx}x${ty}: ${label(c)} within ${TOL}`, async () => {
      const g = { oh: c.stride === 1 ? c.h : 7, ow: c.stride === 1 ? c.w : 6 };
      const { got, ref } = await runCase(c, depthwiseWorkgroup(g, tx, ty));
      expect(maxAbsDiff(got, ref)).toBeLessThanOrEqual(TOL);
    });
  }

  it(`workgroups of 16 x 1 and 2 x 8 blocks, and of 1 block, give the same result within ${TOL}`, async () => {
    for (const tile of [{ tx: 2, ty: 2, wc: 1, wx: 16, wy: 1 }, { tx: 2, ty: 2, wc: 1, wx: 2, wy: 8 }, { tx: 1, ty: 1, wc: 1, wx: 1, wy: 1 }]) {
      const { got, ref } = await runCase(d, tile);
      expect(maxAbsDiff(got, ref)).toBeLessThanOrEqual(TOL);
    }
  });

  // Workgroups across channel units (small maps): 44 channels = 11 vec4 units, so a
  // workgroup of 16 or 4 units ends past the last one; 13 channels take the scalar shader.
  const across: DwCase[] = [
    { n: 2, h: 8, w: 8, c: 44, k: 5, stride: 1, pad: 2, act: 'relu6', residual: true },
    { n: 1, h: 9, w: 7, c: 44, k: 3, stride: 2, pad: [1, 1, 1, 1], act: 'relu' },
    { n: 1, h: 8, w: 8, c: 13, k: 3, stride: 1, pad: 1, act: 'none', residual: true },
  ];
  for (const c of across) {
    for (const tile of [{ tx: 2, ty: 2, wc: 16, wx: 1, wy: 1 }, { tx: 2, ty: 1, wc: 4, wx: 1, wy: 2 }]) {
      it(`${tile.wc} channel units x ${tile.wx}x${tile.wy} blocks of ${tile.tx}x${tile.ty} per workgroup: ${label(c)} within ${TOL}`, async () => {
        const { got, ref } = await runCase(c, tile);
        expect(maxAbsDiff(got, ref)).toBeLessThanOrEqual(TOL);
      });
    }
  }

  it('the built-in choice at MiDaS_small\'s 256x256 shapes: the cheapest block within MAX_UNROLLED (4x4 for k3/1, 2x2 for k5), one channel unit per workgroup, except 16 units of one block on the 8x8 map of k3/1', () => {
    const geometry = (out: number, cout: number, k: number, s: number) => ({ n: 1, oh: out, ow: out, cout, kh: k, kw: k, sh: s, sw: s });
    expect(depthwiseTile(geometry(128, 32, 3, 1))).toEqual({ tx: 4, ty: 4, wc: 1, wx: 16, wy: 1 });
    expect(depthwiseTile(geometry(64, 144, 3, 2))).toEqual({ tx: 2, ty: 4, wc: 1, wx: 16, wy: 1 });
    expect(depthwiseTile(geometry(32, 192, 5, 2))).toEqual({ tx: 2, ty: 2, wc: 1, wx: 16, wy: 1 });
    expect(depthwiseTile(geometry(32, 288, 5, 1))).toEqual({ tx: 2, ty: 2, wc: 1, wx: 16, wy: 1 });
    expect(depthwiseTile(geometry(16, 816, 5, 1))).toEqual({ tx: 2, ty: 2, wc: 1, wx: 8, wy: 2 });
    expect(depthwiseTile(geometry(8, 816, 5, 2))).toEqual({ tx: 2, ty: 2, wc: 1, wx: 4, wy: 4 });
    expect(depthwiseTile(geometry(8, 1392, 5, 1))).toEqual({ tx: 2, ty: 2, wc: 1, wx: 4, wy: 4 });
    expect(depthwiseTile(geometry(8, 1392, 3, 1))).toEqual({ tx: 4, ty: 4, wc: 16, wx: 1, wy: 1 });
    for (const [out, cout, k, s] of [[128, 32, 3, 1], [64, 192, 5, 2], [12, 8, 5, 1], [1, 20, 5, 2], [7, 1392, 3, 2]] as const) {
      const t = depthwiseTile(geometry(out, cout, k, s));
      expect(depthwiseUnrolled({ kh: k, kw: k, sh: s, sw: s }, t.tx, t.ty)).toBeLessThanOrEqual(MAX_UNROLLED);
      expect(t.wc * t.wx * t.wy).toBeLessThanOrEqual(16);
      expect(t.wc === 1 || (t.wx === 1 && t.wy === 1)).toBe(true);
    }
  });

  it('refuses a dispatch past maxComputeWorkgroupsPerDimension by name', async () => {
    const capped = await Runtime.create(nodeGpu(), { capLimits: { maxComputeWorkgroupsPerDimension: 7 } });
    try {
      const packed = packDepthwise(capped, new Float32Array(32 * 9), [32, 1, 3, 3]);
      const xt = capped.upload(new Float32Array(4 * 4 * 32), [1, 4, 4, 32]);
      expect(() => depthwiseConv2d(capped, xt, packed, { padding: 1 })).toThrow(/8x1x1 workgroups for \[1, 4, 4, 32\] exceed maxComputeWorkgroupsPerDimension 7/);
    } finally {
      capped.destroy();
    }
  });
});

describe('depthwise packing and bookkeeping', () => {
  it('packs [C,1,kH,kW] as [kH][kW][C padded to 4], zeros in the padding', () => {
    const w = Float32Array.from({ length: 5 * 9 }, (_, i) => i + 1);
    const { data, cPad } = packDepthwiseWeight(w, [5, 1, 3, 3]);
    expect(cPad).toBe(8);
    expect(data.length).toBe(9 * 8);
    // tap 4 (ky 1, kx 1) of channel 3 is w[3*9 + 4]
    expect(data[4 * 8 + 3]).toBe(3 * 9 + 4 + 1);
    expect([...data.slice(5, 8)]).toEqual([0, 0, 0]);
  });

  it('recognises depthwise shapes (groups = C, one input channel per group) only', () => {
    expect(isDepthwise([144, 1, 3, 3], 144)).toBe(true);
    expect(isDepthwise([144, 1, 1, 1], 144)).toBe(true);
    expect(isDepthwise([256, 8, 3, 3], 32)).toBe(false);
    expect(isDepthwise([288, 1, 3, 3], 144)).toBe(false); // channel multiplier 2
  });

  it('labels its dispatch with the window, stride, channels, output size, storage and activation; counts MACs', async () => {
    const xt = rt.upload(random(16 * 16 * 816, 1), [1, 16, 16, 816]);
    // f16 storage where the adapter has shader-f16 (it is refused without: see above).
    const f16 = rt.features.f16;
    const packed = packDepthwise(rt, random(816 * 25, 2), [816, 1, 5, 5], undefined, f16 ? 'f16' : 'f32');
    rt.records = [];
    const y = depthwiseConv2d(rt, xt, packed, { stride: 2, padding: [1, 1, 2, 2], relu6: true });
    expect(rt.records.at(-1)).toMatchObject({ kernel: `depthwise 5x5/2 816 @8x8${f16 ? ' w:f16' : ''} [relu6]`, macs: 8 * 8 * 816 * 25 });
    rt.records = null;
    const weightBytes = f16 ? 2 : 4;
    expect(packed.weight.byteLength).toBe(25 * 816 * weightBytes);
    const g = convGeometry(xt, [816, 1, 5, 5], { stride: 2, padding: [1, 1, 2, 2], groups: 816 });
    // input + output + bias + weights
    expect(depthwiseBytes(g, { weightBytes })).toBe(4 * (16 * 16 * 816 + 8 * 8 * 816 + 816) + 25 * 816 * weightBytes);
    for (const t of [xt, y]) t.dispose();
    disposeDepthwise(packed);
  });

  it('refuses a weight that is not [C, 1, kH, kW] and an input with other channels', () => {
    expect(() => packDepthwiseWeight(new Float32Array(18), [2, 1, 3, 3].slice(0, 3))).toThrow(/not \[C, 1, kH, kW\]/);
    expect(() => packDepthwiseWeight(new Float32Array(36), [2, 2, 3, 3])).toThrow(/not \[C, 1, kH, kW\]/);
    const packed = packDepthwise(rt, new Float32Array(8 * 9), [8, 1, 3, 3]);
    const xt = rt.upload(new Float32Array(4 * 4 * 12), [1, 4, 4, 12]);
    expect(() => depthwiseConv2d(rt, xt, packed, { padding: 1 })).toThrow(/do not split into 8 groups|channels per group/);
    xt.dispose();
    disposeDepthwise(packed);
  });
});
