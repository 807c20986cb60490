import { describe, expect, it } from 'vitest';
import { Float16Array } from '@petamoriken/float16';
import { BatchNorm2d, Conv2d, fuseConvBnReLU, MaxPool2d, ReLU, ReLU6, Sequential } from '../src/nn/layers.js';
/** Entries with their values in memory (the tests read `data`). */
type WeightEntry = { shape: readonly number[]; data: Float32Array };
import { Runtime } from '../src/nn/runtime.js';
import { F16_REFUSED, testRuntime } from './gpu.js';
import { batchnormRef, conv2dRef, maxAbsDiff, maxpoolRef, random, tfSamePads } from './reference.js';

// torchvision's stem: Sequential(conv 7x7 s2 p3 no bias, bn, relu, maxpool).
function stem() {
  return new Sequential(new Conv2d(3, 8, 7, { stride: 2, padding: 3, bias: false }), new BatchNorm2d(8), new ReLU(), new MaxPool2d());
}

function stemWeights(): Map<string, WeightEntry> {
  const w = new Map<string, WeightEntry>();
  w.set('layer1.0.weight', { shape: [8, 3, 7, 7], data: random(8 * 3 * 49, 1) });
  w.set('layer1.1.weight', { shape: [8], data: random(8, 2) });
  w.set('layer1.1.bias', { shape: [8], data: random(8, 3) });
  w.set('layer1.1.running_mean', { shape: [8], data: random(8, 4) });
  w.set('layer1.1.running_var', { shape: [8], data: random(8, 5).map((v) => v + 2) });
  return w;
}

