// Our WebGPU kernels against PyTorch 1.13's outputs (test/fixtures/torch, written by
// test/fixtures/generate.py). Every case runs on the GPU adapter Dawn finds (lavapipe
// on machines without a GPU); without an adapter every test fails with NoAdapterError's
// message rather than being skipped.
//
// Tolerances are max absolute errors, about 10x the errors measured on lavapipe
// (Mesa 25, llvmpipe) and written next to each one. The fixtures' values are O(1):
// inputs ~N(0,1), conv weights scaled so outputs stay ~N(0,1) (max |out| 2-6, 11 after
// BN), so absolute errors are also relative ones.
//
// Conv references (conv, conv+BN, RCU) are PyTorch's float64 result rounded to float32:
// PyTorch's float32 CPU conv moved by up to 6.7e-6 between two generator runs (oneDNN
// picks kernels per machine), as much as the errors measured here. The manifest records,
// per case, how far PyTorch's own float32 result was from that reference (6e-7 .. 2.3e-6):
// our kernels are as close to it as PyTorch float32 is. Pooling, resizing and
// normalization compare with PyTorch's float32 output directly.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

import type { Runtime } from '../src/nn/runtime.js';
import type { Tensor } from '../src/nn/tensor.js';
import { testRuntime } from './gpu.js';
import { conv2dNaive, type Conv2dOptions } from '../src/kernels/conv2d.js';
import { conv2dTiled, disposePacked, packConv, tiledSupports } from '../src/kernels/conv2d_tiled.js';
import { batchnorm2d, foldBatchNorm, IMAGENET_MEAN, IMAGENET_STD, normalize } from '../src/kernels/channelwise.js';
import { maxpool2d } from '../src/kernels/maxpool2d.js';
import { depthwiseConv2d, disposeDepthwise, packDepthwise } from '../src/kernels/depthwise.js';
import { BatchNorm2d, Conv2d, fuseConvBnReLU, ReLU6, Sequential } from '../src/nn/layers.js';
import type { WeightEntry } from '../src/nn/module.js';
import { resize2d, upsample2x } from '../src/kernels/resize.js';
import { nchwToNhwc, nhwcToNchw, parseNpy, readNpy, type NpyArray } from './npy.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'torch');

interface FixtureCase {
  name: string;
  op: string;
  params: Record<string, unknown>;
  files: Record<string, { file: string; shape: number[] }>;
}
interface Manifest {
  torch: string;
  cases: FixtureCase[];
}

const manifest = JSON.parse(readFileSync(join(FIXTURES, 'manifest.json'), 'utf8')) as Manifest;

function fixture(name: string): FixtureCase {
  const c = manifest.cases.find((k) => k.name === name);
  if (!c) throw new Error(`fixture case '${name}' is not in manifest.json: rerun test/fixtures/generate.py`);
  return c;
}

/** One tensor of a case, checked against the manifest's shape. */
function load(c: FixtureCase, role: string): NpyArray {
  const entry = c.files[role];
  if (!entry) throw new Error(`fixture case '${c.name}' has no '${role}'`);
  const a = readNpy(join(FIXTURES, entry.file));
  expect(a.shape, `${entry.file} shape`).toEqual(entry.shape);
  return a;
}

// ---- runtime: created on first use; a missing adapter fails each test ----------------

let runtimePromise: Promise<Runtime> | undefined;
function runtime(): Promise<Runtime> {
  runtimePromise ??= testRuntime();
  return runtimePromise;
}
afterAll(async () => {
  if (!runtimePromise) return;
  const rt = await runtimePromise.catch(() => undefined);
  rt?.destroy();
});

/** Uploads an NCHW activation as NHWC. */
function uploadActivation(rt: Runtime, a: NpyArray): Tensor {
  const t = nchwToNhwc(a.data, a.shape);
  return rt.upload(t.data, t.shape);
}

/** Reads an NHWC result and compares it with PyTorch's NCHW output; returns the max abs error. */
async function maxErrorVsTorch(y: Tensor, ref: NpyArray): Promise<number> {
  const want = nchwToNhwc(ref.data, ref.shape);
  expect(y.shape, 'output shape (NHWC)').toEqual(want.shape);
  const got = await y.read();
  let err = 0;
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i]! - want.data[i]!);
    // NaN must fail, not slip through Math.max.
    err = Number.isNaN(d) ? Infinity : Math.max(err, d);
  }
  return err;
}

