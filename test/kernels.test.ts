// Every kernel against the plain CPU reference in test/reference.ts, over a grid
// of awkward shapes: odd sizes, sizes that do not fill a workgroup, channel counts
// that are not multiples of 4, 1x1 / 3x3 / 7x7, stride 1 and 2, groups 1 / 32 / C.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../src/nn/runtime.js';
import { conv2dNaive, convGeometry } from '../src/kernels/conv2d.js';
import { samePadding, type Pad4 } from '../src/kernels/common.js';
import {
  chooseTile, conv2dTiled, DEFAULT_TILE, packConv, disposePacked, workgroupWidth, ROWS_PER_SEGMENT, rowsChannelVecs, rowsSupported,
  subgroupWidth, tiledSupports, useSubgroupWidth, type TileConfig,
} from '../src/kernels/conv2d_tiled.js';
import { batchnorm2d, foldBatchNorm, normalize } from '../src/kernels/channelwise.js';
import { add, relu } from '../src/kernels/elementwise.js';
import { maxpool2d } from '../src/kernels/maxpool2d.js';
import { resize2d, type ResizeMethod } from '../src/kernels/resize.js';
import { batchnormRef, bilinearAxis, conv2dRef, cubicAxis, maxAbsDiff, maxpoolRef, random, resizeRef } from './reference.js';
import { F16_REFUSED, plainRuntime, testRuntime } from './gpu.js';
import { toFloat16Bits } from '../src/nn/half.js';
import { nodeGpu } from '../src/node/gpu.js';
import { Float16Array } from '@petamoriken/float16';

let rt: Runtime;
let rtPlain: Runtime;
beforeAll(async () => {
  rt = await testRuntime();
  rtPlain = await plainRuntime();
});
/** The plain runtime where weights are staged in workgroup memory (only read without subgroups), else the test one. */
const runtimeFor = (staged: boolean) => (staged ? rtPlain : rt);
afterAll(() => {
  rt?.trim();
  rtPlain?.trim();
});

it('the test adapter shares weight loads across subgroups (the plain device does not)', () => {
  // lavapipe has subgroups of 8, SwiftShader of 4: without them the shared-weight path
  // and the rows kernel would go untested.
  expect(rt.subgroupMinSize).toBeGreaterThanOrEqual(4);
  expect(subgroupWidth(rt)).toBe(rt.subgroupMinSize);
  expect(subgroupWidth(rtPlain)).toBe(0);
  expect(rtPlain.subgroupMinSize).toBe(0);
});

/**
 * Runs `f` with the fast kernels planning for subgroups of `width` lanes on this
 * runtime (`useSubgroupWidth`): on lavapipe, width 4 runs on real 8-lane subgroups,
 * as a 32- or 64-lane GPU runs what was planned for its narrowest subgroup.
 */
async function atWidth<T>(r: Runtime, width: number, f: () => Promise<T>): Promise<T> {
  useSubgroupWidth(r, width);
  try {
    return await f();
  } finally {
    useSubgroupWidth(r, undefined);
  }
}

// f32 sums of K products of values in [-1, 1] against a float64 reference: the
// error grows like sqrt(K) * 2^-24 * |terms|; 2e-6 * K bounds it with room to spare
// and is still far below any indexing mistake (which shows up as O(1) errors).
const convTol = (k: number) => Math.max(1e-5, 2e-6 * k);

interface ConvCase {
  n: number; h: number; w: number; cin: number; cout: number; k: number; stride: number; groups: number;
}

const convGrid: ConvCase[] = [
  { n: 1, h: 7, w: 9, cin: 3, cout: 5, k: 1, stride: 1, groups: 1 },
  { n: 2, h: 5, w: 11, cin: 6, cout: 7, k: 1, stride: 2, groups: 1 },
  { n: 1, h: 13, w: 9, cin: 5, cout: 9, k: 3, stride: 1, groups: 1 },
  { n: 1, h: 10, w: 17, cin: 8, cout: 16, k: 3, stride: 2, groups: 1 },
  { n: 1, h: 19, w: 23, cin: 3, cout: 64, k: 7, stride: 2, groups: 1 },
  { n: 1, h: 9, w: 8, cin: 7, cout: 3, k: 7, stride: 1, groups: 1 },
  { n: 1, h: 9, w: 11, cin: 256, cout: 256, k: 3, stride: 1, groups: 32 },
  { n: 1, h: 9, w: 11, cin: 256, cout: 256, k: 3, stride: 2, groups: 32 },
  { n: 1, h: 6, w: 5, cin: 64, cout: 64, k: 3, stride: 1, groups: 32 },
  { n: 1, h: 8, w: 7, cin: 12, cout: 12, k: 3, stride: 1, groups: 12 },
  { n: 1, h: 7, w: 7, cin: 10, cout: 10, k: 3, stride: 2, groups: 10 },
  { n: 1, h: 33, w: 31, cin: 36, cout: 40, k: 3, stride: 1, groups: 1 },
  { n: 1, h: 5, w: 5, cin: 64, cout: 1, k: 1, stride: 1, groups: 1 },
  // 32 output channels (per group) per thread where subgroups share weights
  { n: 1, h: 9, w: 11, cin: 16, cout: 64, k: 1, stride: 1, groups: 1 },
  { n: 2, h: 10, w: 9, cin: 64, cout: 64, k: 3, stride: 2, groups: 2 },
  // 24x24 pixels: the last workgroup computes clamped copies it does not store
  { n: 1, h: 24, w: 24, cin: 16, cout: 16, k: 3, stride: 1, groups: 1 },
  { n: 1, h: 24, w: 24, cin: 64, cout: 64, k: 3, stride: 2, groups: 8 },
  // 3x3 stride 1 with the width a multiple of 8: the rows kernel where subgroups are 8
  // wide (8 rows per subgroup: heights that end in a full segment and in partial ones
  // of 7, 4, 2 and 1 rows; two and three images; 8 output
  // channels padded to 16)
  { n: 2, h: 12, w: 16, cin: 20, cout: 24, k: 3, stride: 1, groups: 1 },
  { n: 1, h: 8, w: 8, cin: 8, cout: 8, k: 3, stride: 1, groups: 1 },
  { n: 1, h: 7, w: 24, cin: 12, cout: 16, k: 3, stride: 1, groups: 1 },
  { n: 3, h: 10, w: 40, cin: 4, cout: 40, k: 3, stride: 1, groups: 1 },
  { n: 1, h: 20, w: 16, cin: 8, cout: 32, k: 3, stride: 1, groups: 1 },
  { n: 2, h: 9, w: 8, cin: 12, cout: 8, k: 3, stride: 1, groups: 1 },
];