describe('modules', () => {
  it('expose the checkpoint keys and shapes of their tree', () => {
    expect([...stem().stateShapes('layer1.').entries()]).toEqual([
      ['layer1.0.weight', [8, 3, 7, 7]],
      ['layer1.1.weight', [8]],
      ['layer1.1.bias', [8]],
      ['layer1.1.running_mean', [8]],
      ['layer1.1.running_var', [8]],
    ]);
  });

  it('refuse a missing or mis-shaped key by name', () => {
    const w = stemWeights();
    w.delete('layer1.1.running_var');
    expect(() => stem().loadState(w, 'layer1.')).toThrow('weights: missing layer1.1.running_var');
    const w2 = stemWeights();
    w2.set('layer1.0.weight', { shape: [8, 3, 3, 3], data: new Float32Array(216) });
    expect(() => stem().loadState(w2, 'layer1.')).toThrow('layer1.0.weight has shape [8, 3, 3, 3], expected [8, 3, 7, 7]');
  });

  it('conv-bn-relu-maxpool gives the same result fused (BN folded, ReLU in the conv) and unfused, and matches the reference within 1e-5', async () => {
    const rt = await testRuntime();
    const w = stemWeights();
    const x = random(1 * 21 * 17 * 3, 9);
    const conv = conv2dRef(x, w.get('layer1.0.weight')!.data, { n: 1, h: 21, w: 17, cin: 3, cout: 8, kh: 7, kw: 7, stride: 2, pad: 3, groups: 1 });
    const bn = batchnormRef(conv, 8, {
      weight: w.get('layer1.1.weight')!.data,
      bias: w.get('layer1.1.bias')!.data,
      runningMean: w.get('layer1.1.running_mean')!.data,
      runningVar: w.get('layer1.1.running_var')!.data,
    }).map((v) => Math.max(v, 0));
    const ref = maxpoolRef(bn, 1, 11, 9, 8);

    const outputs: Float32Array[] = [];
    for (const fuse of [false, true]) {
      const m = stem();
      m.loadState(w, 'layer1.');
      if (fuse) fuseConvBnReLU(m);
      m.upload(rt);
      const xt = rt.upload(x, [1, 21, 17, 3]);
      const before = rt.stats().dispatches;
      const y = m.forward(xt);
      expect(y.shape).toEqual([1, 6, 5, 8]);
      expect(rt.stats().dispatches - before).toBe(fuse ? 2 : 4);
      outputs.push(await y.read());
      for (const t of [xt, y]) t.dispose();
      m.dispose();
    }
    expect(maxAbsDiff(outputs[0]!, ref)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(outputs[1]!, ref)).toBeLessThanOrEqual(1e-5);
  });

  it('a Sequential frees its intermediates and never its input', async () => {
    const rt = await testRuntime();
    const m = stem();
    m.loadState(stemWeights(), 'layer1.');
    m.upload(rt);
    const xt = rt.upload(random(1 * 9 * 9 * 3, 3), [1, 9, 9, 3]);
    const live = rt.stats().liveTensors;
    const y = m.forward(xt);
    expect(rt.stats().liveTensors).toBe(live + 1);
    expect(xt.isDisposed).toBe(false);
    y.dispose();
    xt.dispose();
    m.dispose();
  });

  // ---- MiDaS_small's building blocks ------------------------------------------------------

  /** conv [+ bn] + relu6 weights under keys 0.* and 1.*; variances small enough that eps matters. */
  function blockWeights(c: number, cinG: number, k: number, bias: boolean, seed: number): Map<string, WeightEntry> {
    const w = new Map<string, WeightEntry>();
    w.set('0.weight', { shape: [c, cinG, k, k], data: random(c * cinG * k * k, seed) });
    if (bias) w.set('0.bias', { shape: [c], data: random(c, seed + 1) });
    w.set('1.weight', { shape: [c], data: random(c, seed + 2).map((v) => v + 2) });
    w.set('1.bias', { shape: [c], data: random(c, seed + 3) });
    w.set('1.running_mean', { shape: [c], data: random(c, seed + 4) });
    w.set('1.running_var', { shape: [c], data: random(c, seed + 5).map((v) => 0.006 + 0.004 * v) });
    return w;
  }
  const bnOf = (w: Map<string, WeightEntry>) => ({
    weight: w.get('1.weight')!.data, bias: w.get('1.bias')!.data,
    runningMean: w.get('1.running_mean')!.data, runningVar: w.get('1.running_var')!.data,
  });
  const clamp6 = (a: Float32Array) => a.map((v) => Math.min(Math.max(v, 0), 6));

  const sameCases = [
    { what: 'dense 3x3/2 8->16 (the stem)', cin: 8, cout: 16, k: 3, h: 11, w: 9, groups: 1, kernel: 'conv2d_tiled' },
    { what: 'depthwise 5x5/2 24 channels', cin: 24, cout: 24, k: 5, h: 12, w: 10, groups: 24, kernel: 'depthwise' },
    { what: 'depthwise 3x3/2 16 channels on even sides', cin: 16, cout: 16, k: 3, h: 8, w: 8, groups: 16, kernel: 'depthwise' },
  ];
  for (const c of sameCases) {
    it(`Conv2d padding 'same' (${c.what}, ${c.h}x${c.w}) pads as TF SAME from the input's size: matches F.pad + conv within 1e-5`, async () => {
      const rt = await testRuntime();
      const conv = new Conv2d(c.cin, c.cout, c.k, { stride: 2, padding: 'same', groups: c.groups });
      const w = new Map<string, WeightEntry>([
        ['weight', { shape: conv.weightShape, data: random(c.cout * (c.cin / c.groups) * c.k * c.k, 61) }],
        ['bias', { shape: [c.cout], data: random(c.cout, 62) }],
      ]);
      conv.loadState(w);
      conv.upload(rt);
      for (const [h, wd] of [[c.h, c.w], [c.h + 1, c.w + 3]]) {
        const x = random(h * wd * c.cin, h * wd);
        const pad = tfSamePads(h, wd, c.k, 2);
        const ref = conv2dRef(x, w.get('weight')!.data, { n: 1, h, w: wd, cin: c.cin, cout: c.cout, kh: c.k, kw: c.k, stride: 2, pad, groups: c.groups, bias: w.get('bias')!.data });
        const xt = rt.upload(x, [1, h, wd, c.cin]);
        rt.records = [];
        const y = conv.forward(xt);
        expect(rt.records[0]!.kernel.startsWith(`${c.kernel} `)).toBe(true);
        rt.records = null;
        expect(y.shape).toEqual([1, Math.ceil(h / 2), Math.ceil(wd / 2), c.cout]);
        expect(maxAbsDiff(await y.read(), ref)).toBeLessThanOrEqual(1e-5);
        xt.dispose();
        y.dispose();
      }
      conv.dispose();
    });
  }

  it('Conv2d runs the depthwise kernel where groups = in = out channels and k > 1, on a device and on a meta runtime; 1x1 depthwise stays naive', async () => {
    const rt = await testRuntime();
    const meta = Runtime.meta();
    for (const r of [rt, meta]) {
      const dw = new Conv2d(816, 816, 5, { stride: 2, padding: 'same', groups: 816, bias: false });
      const one = new Conv2d(12, 12, 1, { groups: 12, bias: false });
      expect(dw.isDepthwise).toBe(true);
      expect(one.isDepthwise).toBe(false);
      if (!r.meta) {
        dw.loadState(new Map([['weight', { shape: dw.weightShape, data: random(816 * 25, 1) }]]));
        one.loadState(new Map([['weight', { shape: one.weightShape, data: random(12, 2) }]]));
      }
      dw.upload(r);
      one.upload(r);
      r.records = [];
      const x = r.empty([1, 16, 16, 816]);
      const x1 = r.empty([1, 4, 4, 12]);
      const y = dw.forward(x, { relu6: true });
      const y1 = one.forward(x1);
      expect(r.records.map((d) => [d.kernel, d.output, d.macs])).toEqual([
        ['depthwise 5x5/2 816 @8x8 [relu6]', [1, 8, 8, 816], 8 * 8 * 816 * 25],
        ['conv2d_naive 1x1/1 g12 12->12 @4x4', [1, 4, 4, 12], 16 * 12],
      ]);
      r.records = null;
      for (const t of [x, x1, y, y1]) t.dispose();
      dw.dispose();
      one.dispose();
    }
  });

  it('BatchNorm2d uses its eps (1e-3 here) folded and unfused; fuseConvBnReLU folds it and runs ReLU6 in the depthwise conv (1 dispatch, not 3), within 2e-5 (outputs up to 6: ~40 f32 ulps)', async () => {
    const rt = await testRuntime();
    const c = 20;
    const w = blockWeights(c, 1, 3, false, 70);
    const x = random(9 * 7 * c, 71).map((v) => v * 4);
    const conv = conv2dRef(x, w.get('0.weight')!.data, { n: 1, h: 9, w: 7, cin: c, cout: c, kh: 3, kw: 3, stride: 1, pad: 1, groups: c });
    const ref = clamp6(batchnormRef(conv, c, bnOf(w), 1e-3));
    const wrongEps = clamp6(batchnormRef(conv, c, bnOf(w), 1e-5));
    expect(maxAbsDiff(ref, wrongEps)).toBeGreaterThan(0.05); // eps matters at these variances
    for (const fuse of [false, true]) {
      const block = new Sequential(new Conv2d(c, c, 3, { padding: 1, groups: c, bias: false }), new BatchNorm2d(c, 1e-3), new ReLU6());
      expect((block.layers[1] as BatchNorm2d).eps).toBe(1e-3);
      block.loadState(w);
      if (fuse) fuseConvBnReLU(block);
      const convMod = block.layers[0] as Conv2d;
      expect(convMod.fusedActivation).toBe(fuse ? 'relu6' : undefined);
      expect((block.layers[2] as ReLU6).fused).toBe(fuse);
      block.upload(rt);
      const xt = rt.upload(x, [1, 9, 7, c]);
      const before = rt.stats().dispatches;
      const y = block.forward(xt);
      expect(rt.stats().dispatches - before).toBe(fuse ? 1 : 3);
      expect(maxAbsDiff(await y.read(), ref)).toBeLessThanOrEqual(2e-5);
      xt.dispose();
      y.dispose();
      block.dispose();
    }
  });

  it('BatchNorm2d defaults to eps 1e-5 and refuses a non-positive eps', () => {
    expect(new BatchNorm2d(4).eps).toBe(1e-5);
    expect(() => new BatchNorm2d(4, 0)).toThrow(/eps must be positive/);
  });

  it('fuseConvBnReLU fuses a ReLU after a dense conv as before (fusedActivation relu), and a ReLU6 as relu6', () => {
    const a = new Sequential(new Conv2d(4, 8, 3, { padding: 1 }), new ReLU());
    const b = new Sequential(new Conv2d(4, 8, 1), new BatchNorm2d(8), new ReLU6());
    fuseConvBnReLU(a);
    fuseConvBnReLU(b);
    expect((a.layers[0] as Conv2d).fusedActivation).toBe('relu');
    expect((b.layers[0] as Conv2d).fusedActivation).toBe('relu6');
    expect((a.layers[1] as ReLU).fused && (b.layers[2] as ReLU6).fused).toBe(true);
  });

  it('an unfused ReLU6 module clamps to [0, 6] exactly', async () => {
    const rt = await testRuntime();
    const m = new ReLU6();
    m.upload(rt);
    const x = random(1000, 80).map((v) => v * 10);
    const xt = rt.upload(x, [1, 10, 10, 10]);
    const y = m.forward(xt);
    expect(maxAbsDiff(await y.read(), clamp6(x))).toBe(0);
    xt.dispose();
    y.dispose();
  });

  it('a relu6 asked for in forward() replaces a fused ReLU rather than stacking with it', async () => {
    const rt = await testRuntime();
    const seq = new Sequential(new Conv2d(8, 8, 1, { bias: false }), new ReLU());
    const wt = random(64, 90).map((v) => v * 4);
    seq.loadState(new Map([['0.weight', { shape: [8, 8, 1, 1], data: wt }]]));
    fuseConvBnReLU(seq);
    seq.upload(rt);
    const x = random(5 * 5 * 8, 91).map((v) => v * 4);
    const ref = clamp6(conv2dRef(x, wt, { n: 1, h: 5, w: 5, cin: 8, cout: 8, kh: 1, kw: 1, stride: 1, pad: 0, groups: 1 }));
    expect(ref.some((v) => v === 6)).toBe(true);
    const xt = rt.upload(x, [1, 5, 5, 8]);
    const y = (seq.layers[0] as Conv2d).forward(xt, { relu6: true });
    expect(maxAbsDiff(await y.read(), ref)).toBeLessThanOrEqual(1e-5);
    xt.dispose();
    y.dispose();
    seq.dispose();
  });

  it('a depthwise Conv2d with f16 weights stores them as f16 and matches the reference on the rounded weights within 1e-5 (shader-f16; refused without)', async () => {
    const rt = await testRuntime();
    const conv = new Conv2d(12, 12, 5, { padding: [1, 1, 2, 2], groups: 12 });
    const wt = random(12 * 25, 95);
    const bias = random(12, 96);
    conv.loadState(new Map([['weight', { shape: conv.weightShape, data: wt }], ['bias', { shape: [12], data: bias }]]));
    conv.weightDType = 'f16';
    if (!rt.features.f16) {
      // Needs shader-f16: where the adapter lacks it (SwiftShader) the upload is refused by name.
      expect(() => conv.upload(rt)).toThrow(F16_REFUSED);
      return;
    }
    conv.upload(rt);
    const x = random(7 * 8 * 12, 97);
    const ref = conv2dRef(x, new Float32Array(new Float16Array(wt)), { n: 1, h: 7, w: 8, cin: 12, cout: 12, kh: 5, kw: 5, stride: 1, pad: [1, 1, 2, 2], groups: 12, bias });
    const xt = rt.upload(x, [1, 7, 8, 12]);
    rt.records = [];
    const y = conv.forward(xt);
    expect(rt.records[0]!.kernel).toBe('depthwise 5x5/1 12 @6x7 w:f16'); // 7x8 padded by 1+2 each way
    rt.records = null;
    expect(maxAbsDiff(await y.read(), ref)).toBeLessThanOrEqual(1e-5);
    xt.dispose();
    y.dispose();
    conv.dispose();
  });
});