const measured: string[] = [];
/** Asserts err <= tol; MIDAS_REPORT_ERRORS=1 prints every measured error at the end. */
function expectWithin(what: string, err: number, tol: number): void {
  measured.push(`${what}: max abs error ${err.toExponential(2)} (tolerance ${tol.toExponential(0)})`);
  expect(err, `${what}: max abs error vs PyTorch`).toBeLessThanOrEqual(tol);
}
afterAll(() => {
  if (process.env.MIDAS_REPORT_ERRORS) console.log(`PyTorch ${manifest.torch} comparisons:\n  ${measured.join('\n  ')}`);
});

// ---- convolutions ----------------------------------------------------------------------

type ConvVariant = 'naive' | 'tiled';

/** Runs a manifest conv2d case with one of our two kernels; returns the max abs error. */
async function runConvCase(name: string, variant: ConvVariant): Promise<number> {
  const rt = await runtime();
  const c = fixture(name);
  const p = c.params as { stride: number; padding: number; groups: number; bias: boolean; relu?: boolean; relu6?: boolean; residual: boolean };
  const x = load(c, 'x');
  const w = load(c, 'weight');
  const b = p.bias ? load(c, 'bias') : undefined;
  const r = p.residual ? load(c, 'residual') : undefined;
  const xt = uploadActivation(rt, x);
  const rt_ = r ? uploadActivation(rt, r) : undefined;
  const opts: Conv2dOptions = { stride: p.stride, padding: p.padding, relu: p.relu, relu6: p.relu6, residual: rt_ };
  let y: Tensor;
  if (variant === 'naive') {
    const wt = rt.upload(w.data, w.shape);
    const bt = b ? rt.upload(b.data, b.shape) : undefined;
    y = conv2dNaive(rt, xt, wt, { ...opts, groups: p.groups, bias: bt });
    wt.dispose();
    bt?.dispose();
  } else {
    const packed = packConv(rt, w.data, w.shape as [number, number, number, number], p.groups, b?.data);
    y = conv2dTiled(rt, xt, packed, opts);
    disposePacked(packed);
  }
  const err = await maxErrorVsTorch(y, load(c, 'out'));
  for (const t of [xt, rt_, y]) t?.dispose();
  return err;
}

describe(`convolutions match PyTorch ${manifest.torch} F.conv2d`, () => {
  // Measured on lavapipe: 7.2e-7; K = 2*9 = 18 terms per output.
  it('grouped 3x3 stride-2 conv (64 channels, 32 groups of 2) matches PyTorch within 1e-5 (conv2dNaive)', async () => {
    expectWithin('conv_grouped_s2_c64 naive', await runConvCase('conv_grouped_s2_c64', 'naive'), 1e-5);
  });

  it('conv2dTiled declines 2 output channels per group, so that conv must take conv2dNaive', () => {
    const c = fixture('conv_grouped_s2_c64');
    expect(tiledSupports(c.files.weight!.shape, 32)).toBe(false);
  });

  // Measured: naive 1.4e-6, tiled 1.4e-6; K = 8*9 = 72 terms.
  for (const variant of ['naive', 'tiled'] as const) {
    it(`grouped 3x3 stride-2 conv (256 channels, 32 groups of 8) matches PyTorch within 2e-5 (conv2d${variant === 'naive' ? 'Naive' : 'Tiled'})`, async () => {
      expectWithin(`conv_grouped_s2_c256 ${variant}`, await runConvCase('conv_grouped_s2_c256', variant), 2e-5);
    });
  }

  // Measured: naive 2.1e-6, tiled 2.1e-6; K = 3*49 = 147 terms.
  for (const variant of ['naive', 'tiled'] as const) {
    it(`7x7 stride-2 pad-3 stem conv 3->64 matches PyTorch within 2e-5 (conv2d${variant === 'naive' ? 'Naive' : 'Tiled'})`, async () => {
      expectWithin(`conv_stem_7x7_s2 ${variant}`, await runConvCase('conv_stem_7x7_s2', variant), 2e-5);
    });
  }

  // Measured: naive 1.4e-6, tiled 1.4e-6; K = 32 terms; Cout 20 pads the tiled kernel's 8-channel tile.
  for (const variant of ['naive', 'tiled'] as const) {
    it(`1x1 conv with bias (Cout 20, 323 pixels) matches PyTorch within 2e-5 (conv2d${variant === 'naive' ? 'Naive' : 'Tiled'})`, async () => {
      expectWithin(`conv_1x1_bias ${variant}`, await runConvCase('conv_1x1_bias', variant), 2e-5);
    });
  }

  // Measured: naive 1.2e-6, tiled 1.2e-6; K = 12*9 = 108 terms.
  for (const variant of ['naive', 'tiled'] as const) {
    it(`3x3 conv with bias and ReLU matches PyTorch within 2e-5 (conv2d${variant === 'naive' ? 'Naive' : 'Tiled'})`, async () => {
      expectWithin(`conv_3x3_bias_relu ${variant}`, await runConvCase('conv_3x3_bias_relu', variant), 2e-5);
    });
  }

  // Measured: naive 3.3e-6, tiled 3.3e-6; K = 64*9 = 576 terms.
  for (const variant of ['naive', 'tiled'] as const) {
    it(`3x3 conv with bias plus residual (conv(x)+b+r, K=576) matches PyTorch within 5e-5 (conv2d${variant === 'naive' ? 'Naive' : 'Tiled'})`, async () => {
      expectWithin(`conv_3x3_bias_residual ${variant}`, await runConvCase('conv_3x3_bias_residual', variant), 5e-5);
    });
  }
});

