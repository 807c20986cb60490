import { describe, expect, it } from 'vitest';
import { BatchNorm2d, Conv2d, fuseConvBnReLU, MaxPool2d, ReLU, Sequential } from '../src/nn/layers.js';
import type { WeightEntry } from '../src/nn/module.js';
import { testRuntime } from './gpu.js';
import { batchnormRef, conv2dRef, maxAbsDiff, maxpoolRef, random } from './reference.js';

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
});