function label(c: ConvCase): string {
  return `${c.k}x${c.k} stride ${c.stride} groups ${c.groups} ${c.cin}->${c.cout} on ${c.n}x${c.h}x${c.w}`;
}

describe('conv2d against the CPU reference', () => {
  convGrid.forEach((c, idx) => {
    const pad = (c.k - 1) / 2;
    const x = random(c.n * c.h * c.w * c.cin, 100 + idx);
    const wt = random(c.cout * (c.cin / c.groups) * c.k * c.k, 200 + idx);
    const bias = random(c.cout, 300 + idx);
    const kTerms = (c.cin / c.groups) * c.k * c.k;
    const ref = conv2dRef(x, wt, { ...c, kh: c.k, kw: c.k, pad, bias });

    it(`naive ${label(c)} within ${convTol(kTerms).toExponential(1)}`, async () => {
      const xt = rt.upload(x, [c.n, c.h, c.w, c.cin]);
      const wtT = rt.upload(wt, [c.cout, c.cin / c.groups, c.k, c.k]);
      const bT = rt.upload(bias, [c.cout]);
      const y = conv2dNaive(rt, xt, wtT, { stride: c.stride, padding: pad, groups: c.groups, bias: bT });
      expect(maxAbsDiff(await y.read(), ref)).toBeLessThanOrEqual(convTol(kTerms));
      for (const t of [xt, wtT, bT, y]) t.dispose();
    });

    if (tiledSupports([c.cout, c.cin / c.groups, c.k, c.k], c.groups)) {
      for (const shared of [true, false]) {
        it(`tiled ${label(c)}${shared ? '' : ' without subgroups'} within ${convTol(kTerms).toExponential(1)}`, async () => {
          const r = shared ? rt : rtPlain;
          const xt = r.upload(x, [c.n, c.h, c.w, c.cin]);
          // The tile the network would use on this runtime (4 pixels x 32, 16 or 8 channels with subgroups, 2 pixels for scalar inputs; 4 x 8 without).
          const shape = [c.cout, c.cin / c.groups, c.k, c.k] as const;
          const packed = packConv(r, wt, shape, c.groups, bias, chooseTile(r, shape, c.groups));
          const y = conv2dTiled(r, xt, packed, { stride: c.stride, padding: pad });
          expect(maxAbsDiff(await y.read(), ref)).toBeLessThanOrEqual(convTol(kTerms));
          for (const t of [xt, y]) t.dispose();
          disposePacked(packed);
        });
      }
      // The rows kernel, where it can run the conv (3x3 stride 1, width a multiple of the
      // subgroup width: these widths are multiples of 8, so of 4 too): at the adapter's
      // width (8 on lavapipe, 4 on SwiftShader) and at 4 lanes on whatever subgroups the
      // adapter has (on lavapipe a 4-thread workgroup in an 8-lane subgroup). At 4 lanes
      // only where the packing gives 8 channels per lane: that shader compiled in 26 s on
      // lavapipe with an empty shader cache, the 16-channel one in 64 s, and they share
      // their lane arithmetic.
      if (c.k === 3 && c.stride === 1 && c.groups === 1 && c.w % 8 === 0 && c.cin % 4 === 0) {
        for (const width of c.cout % 16 !== 0 ? [undefined, 4] : [undefined]) {
          it(`rows kernel ${label(c)}${width ? ` at ${width} lanes` : ''} within ${convTol(kTerms).toExponential(1)}`, async () => {
            const run = async () => {
              const xt = rt.upload(x, [c.n, c.h, c.w, c.cin]);
              const shape = [c.cout, c.cin, 3, 3] as const;
              const packed = packConv(rt, wt, shape, 1, bias, { ...chooseTile(rt, shape, 1), rows: true });
              rt.records = [];
              const y = conv2dTiled(rt, xt, packed, { padding: 1 });
              // Where the subgroup width does not divide the width (32 or 64 lanes), the GEMM runs it.
              const rows = rowsSupported(rt, convGeometry(xt, shape, { padding: 1 }));
              expect(rows).toBe(c.w % subgroupWidth(rt) === 0);
              expect(rt.records.at(-1)!.kernel).toMatch(rows ? /^conv2d_rows / : /^conv2d_tiled /);
              if (rows) expect(rt.records.at(-1)!.workgroups[0]).toBe(c.n * Math.ceil(c.h / ROWS_PER_SEGMENT) * (c.w / subgroupWidth(rt)));
              rt.records = null;
              expect(maxAbsDiff(await y.read(), ref)).toBeLessThanOrEqual(convTol(kTerms));
              for (const t of [xt, y]) t.dispose();
              disposePacked(packed);
            };
            await (width ? atWidth(rt, width, run) : run());
          });
        }
      }
      // The GEMM sharing weights across 4 lanes on whatever subgroups the adapter has.
      // Only vec4 inputs share weights (the scalar path loads its own). Not where the
      // tile is 32 channels per thread: that shader took 28 s to compile on lavapipe with
      // an empty shader cache, and its lanes load slices as the 8- and 16-channel ones do.
      if (c.cin % 4 === 0 && (c.cin / c.groups) % 4 === 0 && (c.cout / c.groups) % 32 !== 0) {
        it(`tiled ${label(c)} at 4 lanes within ${convTol(kTerms).toExponential(1)}`, () =>
          atWidth(rt, 4, async () => {
            const xt = rt.upload(x, [c.n, c.h, c.w, c.cin]);
            const shape = [c.cout, c.cin / c.groups, c.k, c.k] as const;
            const packed = packConv(rt, wt, shape, c.groups, bias, chooseTile(rt, shape, c.groups));
            rt.records = [];
            const y = conv2dTiled(rt, xt, packed, { stride: c.stride, padding: pad });
            expect(rt.records.at(-1)!.kernel).toMatch(/^conv2d_tiled /);
            rt.records = null;
            expect(maxAbsDiff(await y.read(), ref)).toBeLessThanOrEqual(convTol(kTerms));
            for (const t of [xt, y]) t.dispose();
            disposePacked(packed);
          }));
      }
      // Weights staged in workgroup memory 8 input channels at a time (several chunks
      // per tap where a group has more, a partial one at 12, 20 or 36), as the tuner
      // may choose on adapters without subgroups; it needs vec4 inputs.
      if (c.cin % 4 === 0 && (c.cin / c.groups) % 4 === 0) it(`tiled ${label(c)} without subgroups, weights staged in workgroup memory, within ${convTol(kTerms).toExponential(1)}`, async () => {
        const xt = rtPlain.upload(x, [c.n, c.h, c.w, c.cin]);
        const shape = [c.cout, c.cin / c.groups, c.k, c.k] as const;
        const packed = packConv(rtPlain, wt, shape, c.groups, bias, { ...chooseTile(rtPlain, shape, c.groups), wgK: 8 });
        rtPlain.records = [];
        const y = conv2dTiled(rtPlain, xt, packed, { stride: c.stride, padding: pad });
        expect(rtPlain.records.at(-1)!.kernel).toContain(' wg8'); // the staged shader ran
        rtPlain.records = null;
        expect(maxAbsDiff(await y.read(), ref)).toBeLessThanOrEqual(convTol(kTerms));
        for (const t of [xt, y]) t.dispose();
        disposePacked(packed);
      });
    }
  });

  // Past the adapter's workgroups per dimension, both kernels go on along z.
  // The workgroups expected for the adapter's subgroup width `sg`.
  const zCases: { kernel: string; cap: number; c: ConvCase; tile: TileConfig; workgroups: (sg: number) => number[] }[] = [
    // 3 images x 2 row segments x 32/sg column segments (4 at 8 lanes: 24 workgroups along
    // x, capped at 8: 8 x 3; 8 at 4 lanes: 48, so 8 x 6; 2 at 16 lanes: 12, so 8 x 2).
    { kernel: 'conv2d_rows', cap: 8, c: { n: 3, h: 10, w: 32, cin: 4, cout: 16, k: 3, stride: 1, groups: 1 }, tile: { tm: 4, nv: 4, rows: true }, workgroups: (sg) => [8, 1, Math.ceil((3 * 2 * 32) / sg / 8)] },
    // 1 x 30 x 31 pixels in blocks of 16 threads (at 4 or 8 lanes) x 3 pixels: 20 blocks, capped at 6: 6 x 4.
    { kernel: 'conv2d_tiled', cap: 6, c: { n: 1, h: 30, w: 31, cin: 8, cout: 32, k: 1, stride: 1, groups: 1 }, tile: { tm: 3, nv: 8 }, workgroups: (sg) => [6, 1, Math.ceil(Math.ceil(930 / (workgroupWidth(sg) * 3)) / 6)] },
  ];
  for (const { kernel, cap, c, tile, workgroups } of zCases) {
    it(`${kernel} spreads its workgroups over z past maxComputeWorkgroupsPerDimension`, async () => {
      const x = random(c.n * c.h * c.w * c.cin, 81);
      const wt = random(c.cout * c.cin * c.k * c.k, 82);
      const pad = (c.k - 1) / 2;
      const ref = conv2dRef(x, wt, { ...c, stride: 1, groups: 1, kh: c.k, kw: c.k, pad });
      const capped = await Runtime.create(nodeGpu(), { capLimits: { maxComputeWorkgroupsPerDimension: cap } });
      try {
        capped.records = [];
        const xt = capped.upload(x, [c.n, c.h, c.w, c.cin]);
        const packed = packConv(capped, wt, [c.cout, c.cin, c.k, c.k], 1, undefined, tile);
        const y = conv2dTiled(capped, xt, packed, { padding: pad });
        expect(capped.records.at(-1)).toMatchObject({ kernel: expect.stringContaining(kernel), workgroups: workgroups(subgroupWidth(capped)) });
        expect(maxAbsDiff(await y.read(), ref)).toBeLessThanOrEqual(convTol(c.cin * c.k * c.k));
      } finally {
        capped.destroy();
      }
    });
  }

  it('a tile with rows: true runs a conv on the rows kernel (width 16: a multiple of 4 and 8 lanes), the built-in tile on the GEMM kernel, with the same result', async () => {
    const c = { n: 2, h: 12, w: 16, cin: 20, cout: 24, k: 3, stride: 1, groups: 1 };
    const x = random(c.n * c.h * c.w * c.cin, 101);
    const wt = random(c.cout * c.cin * 9, 102);
    const ref = conv2dRef(x, wt, { ...c, kh: 3, kw: 3, pad: 1 });
    const xt = rt.upload(x, [c.n, c.h, c.w, c.cin]);
    rt.records = [];
    for (const rows of [undefined, true]) {
      const packed = packConv(rt, wt, [24, 20, 3, 3], 1, undefined, { ...chooseTile(rt, [24, 20, 3, 3], 1), rows });
      const y = conv2dTiled(rt, xt, packed, { padding: 1 });
      expect(rt.records.at(-1)!.kernel).toMatch(rows ? /^conv2d_rows / : /^conv2d_tiled /);
      expect(maxAbsDiff(await y.read(), ref)).toBeLessThanOrEqual(convTol(180));
      y.dispose();
      disposePacked(packed);
    }
    rt.records = null;
    xt.dispose();
  });

  it('3x3 stride-1 convs whose width is a multiple of the subgroup width (8 on lavapipe, 4 on SwiftShader) take the rows kernel', () => {
    const geometry = (h: number, w: number) => ({ n: 1, h, w, cin: 16, oh: h, ow: w, cout: 16, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1, pb: 1, pr: 1, groups: 1, cinG: 16, coutG: 16 });
    const sg = subgroupWidth(rt);
    // Without this the grid above would not reach the rows kernel.
    expect(rowsSupported(rt, geometry(12, 16))).toBe(true);
    expect(rowsSupported(rt, geometry(12, 2 * sg))).toBe(true);
    expect(rowsSupported(rt, geometry(12, sg + sg / 2))).toBe(false); // 12 at 8 lanes, 6 at 4
    expect(rowsSupported(rtPlain, geometry(12, 16))).toBe(false);
    // Planned for other widths (a meta runtime records dispatches without a device):
    // 32 and 64 lanes take the rows kernel only at widths they divide.
    for (const lanes of [4, 8, 32, 64, 128]) {
      const meta = Runtime.meta({}, { subgroupMinSize: lanes, subgroupMaxSize: Math.min(2 * lanes, 128) });
      expect(subgroupWidth(meta)).toBe(lanes);
      expect(rowsSupported(meta, geometry(12, lanes))).toBe(true);
      expect(rowsSupported(meta, geometry(12, 3 * lanes / 2))).toBe(false);
    }
    // No subgroups, or a workgroup of that many threads over the limit: no subgroup kernels.
    expect(subgroupWidth(Runtime.meta({}, { subgroupMinSize: 0, subgroupMaxSize: 0 }))).toBe(0);
    expect(subgroupWidth(Runtime.meta({ maxComputeInvocationsPerWorkgroup: 64 }, { subgroupMinSize: 128, subgroupMaxSize: 128 }))).toBe(0);
    expect(ROWS_PER_SEGMENT).toBe(8); // the grid's heights 12, 8, 7, 10, 20, 9 end in full and partial segments
    // 16 output channels per lane where the packing pads to 16, else 8.
    const wt = new Float32Array(24 * 16 * 9);
    for (const [tile, nv] of [[{ tm: 3, nv: 4 }, 4], [{ tm: 4, nv: 2 }, 2]] as const) {
      const packed = packConv(rt, wt, [24, 16, 3, 3], 1, undefined, tile);
      expect(rowsChannelVecs(packed)).toBe(nv);
      disposePacked(packed);
    }
  });

  it('picks 4 pixels x 32, 16 or 8 channels where subgroups share weights (2 pixels for scalar inputs), 4x8 where they do not', () => {
    expect(chooseTile(rt, [1024, 1024, 1, 1], 1)).toEqual({ tm: 4, nv: 8 });
    expect(chooseTile(rt, [512, 16, 3, 3], 32)).toEqual({ tm: 4, nv: 4 });
    expect(chooseTile(rt, [256, 8, 3, 3], 32)).toEqual({ tm: 4, nv: 2 });
    expect(chooseTile(rt, [1, 32, 1, 1], 1)).toEqual({ tm: 4, nv: 2 });
    expect(chooseTile(rt, [12, 1, 3, 3], 12)).toEqual(DEFAULT_TILE);
    expect(chooseTile(rt, [64, 3, 7, 7], 1)).toEqual({ tm: 2, nv: 8 }); // scalar inputs: 2 pixels a thread
    expect(chooseTile(rt, [32, 3, 3, 3], 1)).toEqual({ tm: 2, nv: 8 });
    expect(chooseTile(rt, [8, 3, 3, 3], 1)).toEqual({ tm: 2, nv: 2 });
    expect(chooseTile(rtPlain, [64, 3, 7, 7], 1)).toEqual(DEFAULT_TILE);
    expect(chooseTile(rt, [256, 256, 3, 3], 1).rows).toBeUndefined(); // the rows kernel only by choice
    expect(chooseTile(rtPlain, [1024, 1024, 1, 1], 1)).toEqual(DEFAULT_TILE);
    // Two subgroups per workgroup where they share weights (at least 16 threads: 16 on
    // lavapipe at 256 bits and SwiftShader, 32 on lavapipe at 512), never past the
    // adapter's limit, else 64.
    expect(workgroupWidth(subgroupWidth(rt))).toBe(Math.max(16, 2 * subgroupWidth(rt)));
    expect(workgroupWidth(4)).toBe(16);
    expect(workgroupWidth(8)).toBe(16);
    expect(workgroupWidth(16)).toBe(32);
    expect(workgroupWidth(0)).toBe(64);
    expect(workgroupWidth(32)).toBe(64);
    expect(workgroupWidth(128)).toBe(256);
    expect(workgroupWidth(128, 128)).toBe(128);
  });

  it('plans for the subgroup width: workgroups of 2 x 32 and 2 x 64 threads, row segments of 32 and 64 columns', () => {
    // Dispatches as a device with these subgroups would get them (a meta runtime runs nothing).
    for (const lanes of [32, 64]) {
      const meta = Runtime.meta({}, { subgroupMinSize: lanes, subgroupMaxSize: lanes });
      const x = meta.empty([1, 12, 2 * lanes, 16]);
      const gemm = packConv(meta, new Float32Array(32 * 16 * 9), [32, 16, 3, 3], 1, undefined, chooseTile(meta, [32, 16, 3, 3], 1));
      const rows = packConv(meta, new Float32Array(32 * 16 * 9), [32, 16, 3, 3], 1, undefined, { ...chooseTile(meta, [32, 16, 3, 3], 1), rows: true });
      conv2dTiled(meta, x, gemm, { padding: 1 });
      conv2dTiled(meta, x, rows, { padding: 1 });
      const m = 12 * 2 * lanes;
      const wgx = 2 * lanes;
      expect(meta.records!.map((r) => [r.kernel.split(' ')[0], r.workgroups])).toEqual([
        ['conv2d_tiled', [Math.ceil(m / (wgx * 4)), 1, 1]], // 4 pixels x 32 channels per thread
        ['conv2d_rows', [2 * 2, 32 / 16, 1]], // 2 row segments x 2 column segments; 16 channels per lane
      ]);
    }
  });

  it('useSubgroupWidth takes a power of two from 4 to the adapter\'s smallest subgroup, and undefined to go back', () => {
    expect(() => useSubgroupWidth(rt, 2 * rt.subgroupMinSize)).toThrow(/not a power of two from 4 to this adapter's smallest subgroup/);
    expect(() => useSubgroupWidth(rt, 6)).toThrow(/not a power of two/);
    expect(() => useSubgroupWidth(rtPlain, 4)).toThrow(/smallest subgroup \(0\)/);
    useSubgroupWidth(rt, 4);
    expect(subgroupWidth(rt)).toBe(4);
    useSubgroupWidth(rt, undefined);
    expect(subgroupWidth(rt)).toBe(rt.subgroupMinSize);
  });


  it('the tiled kernel declines depthwise convs (the naive one runs them)', () => {
    expect(tiledSupports([12, 1, 3, 3], 12)).toBe(false);
    expect(() => packConv(rt, new Float32Array(12 * 9), [12, 1, 3, 3], 12)).toThrow(/not a multiple of 8/);
  });

  // The fused epilogue in both kernels: relu(conv(relu?(x)) + b + relu?(r)).
  const fusions = [
    { relu: true },
    { residual: true },
    { residual: true, relu: true },
    { reluInput: true, relu: true },
    { residual: true, reluResidual: true },
    { relu6: true },
    { residual: true, relu6: true },
  ];
  // Width 7 runs the tiled kernel; width 8 the rows kernel (on 8-wide subgroups).
  for (const f of fusions) {
    for (const w of [7, 8]) {
      const name = Object.keys(f).join(' + ');
      const c = { n: 1, h: 9, w, cin: 16, cout: 24, k: 3, stride: 1, groups: 1 };
      const x = random(c.n * c.h * c.w * c.cin, 7);
      const wt = random(c.cout * c.cin * 9, 8);
      const bias = random(c.cout, 9);
      const res = random(c.n * c.h * c.w * c.cout, 10);
      const ref = conv2dRef(x, wt, { ...c, ...f, kh: 3, kw: 3, pad: 1, bias, residual: f.residual ? res : undefined });
      for (const kernel of w === 7 ? (['naive', 'tiled'] as const) : (['tiled'] as const)) {
        it(`${kernel} conv with fused ${name} matches the reference (width ${w})`, async () => {
          const xt = rt.upload(x, [1, 9, w, 16]);
          const rT = f.residual ? rt.upload(res, [1, 9, w, 24]) : undefined;
          const opts = { padding: 1, residual: rT, relu: f.relu, relu6: f.relu6, reluInput: f.reluInput, reluResidual: f.reluResidual };
          let y;
          if (kernel === 'naive') {
            const wT = rt.upload(wt, [24, 16, 3, 3]);
            const bT = rt.upload(bias, [24]);
            y = conv2dNaive(rt, xt, wT, { ...opts, bias: bT });
            wT.dispose();
            bT.dispose();
          } else {
            const packed = packConv(rt, wt, [24, 16, 3, 3], 1, bias);
            y = conv2dTiled(rt, xt, packed, opts);
            disposePacked(packed);
          }
          expect(maxAbsDiff(await y.read(), ref)).toBeLessThanOrEqual(convTol(16 * 9));
          xt.dispose();
          rT?.dispose();
          y.dispose();
        });
      }
    }
  }

  for (const [w, staged] of [[9, false], [16, false], [9, true]] as const) it(`tiled conv with f16-stored weights equals the reference on the f16-rounded weights (width ${w}${staged ? ', no subgroups, staged in workgroup memory' : ''})`, async () => {
    const rt = runtimeFor(staged);
    const c = { n: 1, h: 11, w, cin: 32, cout: 24, k: 3, stride: 1, groups: 1 };
    const x = random(c.n * c.h * c.w * c.cin, 61);
    const wt = random(c.cout * c.cin * 9, 62);
    const bias = random(c.cout, 63);
    const rounded = new Float32Array(new Float16Array(wt));
    expect(maxAbsDiff(rounded, wt)).toBeGreaterThan(0);
    const ref = conv2dRef(x, rounded, { ...c, kh: 3, kw: 3, pad: 1, bias });
    // Width 16 on the rows kernel, 9 on the GEMM.
    const tile = staged ? { ...DEFAULT_TILE, wgK: 8 } : { ...chooseTile(rt, [24, 32, 3, 3], 1), rows: w % 8 === 0 };
    if (!rt.features.f16) {
      // Needs shader-f16: where the adapter lacks it (SwiftShader), the weights are refused by name.
      expect(() => packConv(rt, wt, [24, 32, 3, 3], 1, bias, tile, 'f16')).toThrow(F16_REFUSED);
      return;
    }
    const xt = rt.upload(x, [1, 11, w, 32]);
    const packed = packConv(rt, wt, [24, 32, 3, 3], 1, bias, tile, 'f16');
    expect(packed.weight.byteLength).toBe(9 * 32 * 24 * 2);
    const y = conv2dTiled(rt, xt, packed, { padding: 1 });
    expect(maxAbsDiff(await y.read(), ref)).toBeLessThanOrEqual(convTol(32 * 9));
    xt.dispose();
    y.dispose();
    disposePacked(packed);
  });

  // f16 arithmetic: activations and weights rounded to f16, each product rounded to f16,
  // the sum in f32. Against the exact conv of the rounded values, each product is off by
  // at most 2^-11 of itself (or 2^-25 where it falls below f16's normal range), so the
  // bound per output is 2^-11 * sum|x w| + K * 2^-25, plus the f32 summation tolerance.
  for (const [w, k, cout, staged] of [[9, 3, 24, false], [16, 3, 24, false], [9, 1, 40, false], [9, 3, 24, true]] as const) {
    it(`tiled conv with f16 arithmetic stays within its rounding bound (${k}x${k}, width ${w}${staged ? ', no subgroups, staged in workgroup memory' : ''})`, async () => {
      const rt = runtimeFor(staged);
      const c = { n: 1, h: 11, w, cin: 32, cout, k, stride: 1, groups: 1 };
      const x = random(c.n * c.h * c.w * c.cin, 71);
      const wt = random(c.cout * c.cin * k * k, 72);
      const bias = random(c.cout, 73);
      const xr = new Float32Array(new Float16Array(x));
      const wr = new Float32Array(new Float16Array(wt));
      const pad = (k - 1) / 2;
      const ref = conv2dRef(xr, wr, { ...c, kh: k, kw: k, pad, bias });
      const absSum = conv2dRef(xr.map(Math.abs), wr.map(Math.abs), { ...c, kh: k, kw: k, pad });
      const shape = [cout, 32, k, k] as const;
      const tile = { ...chooseTile(rt, shape, 1), ...(staged ? { wgK: 8 } : { rows: w % 8 === 0 }) };
      if (!rt.features.f16) {
        // Needs shader-f16: where the adapter lacks it (SwiftShader), the weights are refused by name.
        expect(() => packConv(rt, wt, shape, 1, bias, tile, 'f16', true)).toThrow(F16_REFUSED);
        return;
      }
      const xt = rt.upload(x, [1, 11, w, 32]);
      const packed = packConv(rt, wt, shape, 1, bias, tile, 'f16', true);
      const y = conv2dTiled(rt, xt, packed, { padding: pad });
      const got = await y.read();
      const terms = 32 * k * k;
      let worst = 0;
      let moved = 0;
      for (let i = 0; i < got.length; i++) {
        const err = Math.abs(got[i]! - ref[i]!);
        worst = Math.max(worst, err / (2 ** -11 * absSum[i]! + terms * 2 ** -25 + convTol(terms)));
        moved = Math.max(moved, err);
      }
      expect(worst).toBeLessThanOrEqual(1);
      expect(moved).toBeGreaterThan(convTol(terms)); // the products really were rounded
      xt.dispose();
      y.dispose();
      disposePacked(packed);
    });
  }

  it('f16 arithmetic needs f16 weights', () => {
    expect(() => packConv(rt, new Float32Array(8 * 4), [8, 4, 1, 1], 1, undefined, undefined, 'f32', true)).toThrow(/f16 arithmetic needs f16 weights/);
  });

  it('f16 storage refuses values beyond its range by index (without shader-f16: refuses f16 at all)', () => {
    const big = Float32Array.from([1, 70000]);
    expect(() => toFloat16Bits(big)).toThrow(/70000 at index 1 is outside float16's range/);
    expect(() => rt.upload(big, [2], 'f16')).toThrow(rt.features.f16 ? /70000 at index 1 is outside float16's range/ : F16_REFUSED);
  });

  it('rejects a weight whose channels do not match the input', () => {
    const xt = rt.upload(new Float32Array(2 * 2 * 6), [1, 2, 2, 6]);
    const wT = rt.upload(new Float32Array(4 * 4), [4, 4, 1, 1]);
    expect(() => conv2dNaive(rt, xt, wT)).toThrow(/expects 4 channels per group, input gives 6/);
    xt.dispose();
    wT.dispose();
  });
});

// MiDaS_small's convs: TF "SAME" padding puts the odd row and column after (top/left
// offsets differ from bottom/right), every conv but the projections ends in ReLU6, and
// the 1x1 expand/project convs run at channel counts that are not powers of two.
describe('asymmetric padding and ReLU6 in the dense conv kernels', () => {
  const pads: { pad: Pad4; k: number; stride: number }[] = [
    { pad: [0, 0, 1, 1], k: 3, stride: 2 }, // TF SAME, k3 on even sides
    { pad: [1, 1, 2, 2], k: 5, stride: 2 }, // TF SAME, k5 on even sides
    { pad: [2, 0, 1, 3], k: 3, stride: 1 }, // every side different
  ];
  for (const { pad, k, stride } of pads) {
    const c = { n: 1, h: 10, w: 12, cin: 8, cout: 16, k, stride, groups: 1 };
    const x = random(c.n * c.h * c.w * c.cin, 500 + k).map((v) => v * 3);
    const wt = random(c.cout * c.cin * k * k, 510 + k);
    const bias = random(c.cout, 520 + k);
    const ref = conv2dRef(x, wt, { ...c, kh: k, kw: k, pad, bias, relu6: true });
    const terms = c.cin * k * k;
    for (const kernel of ['naive', 'tiled', 'tiled without subgroups'] as const) {
      it(`${kernel} ${k}x${k}/${stride} pad [${pad.join(',')}] (top, left, bottom, right) + relu6 matches F.pad + conv + clamp within ${convTol(terms).toExponential(1)}`, async () => {
        const r = kernel === 'tiled without subgroups' ? rtPlain : rt;
        const xt = r.upload(x, [c.n, c.h, c.w, c.cin]);
        const shape = [c.cout, c.cin, k, k] as const;
        let y;
        if (kernel === 'naive') {
          const wT = r.upload(wt, shape);
          const bT = r.upload(bias, [c.cout]);
          y = conv2dNaive(r, xt, wT, { stride, padding: pad, bias: bT, relu6: true });
          wT.dispose();
          bT.dispose();
        } else {
          const packed = packConv(r, wt, shape, 1, bias, chooseTile(r, shape, 1));
          y = conv2dTiled(r, xt, packed, { stride, padding: pad, relu6: true });
          disposePacked(packed);
        }
        const got = await y.read();
        expect(maxAbsDiff(got, ref)).toBeLessThanOrEqual(convTol(terms));
        // The clamp did work at both ends.
        expect(got.some((v) => v === 0) && got.some((v) => v === 6)).toBe(true);
        xt.dispose();
        y.dispose();
      });
    }
  }

  it('the rows kernel takes only symmetric padding 1: a conv padded [1,1,1,2] or [0,0,1,1] runs on the GEMM kernel, correctly', async () => {
    const probe = rt.empty([1, 16, 16, 8]);
    const geometry = (pad: Pad4) => convGeometry(probe, [8, 8, 3, 3], { padding: pad });
    expect(rowsSupported(rt, geometry([1, 1, 1, 1]))).toBe(true);
    expect(rowsSupported(rt, geometry([1, 1, 1, 2]))).toBe(false);
    expect(rowsSupported(rt, geometry([0, 0, 1, 1]))).toBe(false);
    probe.dispose();
    const c = { n: 1, h: 16, w: 16, cin: 8, cout: 16, k: 3, stride: 1, groups: 1 };
    const x = random(16 * 16 * 8, 531);
    const wt = random(16 * 8 * 9, 532);
    const pad: Pad4 = [1, 1, 1, 2];
    const ref = conv2dRef(x, wt, { ...c, kh: 3, kw: 3, pad, relu6: true });
    const xt = rt.upload(x, [1, 16, 16, 8]);
    const packed = packConv(rt, wt, [16, 8, 3, 3], 1, undefined, { ...chooseTile(rt, [16, 8, 3, 3], 1), rows: true });
    rt.records = [];
    const y = conv2dTiled(rt, xt, packed, { padding: pad, relu6: true });
    expect(rt.records.at(-1)!.kernel).toBe('conv2d_tiled 3x3/1 g1 8->16 @16x17 [relu6]');
    rt.records = null;
    expect(y.shape).toEqual([1, 16, 17, 16]);
    expect(maxAbsDiff(await y.read(), ref)).toBeLessThanOrEqual(convTol(72));
    xt.dispose();
    y.dispose();
    disposePacked(packed);
  });

  // The expand (x6) and project convs of the inverted-residual blocks.
  const pointwise = [
    { cin: 24, cout: 144, relu6: true, h: 9, w: 7 }, // layer1.4.0 conv_pw
    { cin: 816, cout: 136, relu6: false, h: 5, w: 6, residual: true }, // layer3.1.x conv_pwl + x
    { cin: 1392, cout: 384, relu6: false, h: 3, w: 5 }, // layer4.1.0 conv_pwl
    { cin: 232, cout: 1392, relu6: true, h: 4, w: 3 }, // layer4.0.x conv_pw
  ];
  for (const pc of pointwise) {
    it(`tiled 1x1 ${pc.cin}->${pc.cout}${pc.relu6 ? ' + relu6' : ''}${pc.residual ? ' + residual' : ''} on ${pc.h}x${pc.w} (MiDaS_small expand/project) within ${convTol(pc.cin).toExponential(1)}`, async () => {
      const c = { n: 1, h: pc.h, w: pc.w, cin: pc.cin, cout: pc.cout, k: 1, stride: 1, groups: 1 };
      // Inputs scaled so that sums of cin terms reach past 6 (and below 0).
      const x = random(pc.h * pc.w * pc.cin, pc.cin).map((v) => v * (12 / Math.sqrt(pc.cin)) * 2);
      const wt = random(pc.cout * pc.cin, pc.cout);
      const bias = random(pc.cout, pc.cin + pc.cout);
      const res = pc.residual ? random(pc.h * pc.w * pc.cout, 3) : undefined;
      const ref = conv2dRef(x, wt, { ...c, kh: 1, kw: 1, pad: 0, bias, residual: res, relu6: pc.relu6 });
      const xt = rt.upload(x, [1, pc.h, pc.w, pc.cin]);
      const rT = res ? rt.upload(res, [1, pc.h, pc.w, pc.cout]) : undefined;
      const shape = [pc.cout, pc.cin, 1, 1] as const;
      const packed = packConv(rt, wt, shape, 1, bias, chooseTile(rt, shape, 1));
      const y = conv2dTiled(rt, xt, packed, { relu6: pc.relu6, residual: rT });
      const got = await y.read();
      expect(maxAbsDiff(got, ref)).toBeLessThanOrEqual(convTol(pc.cin));
      if (pc.relu6) expect(got.some((v) => v === 6)).toBe(true);
      for (const t of [xt, rT, y]) t?.dispose();
      disposePacked(packed);
    });
  }

  it('relu and relu6 together are refused by name', () => {
    const xt = rt.upload(new Float32Array(4 * 4 * 4), [1, 4, 4, 4]);
    const wT = rt.upload(new Float32Array(4 * 4), [4, 4, 1, 1]);
    expect(() => conv2dNaive(rt, xt, wT, { relu: true, relu6: true })).toThrow(/relu and relu6 are exclusive/);
    xt.dispose();
    wT.dispose();
  });

  it('padding is checked: negative or fractional sides are refused by name', () => {
    const xt = rt.upload(new Float32Array(4 * 4 * 4), [1, 4, 4, 4]);
    const wT = rt.upload(new Float32Array(4 * 4 * 9), [4, 4, 3, 3]);
    expect(() => conv2dNaive(rt, xt, wT, { padding: [0, 0, -1, 1] })).toThrow(/conv2d padding: \[0, 0, -1, 1\] is not 4 non-negative integers/);
    expect(() => conv2dNaive(rt, xt, wT, { padding: 0.5 })).toThrow(/not 4 non-negative integers/);
    xt.dispose();
    wT.dispose();
  });
});

describe('TF "SAME" padding', () => {
  it('pads (0,0,1,1) for k3/2 and (1,1,2,2) for k5/2 on even sides, the smaller half first on odd totals, none where stride 1 and k 1', () => {
    expect(samePadding(256, 256, 3, 2)).toEqual([0, 0, 1, 1]);
    expect(samePadding(64, 64, 5, 2)).toEqual([1, 1, 2, 2]);
    expect(samePadding(16, 16, 5, 1)).toEqual([2, 2, 2, 2]);
    expect(samePadding(7, 9, 3, 2)).toEqual([1, 1, 1, 1]);
    expect(samePadding(7, 8, 5, 2)).toEqual([2, 1, 2, 2]);
    expect(samePadding(5, 5, 1, 1)).toEqual([0, 0, 0, 0]);
    expect(samePadding(1, 1, 5, 2)).toEqual([2, 2, 2, 2]);
    // The output is ceil(i / s) along each axis.
    for (const [i, k, s] of [[7, 3, 2], [8, 5, 2], [9, 5, 2], [10, 3, 1], [1, 3, 2]] as const) {
      const [t, , b] = samePadding(i, i, k, s);
      expect(Math.floor((i + t + b - k) / s) + 1).toBe(Math.ceil(i / s));
    }
  });
});

describe('batch norm', () => {
  const c = 13;
  const x = random(2 * 5 * 3 * c, 21);
  const bn = {
    weight: random(c, 22),
    bias: random(c, 23),
    runningMean: random(c, 24),
    runningVar: random(c, 25).map((v) => v + 1.5),
  };

  it('batchnorm2d kernel (eps 1e-5) matches the reference within 1e-5', async () => {
    const xt = rt.upload(x, [2, 5, 3, c]);
    const bnT = {
      weight: rt.upload(bn.weight, [c]),
      bias: rt.upload(bn.bias, [c]),
      runningMean: rt.upload(bn.runningMean, [c]),
      runningVar: rt.upload(bn.runningVar, [c]),
    };
    const y = batchnorm2d(rt, xt, bnT);
    expect(maxAbsDiff(await y.read(), batchnormRef(x, c, bn))).toBeLessThanOrEqual(1e-5);
    const yr = batchnorm2d(rt, xt, bnT, { relu: true });
    expect(maxAbsDiff(await yr.read(), batchnormRef(x, c, bn).map((v) => Math.max(v, 0)))).toBeLessThanOrEqual(1e-5);
    for (const t of [xt, y, yr, ...Object.values(bnT)]) t.dispose();
  });

  it('folding BN into the conv before it gives bn(conv(x)) within 1e-5', async () => {
    const cin = 6;
    const xs = random(1 * 7 * 6 * cin, 31);
    const wt = random(c * cin * 9, 32);
    const convBias = random(c, 33);
    const conv = conv2dRef(xs, wt, { n: 1, h: 7, w: 6, cin, cout: c, kh: 3, kw: 3, stride: 1, pad: 1, groups: 1, bias: convBias });
    const ref = batchnormRef(conv, c, bn);
    const folded = foldBatchNorm(wt, c, bn, convBias);
    const xt = rt.upload(xs, [1, 7, 6, cin]);
    const packed = packConv(rt, folded.weight, [c, cin, 3, 3], 1, folded.bias);
    const y = conv2dTiled(rt, xt, packed, { padding: 1 });
    expect(maxAbsDiff(await y.read(), ref)).toBeLessThanOrEqual(1e-5);
    // No conv bias (every conv in ResNeXt): the fold makes one.
    const noBias = foldBatchNorm(wt, c, bn);
    const ref2 = batchnormRef(conv2dRef(xs, wt, { n: 1, h: 7, w: 6, cin, cout: c, kh: 3, kw: 3, stride: 1, pad: 1, groups: 1 }), c, bn);
    const packed2 = packConv(rt, noBias.weight, [c, cin, 3, 3], 1, noBias.bias);
    const y2 = conv2dTiled(rt, xt, packed2, { padding: 1 });
    expect(maxAbsDiff(await y2.read(), ref2)).toBeLessThanOrEqual(1e-5);
    for (const t of [xt, y, y2]) t.dispose();
    disposePacked(packed);
    disposePacked(packed2);
  });
});

describe('elementwise', () => {
  it('relu and add (+relu) match the reference exactly on 1000003 values (several workgroup rows)', async () => {
    const n = 1_000_003;
    const a = random(n, 41);
    const b = random(n, 42);
    const at = rt.upload(a, [n]);
    const bt = rt.upload(b, [n]);
    const r = relu(rt, at);
    const s = add(rt, at, bt);
    const sr = add(rt, at, bt, { relu: true });
    expect(maxAbsDiff(await r.read(), a.map((v) => Math.max(v, 0)))).toBe(0);
    expect(maxAbsDiff(await s.read(), a.map((v, i) => v + b[i]!))).toBe(0);
    expect(maxAbsDiff(await sr.read(), a.map((v, i) => Math.max(v + b[i]!, 0)))).toBe(0);
    for (const t of [at, bt, r, s, sr]) t.dispose();
  });

  it('add refuses tensors of different shapes', () => {
    const a = rt.empty([2, 3]);
    const b = rt.empty([3, 2]);
    expect(() => add(rt, a, b)).toThrow(/shapes \[2, 3\] and \[3, 2\] differ/);
    a.dispose();
    b.dispose();
  });

  it('normalize computes (x/255 - mean)/std per channel within 1e-6', async () => {
    const x = random(4 * 5 * 3, 51).map((v) => Math.round((v + 1) * 127.5));
    const mean = [0.485, 0.456, 0.406];
    const std = [0.229, 0.224, 0.225];
    const xt = rt.upload(x, [1, 4, 5, 3]);
    const y = normalize(rt, xt, mean, std, 1 / 255);
    const ref = x.map((v, i) => (v / 255 - mean[i % 3]!) / std[i % 3]!);
    expect(maxAbsDiff(await y.read(), ref)).toBeLessThanOrEqual(1e-6);
    xt.dispose();
    y.dispose();
  });
});

describe('maxpool2d', () => {
  const shapes: [number, number, number, number][] = [
    [1, 13, 10, 8],
    [2, 7, 9, 5],
    [1, 2, 3, 1],
    [1, 96, 95, 3],
  ];
  for (const [n, h, w, c] of shapes) {
    it(`3x3 stride 2 pad 1 on ${n}x${h}x${w}x${c} of negative values (padding never wins)`, async () => {
      const x = random(n * h * w * c, h * w).map((v) => v - 2); // all in [-3, -1)
      const xt = rt.upload(x, [n, h, w, c]);
      const y = maxpool2d(rt, xt);
      const ref = maxpoolRef(x, n, h, w, c);
      const got = await y.read();
      expect(got.every((v) => v < -1)).toBe(true);
      expect(maxAbsDiff(got, ref)).toBe(0);
      xt.dispose();
      y.dispose();
    });
  }
});

describe('resize', () => {
  const cases: { name: string; method: ResizeMethod; from: [number, number]; to: [number, number]; c: number; n?: number; rows?: [number, number] }[] = [
    { name: 'bilinear x2 align_corners=True', method: { kind: 'bilinear', alignCorners: true }, from: [5, 7], to: [10, 14], c: 6 },
    { name: 'bilinear x2 align_corners=False', method: { kind: 'bilinear', alignCorners: false }, from: [5, 7], to: [10, 14], c: 6 },
    { name: 'bilinear x2 align_corners=True, 8 channels (vec4 path)', method: { kind: 'bilinear', alignCorners: true }, from: [5, 7], to: [10, 14], c: 8 },
    { name: 'bilinear x2 align_corners=False, 12 channels (vec4 path)', method: { kind: 'bilinear', alignCorners: false }, from: [9, 3], to: [18, 6], c: 12 },
    { name: 'bicubic (PyTorch), 4 channels (vec4 path)', method: { kind: 'bicubic', alignCorners: false }, from: [6, 9], to: [23, 19], c: 4 },
    { name: 'bilinear arbitrary align_corners=True', method: { kind: 'bilinear', alignCorners: true }, from: [7, 5], to: [17, 12], c: 3 },
    { name: 'bilinear arbitrary align_corners=False (down)', method: { kind: 'bilinear', alignCorners: false }, from: [17, 12], to: [7, 5], c: 3 },
    { name: 'bicubic (PyTorch) up', method: { kind: 'bicubic', alignCorners: false }, from: [6, 9], to: [23, 19], c: 1 },
    { name: 'bicubic (PyTorch) down', method: { kind: 'bicubic', alignCorners: false }, from: [23, 19], to: [6, 9], c: 2 },
    { name: 'bicubic (PyTorch) align_corners=True', method: { kind: 'bicubic', alignCorners: true }, from: [6, 9], to: [13, 4], c: 1 },
    { name: 'OpenCV INTER_CUBIC up', method: { kind: 'opencv-cubic' }, from: [6, 9], to: [32, 32], c: 3 },
    { name: 'OpenCV INTER_CUBIC down', method: { kind: 'opencv-cubic' }, from: [121, 154], to: [32, 64], c: 3 },
    { name: 'bilinear x2 align_corners=True, a batch of 3 (vec4 path)', method: { kind: 'bilinear', alignCorners: true }, from: [5, 6], to: [10, 12], c: 8, n: 3 },
    { name: 'bicubic (PyTorch), a batch of 2, one channel', method: { kind: 'bicubic', alignCorners: false }, from: [7, 5], to: [11, 13], c: 1, n: 2 },
    { name: 'bilinear x2 align_corners=False, output rows 5..13 only (a strip)', method: { kind: 'bilinear', alignCorners: false }, from: [9, 7], to: [18, 14], c: 4, n: 2, rows: [5, 13] },
  ];
  for (const rc of cases) {
    it(`${rc.name} ${rc.from.join('x')} -> ${rc.to.join('x')} matches the reference within 1e-5`, async () => {
      const [h, w] = rc.from;
      const [oh, ow] = rc.to;
      const n = rc.n ?? 1;
      const [r0, r1] = rc.rows ?? [0, oh];
      const x = random(n * h * w * rc.c, oh * 31 + ow);
      const axis = (i: number, o: number) =>
        rc.method.kind === 'bilinear'
          ? bilinearAxis(i, o, rc.method.alignCorners)
          : cubicAxis(i, o, rc.method.kind === 'bicubic' && rc.method.alignCorners);
      const full = resizeRef(x, n, h, w, rc.c, oh, ow, axis(h, oh), axis(w, ow));
      // The strip's rows of each image.
      const row = ow * rc.c;
      const ref = new Float32Array(n * (r1 - r0) * row);
      for (let i = 0; i < n; i++) ref.set(full.subarray((i * oh + r0) * row, (i * oh + r1) * row), i * (r1 - r0) * row);
      const xt = rt.upload(x, [n, h, w, rc.c]);
      const y = resize2d(rt, xt, oh, ow, rc.method, rc.rows);
      expect(y.shape).toEqual([n, r1 - r0, ow, rc.c]);
      expect(maxAbsDiff(await y.read(), ref)).toBeLessThanOrEqual(1e-5);
      xt.dispose();
      y.dispose();
    });
  }
});