// ---- MiDaS v2.1 small: 1x1 + ReLU6, depthwise convs after F.pad ------------------------------

describe(`MiDaS_small ops match PyTorch ${manifest.torch}`, () => {
  // Measured: naive 3.3e-6, tiled 3.3e-6; K = 48 terms on inputs ~N(0, 3^2), clipped at 0 and 6.
  for (const variant of ['naive', 'tiled'] as const) {
    it(`1x1 conv 48->72 with bias and ReLU6 matches F.relu6(F.conv2d) within 1e-5 (conv2d${variant === 'naive' ? 'Naive' : 'Tiled'})`, async () => {
      expectWithin(`conv_1x1_relu6 ${variant}`, await runConvCase('conv_1x1_relu6', variant), 1e-5);
    });
  }

  interface DwParams { stride: number; kernel: number; groups: number; padding: [number, number, number, number]; bias: boolean; bn_eps: number | null }

  /** The case's conv weight and bias, with its BatchNorm (eps from the case) folded in where it has one. */
  function dwWeights(c: FixtureCase): { weight: NpyArray; bias?: Float32Array } {
    const p = c.params as unknown as DwParams;
    const weight = load(c, 'weight');
    const bias = p.bias ? load(c, 'bias').data : undefined;
    if (p.bn_eps === null) return { weight, bias };
    const bn = {
      weight: load(c, 'bn_weight').data,
      bias: load(c, 'bn_bias').data,
      runningMean: load(c, 'bn_running_mean').data,
      runningVar: load(c, 'bn_running_var').data,
    };
    const folded = foldBatchNorm(weight.data, p.groups, bn, bias, p.bn_eps);
    return { weight: { data: folded.weight, shape: weight.shape }, bias: folded.bias };
  }

  /** The Conv2d [+ BatchNorm2d(eps)] + ReLU6 modules as timm builds them, loaded with the case's tensors. */
  function dwModules(c: FixtureCase, padding: 'same' | number): Sequential {
    const p = c.params as unknown as DwParams;
    const conv = new Conv2d(p.groups, p.groups, p.kernel, { stride: p.stride, padding, groups: p.groups, bias: p.bias });
    const seq = p.bn_eps === null ? new Sequential(conv, new ReLU6()) : new Sequential(conv, new BatchNorm2d(p.groups, p.bn_eps), new ReLU6());
    const w = new Map<string, WeightEntry>([['0.weight', load(c, 'weight')]]);
    if (p.bias) w.set('0.bias', load(c, 'bias'));
    if (p.bn_eps !== null) {
      for (const [key, role] of [['weight', 'bn_weight'], ['bias', 'bn_bias'], ['running_mean', 'bn_running_mean'], ['running_var', 'bn_running_var']]) {
        w.set(`1.${key}`, load(c, role!));
      }
    }
    seq.loadState(w);
    return seq;
  }

  // F.pad(x, (left, right, top, bottom)) then F.conv2d(groups=C), ReLU6. K = k*k terms on
  // inputs ~N(0, 3^2). Measured on lavapipe: 4.8e-7 (k3, 7 channels) .. 1.4e-6 (k5), the same
  // from depthwiseConv2d, conv2dNaive and the modules.
  const DW_TOL = 1e-5;
  const dwCases = [
    ['depthwise_k5_s2_same_relu6', 'k5 stride 2, TF SAME (1,1,2,2), 24 channels'],
    ['depthwise_k3_s2_same_bn_relu6', 'k3 stride 2, TF SAME (0,0,1,1), BN eps 1e-3 folded, 16 channels'],
    ['depthwise_k3_s2_same_odd_c7_relu6', 'k3 stride 2, TF SAME on 9x7 (1,1,1,1), 7 channels (scalar path)'],
    ['depthwise_k5_s1_relu6', 'k5 stride 1, pad 2, 20 channels'],
  ] as const;
  for (const [name, what] of dwCases) {
    it(`depthwise ${what}: depthwiseConv2d and conv2dNaive match F.pad + F.conv2d + ReLU6 within ${DW_TOL}`, async () => {
      const rt = await runtime();
      const c = fixture(name);
      const p = c.params as unknown as DwParams;
      const x = uploadActivation(rt, load(c, 'x'));
      const { weight, bias } = dwWeights(c);
      const opts = { stride: p.stride, padding: p.padding, relu6: true };
      const packed = packDepthwise(rt, weight.data, weight.shape as [number, number, number, number], bias);
      const y = depthwiseConv2d(rt, x, packed, opts);
      expectWithin(`${name} depthwise`, await maxErrorVsTorch(y, load(c, 'out')), DW_TOL);
      const wt = rt.upload(weight.data, weight.shape);
      const bt = bias ? rt.upload(bias, [bias.length]) : undefined;
      const yn = conv2dNaive(rt, x, wt, { ...opts, groups: p.groups, bias: bt });
      expectWithin(`${name} naive`, await maxErrorVsTorch(yn, load(c, 'out')), DW_TOL);
      disposeDepthwise(packed);
      for (const t of [x, y, wt, bt, yn]) t?.dispose();
    });

    const padding = p(name).stride === 2 ? 'same' : p(name).kernel >> 1;
    it(`depthwise ${what}: Conv2d(padding ${JSON.stringify(padding)}, groups=C) [+ BatchNorm2d] + ReLU6 modules, fused and unfused, match PyTorch within ${DW_TOL}`, async () => {
      const rt = await runtime();
      const c = fixture(name);
      for (const fuse of [false, true]) {
        const seq = dwModules(c, padding);
        if (fuse) fuseConvBnReLU(seq);
        seq.upload(rt);
        const x = uploadActivation(rt, load(c, 'x'));
        rt.records = [];
        const y = seq.forward(x);
        // Fused: one depthwise dispatch with the ReLU6 (and BN) in it.
        expect(rt.records.map((r) => r.kernel.split(' ')[0])).toEqual(fuse ? ['depthwise'] : ['depthwise', ...(p(name).bn_eps === null ? [] : ['batchnorm2d']), 'relu6']);
        rt.records = null;
        expectWithin(`${name} modules${fuse ? ' fused' : ''}`, await maxErrorVsTorch(y, load(c, 'out')), DW_TOL);
        x.dispose();
        y.dispose();
        seq.dispose();
      }
    });
  }
  function p(name: string): DwParams {
    return fixture(name).params as unknown as DwParams;
  }
});

// ---- conv + BatchNorm2d ------------------------------------------------------------------

describe(`conv + BatchNorm2d (eval) match PyTorch ${manifest.torch}`, () => {
  const c = fixture('conv_batchnorm');
  const p = c.params as { stride: number; padding: number; eps: number };
  const bn = () => ({
    weight: load(c, 'bn_weight').data,
    bias: load(c, 'bn_bias').data,
    runningMean: load(c, 'bn_running_mean').data,
    runningVar: load(c, 'bn_running_var').data,
  });

  // Measured: conv alone 2.1e-6 (tolerance 3e-5), conv + batchnorm2d 2.6e-6 (tolerance 5e-5);
  // K = 16*9 = 144 terms, then BN scales by gamma/sqrt(var+eps), up to ~3.4.
  it('conv then the batchnorm2d kernel matches PyTorch conv -> BatchNorm2d.eval() within 5e-5', async () => {
    const rt = await runtime();
    const x = uploadActivation(rt, load(c, 'x'));
    const w = load(c, 'weight');
    const wt = rt.upload(w.data, w.shape);
    const conv = conv2dNaive(rt, x, wt, { stride: p.stride, padding: p.padding });
    expectWithin('conv_batchnorm conv only', await maxErrorVsTorch(conv, load(c, 'conv_out')), 3e-5);
    const params = bn();
    const bnt = {
      weight: rt.upload(params.weight, [params.weight.length]),
      bias: rt.upload(params.bias, [params.bias.length]),
      runningMean: rt.upload(params.runningMean, [params.runningMean.length]),
      runningVar: rt.upload(params.runningVar, [params.runningVar.length]),
    };
    const y = batchnorm2d(rt, conv, bnt, { eps: p.eps });
    expectWithin('conv_batchnorm conv + batchnorm2d kernel', await maxErrorVsTorch(y, load(c, 'out')), 5e-5);
    for (const t of [x, wt, conv, y, ...Object.values(bnt)]) t.dispose();
  });

  // Measured: tiled 3.8e-6, naive 3.8e-6.
  it('foldBatchNorm into the conv (conv2dTiled and conv2dNaive) matches PyTorch conv -> BatchNorm2d.eval() within 5e-5', async () => {
    const rt = await runtime();
    const x = uploadActivation(rt, load(c, 'x'));
    const w = load(c, 'weight');
    const folded = foldBatchNorm(w.data, w.shape[0]!, bn(), undefined, p.eps);
    const packed = packConv(rt, folded.weight, w.shape as [number, number, number, number], 1, folded.bias);
    const yTiled = conv2dTiled(rt, x, packed, { stride: p.stride, padding: p.padding });
    expectWithin('conv_batchnorm folded, tiled', await maxErrorVsTorch(yTiled, load(c, 'out')), 5e-5);
    const wt = rt.upload(folded.weight, w.shape);
    const bt = rt.upload(folded.bias, [folded.bias.length]);
    const yNaive = conv2dNaive(rt, x, wt, { stride: p.stride, padding: p.padding, bias: bt });
    expectWithin('conv_batchnorm folded, naive', await maxErrorVsTorch(yNaive, load(c, 'out')), 5e-5);
    disposePacked(packed);
    for (const t of [x, yTiled, wt, bt, yNaive]) t.dispose();
  });
});

// ---- maxpool, resize, normalize -----------------------------------------------------------

describe(`pooling, resizing and normalization match PyTorch ${manifest.torch}`, () => {
  // A max picks one of its inputs: measured 0, exact.
  it('maxpool2d 3x3 stride 2 pad 1 on mostly negative input matches F.max_pool2d exactly (padding never wins)', async () => {
    const rt = await runtime();
    const c = fixture('maxpool_3x3_s2_p1');
    const x = uploadActivation(rt, load(c, 'x'));
    const y = maxpool2d(rt, x, { kernel: 3, stride: 2, padding: 1 });
    expectWithin('maxpool_3x3_s2_p1', await maxErrorVsTorch(y, load(c, 'out')), 0);
    x.dispose();
    y.dispose();
  });

  // Bilinear measured: x2 align_corners=True 1.1e-6, x2 align_corners=False 2.4e-7, 7x5->17x12
  // 4.8e-7 (True) and 1.2e-6 (False), 11x13->4x6 8.3e-7; values up to ~3, so a few float32 ulps.
  // PyTorch 1.13's CPU kernel takes the source index in double (acc_type), resizeTaps in
  // float32: that explains most of it. Tolerance 1e-5.
  for (const alignCorners of [true, false]) {
    it(`bilinear x2 (align_corners=${alignCorners ? 'True' : 'False'}) via upsample2x matches F.interpolate(scale_factor=2) within 1e-5`, async () => {
      const rt = await runtime();
      const c = fixture(`bilinear_x2_align_${alignCorners}`);
      expect(c.params).toMatchObject({ mode: 'bilinear', align_corners: alignCorners, scale_factor: 2 });
      const x = uploadActivation(rt, load(c, 'x'));
      const y = upsample2x(rt, x, alignCorners);
      expectWithin(c.name, await maxErrorVsTorch(y, load(c, 'out')), 1e-5);
      x.dispose();
      y.dispose();
    });
  }

  for (const [name, label] of [
    ['bilinear_size_align_true', 'bilinear 7x5 -> 17x12 (align_corners=True)'],
    ['bilinear_size_align_false', 'bilinear 7x5 -> 17x12 (align_corners=False)'],
    ['bilinear_down_align_false', 'bilinear 11x13 -> 4x6 (align_corners=False)'],
    ['bicubic_up_align_false', 'bicubic 7x5 -> 17x12 (align_corners=False)'],
    ['bicubic_down_align_false', 'bicubic 20x23 -> 9x11 (align_corners=False)'],
    ['bicubic_up_align_true', 'bicubic 7x5 -> 17x12 (align_corners=True)'],
  ] as const) {
    // Bicubic measured: 7x5->17x12 1.4e-6 (False) and 2.5e-6 (True), 20x23->9x11 3.0e-6
    // (PyTorch's own float32 result is 6e-6 from the float64 one there). Tolerance 3e-5.
    const tol = name.startsWith('bicubic') ? 3e-5 : 1e-5;
    it(`${label} via resize2d matches F.interpolate(size=...) within ${tol}`, async () => {
      const rt = await runtime();
      const c = fixture(name);
      const p = c.params as { mode: 'bilinear' | 'bicubic'; align_corners: boolean; size: [number, number] };
      const x = uploadActivation(rt, load(c, 'x'));
      const y = resize2d(rt, x, p.size[0], p.size[1], { kind: p.mode, alignCorners: p.align_corners });
      expectWithin(name, await maxErrorVsTorch(y, load(c, 'out')), tol);
      x.dispose();
      y.dispose();
    });
  }

  // Measured: 4.8e-7 (x*(1/255) vs x/255 differ by an ulp; outputs up to ~2.6). Tolerance 5e-6.
  it('normalize (x/255 - ImageNet mean)/std matches PyTorch within 5e-6', async () => {
    const rt = await runtime();
    const c = fixture('normalize_imagenet');
    const p = c.params as { scale: number; mean: number[]; std: number[] };
    expect(p.mean).toEqual([...IMAGENET_MEAN]);
    expect(p.std).toEqual([...IMAGENET_STD]);
    const x = uploadActivation(rt, load(c, 'x'));
    const y = normalize(rt, x, IMAGENET_MEAN, IMAGENET_STD, 1 / 255);
    expectWithin('normalize_imagenet', await maxErrorVsTorch(y, load(c, 'out')), 5e-6);
    x.dispose();
    y.dispose();
  });
});

// ---- MiDaS ResidualConvUnit ------------------------------------------------------------------

describe(`MiDaS ResidualConvUnit matches PyTorch ${manifest.torch}`, () => {
  const c = fixture('rcu');
  // Measured: 1.4e-6 with both kernels; two chained 3x3 convs of K = 32*9 = 288 terms.
  const TOL = 2e-5;

  /** conv2(relu(conv1(relu(x)))) + (relu(x) or x), from two fused conv dispatches. */
  async function rcu(variant: ConvVariant, reluResidual: boolean): Promise<number> {
    const rt = await runtime();
    const x = uploadActivation(rt, load(c, 'x'));
    const w1 = load(c, 'conv1_weight');
    const b1 = load(c, 'conv1_bias');
    const w2 = load(c, 'conv2_weight');
    const b2 = load(c, 'conv2_bias');
    let y: Tensor;
    if (variant === 'tiled') {
      const p1 = packConv(rt, w1.data, w1.shape as [number, number, number, number], 1, b1.data);
      const p2 = packConv(rt, w2.data, w2.shape as [number, number, number, number], 1, b2.data);
      const h = conv2dTiled(rt, x, p1, { padding: 1, reluInput: true, relu: true });
      y = conv2dTiled(rt, h, p2, { padding: 1, residual: x, reluResidual });
      h.dispose();
      disposePacked(p1);
      disposePacked(p2);
    } else {
      const [w1t, b1t, w2t, b2t] = [w1, b1, w2, b2].map((a) => rt.upload(a.data, a.shape)) as [Tensor, Tensor, Tensor, Tensor];
      const h = conv2dNaive(rt, x, w1t, { padding: 1, bias: b1t, reluInput: true, relu: true });
      y = conv2dNaive(rt, h, w2t, { padding: 1, bias: b2t, residual: x, reluResidual });
      for (const t of [h, w1t, b1t, w2t, b2t]) t.dispose();
    }
    const err = await maxErrorVsTorch(y, load(c, 'out'));
    x.dispose();
    y.dispose();
    return err;
  }

  it(`RCU conv2(relu(conv1(relu(x)))) + relu(x) from conv2dTiled (reluInput, relu, residual+reluResidual) matches PyTorch within ${TOL}`, async () => {
    expectWithin('rcu tiled', await rcu('tiled', true), TOL);
  });

  it(`RCU from conv2dNaive with the same options matches PyTorch within ${TOL}`, async () => {
    expectWithin('rcu naive', await rcu('naive', true), TOL);
  });

  it(`an RCU whose skip adds x instead of relu(x) differs from PyTorch by far more than ${TOL}`, async () => {
    const err = await rcu('tiled', false);
    measured.push(`rcu adding x (wrong): max abs error ${err.toExponential(2)}`);
    // The difference is relu(x) - x = max(-x, 0), the largest |negative input|: measured 3.3.
    expect(err, 'adding x instead of relu(x): max abs error vs PyTorch').toBeGreaterThan(100 * TOL);
  });
});

// ---- the .npy reader itself (no GPU) ---------------------------------------------------------

/** A .npy file in memory: `version` 1 or 2 header, padded to 64 bytes as numpy does. */
function npyBytes(version: 1 | 2, header: string, data: Float32Array): Uint8Array {
  const pre = version === 1 ? 10 : 12;
  let h = header;
  while ((pre + h.length + 1) % 64 !== 0) h += ' ';
  h += '\n';
  const out = new Uint8Array(pre + h.length + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, h.length, true);
  else view.setUint32(8, h.length, true);
  out.set(new TextEncoder().encode(h), pre);
  out.set(new Uint8Array(data.buffer), pre + h.length);
  return out;
}

describe('the test .npy reader', () => {
  const data = Float32Array.from([0, 1, 2, 3, 4, 5]);
  it('reads float32 C-order arrays with v1 and v2 headers', () => {
    for (const v of [1, 2] as const) {
      const a = parseNpy(npyBytes(v, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", data));
      expect(a.shape).toEqual([2, 3]);
      expect([...a.data]).toEqual([...data]);
    }
  });
  it('refuses other dtypes and Fortran order by name', () => {
    expect(() => parseNpy(npyBytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", data))).toThrow(/'<f8' is not supported/);
    expect(() => parseNpy(npyBytes(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", data))).toThrow(/Fortran-order/);
    expect(() => parseNpy(npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (7,), }", data))).toThrow(/needs 28 data bytes/);
  });
  it('NCHW -> NHWC -> NCHW is the identity and moves channels last', () => {
    const x = Float32Array.from({ length: 2 * 3 * 4 * 5 }, (_, i) => i);
    const t = nchwToNhwc(x, [2, 3, 4, 5]);
    expect(t.shape).toEqual([2, 4, 5, 3]);
    // NCHW element (n=1, c=2, h=3, w=4) sits at NHWC ((1*4+3)*5+4)*3+2.
    expect(t.data[((1 * 4 + 3) * 5 + 4) * 3 + 2]).toBe(((1 * 3 + 2) * 4 + 3) * 5 + 4);
    const back = nhwcToNchw(t.data, t.shape);
    expect(back.shape).toEqual([2, 3, 4, 5]);
    expect([...back.data]).toEqual([...x]);
  });
});
