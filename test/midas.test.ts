// The whole network, stage by stage, against the PyTorch reference in
// test/fixtures/midas (a reduced MidasNet with MiDaS v2's structure and keys; see
// generate.py there). Tolerance: max|Δ| ≤ 1e-4 of the reference's range per stage.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { MidasNet, STAGES, type Stage } from '../src/midas/network.js';
import { MIDAS_V2 } from '../src/midas/config.js';
import type { WeightEntry } from '../src/nn/module.js';
import { resize2d } from '../src/kernels/resize.js';
import type { Runtime } from '../src/nn/runtime.js';
import { testRuntime } from './gpu.js';
import { nchwToNhwc, readNpy } from './npy.js';
import { maxAbsDiff } from './reference.js';
import { REDUCED, REDUCED_MANIFEST, REDUCED_WEIGHTS } from './reduced.js';
import { SafetensorsFile } from '../src/nn/safetensors.js';

const DIR = new URL('./fixtures/midas/', import.meta.url);
const manifest = REDUCED_MANIFEST;

/** The fixture's weights: every tensor of the safetensors file PyTorch's side wrote. */
function readWeights(): Map<string, WeightEntry> {
  const file = SafetensorsFile.parse(readFileSync(REDUCED_WEIGHTS), REDUCED_WEIGHTS);
  return new Map(file.names.map((name) => [name, { shape: file.info(name).shape, data: file.float32(name) }]));
}

const range = (a: Float32Array) => {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of a) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  return hi - lo;
};

describe('MidasNet (reduced) against PyTorch', () => {
  let rt: Runtime;
  const got = new Map<string, { data: Float32Array; shape: readonly number[] }>();

  beforeAll(async () => {
    rt = await testRuntime();
    const net = new MidasNet(REDUCED);
    net.prepare(rt, readWeights());
    const input = nchwToNhwc(readNpy(new URL('input.npy', DIR).pathname).data, readNpy(new URL('input.npy', DIR).pathname).shape);
    const x = rt.upload(input.data, input.shape);
    const { depth, stages } = net.forward(x, new Set(STAGES));
    for (const [name, t] of stages) {
      got.set(name, { data: await t.read(), shape: t.shape });
      t.dispose();
    }
    got.set('depth', { data: await depth.read(), shape: depth.shape });
    const [h, w] = manifest.image;
    const final = resize2d(rt, depth, h, w, { kind: 'bicubic', alignCorners: false });
    got.set('final', { data: await final.read(), shape: final.shape });
    for (const t of [x, depth, final]) t.dispose();
    net.dispose();
  });

  it('declares the same keys as the PyTorch state_dict, less num_batches_tracked', () => {
    const keys = [...new MidasNet(REDUCED).stateShapes().keys()];
    const weights = readWeights();
    expect(keys.sort()).toEqual([...weights.keys()].sort());
    const bnCount = keys.filter((k) => k.endsWith('.running_mean')).length;
    expect(keys.length + bnCount).toBe(manifest.state_dict_entries);
  });

  for (const stage of [...STAGES, 'depth', 'final'] as (Stage | 'depth' | 'final')[]) {
    it(`${stage} matches PyTorch within 1e-4 of its range`, () => {
      const ref = readNpy(new URL(stage === 'depth' || stage === 'final' ? `${stage}.npy` : `stage_${stage}.npy`, DIR).pathname);
      // depth is [1, H, W] and final [h, w] in PyTorch; ours are [1, H, W, 1]: same order.
      const want = ref.shape.length === 4 ? nchwToNhwc(ref.data, ref.shape).data : ref.data;
      const mine = got.get(stage)!;
      expect(mine.data.length).toBe(want.length);
      const err = maxAbsDiff(mine.data, want);
      expect(range(want)).toBeGreaterThan(0);
      expect(err / range(want)).toBeLessThanOrEqual(1e-4);
    });
  }
});

describe('MidasNet dispatch labels', () => {
  it('name the checkpoint key of the module that dispatched each kernel', async () => {
    const rt = await testRuntime();
    const net = new MidasNet(REDUCED);
    net.prepare(rt, readWeights());
    const x = rt.upload(new Float32Array(64 * 64 * 3), [1, 64, 64, 3]);
    await rt.sync();
    expect(rt.startProfile()).toBe(true);
    const { depth } = net.forward(x);
    const labels = (await rt.stopProfile()).map((t) => t.label);
    expect(labels[0]).toMatch(/^pretrained\.layer1\.0: conv2d_tiled 7x7\/2/);
    expect(labels).toContainEqual(expect.stringMatching(/^pretrained\.layer2\.0\.conv2: conv2d_naive 3x3\/2 g4 16->16 /));
    expect(labels).toContainEqual(expect.stringMatching(/^scratch\.refinenet2\.resConfUnit1\.conv2: conv2d_(tiled|rows) 3x3/));
    expect(labels).toContainEqual(expect.stringMatching(/^scratch\.refinenet2: add /));
    expect(labels.at(-1)).toMatch(/^scratch\.output_conv\.4: conv2d_tiled 1x1/);
    x.dispose();
    depth.dispose();
    net.dispose();
  });
});

describe('capturing a module output by key', () => {
  it('gives the same tensor as the stage forward() keeps', async () => {
    const rt = await testRuntime();
    const net = new MidasNet(REDUCED);
    net.prepare(rt, readWeights());
    const input = readNpy(new URL('input.npy', DIR).pathname);
    const nhwc = nchwToNhwc(input.data, input.shape);
    const x = rt.upload(nhwc.data, nhwc.shape);
    rt.capture(['pretrained.layer2', 'scratch.refinenet2', 'scratch.layer1_rn', 'pretrained.layer3.0.conv2']);
    const { depth, stages } = net.forward(x, new Set(['layer2', 'path2', 'layer1_rn'] as const));
    const captured = rt.takeCaptured();
    expect([...captured.keys()].sort()).toEqual(['pretrained.layer2', 'pretrained.layer3.0.conv2', 'scratch.layer1_rn', 'scratch.refinenet2']);
    for (const [key, stage] of [['pretrained.layer2', 'layer2'], ['scratch.refinenet2', 'path2'], ['scratch.layer1_rn', 'layer1_rn']] as const) {
      expect(await captured.get(key)!.read()).toEqual(await stages.get(stage)!.read());
    }
    expect(captured.get('pretrained.layer3.0.conv2')!.shape).toEqual([1, 6, 8, 32]);
    for (const t of [...captured.values(), ...stages.values(), x, depth]) t.dispose();
    net.dispose();
  });
});

describe('MidasNet (reduced) with f16 weights', () => {
  // Half-precision weights carry ~2^-11 relative rounding; through ~20 layers of the
  // reduced network the depth map moved by 3.2e-3 of its range when measured; 1e-2
  // bounds it. With f16 products too ('f16-math') it moved by MATH_MEASURED.
  for (const precision of ['f16', 'f16-math'] as const) it(`${precision}: depth stays within 1e-2 of PyTorch f32 range`, async () => {
    const rt = await testRuntime();
    const net = new MidasNet(REDUCED);
    net.prepare(rt, readWeights(), precision);
    const input = readNpy(new URL('input.npy', DIR).pathname);
    const nhwc = nchwToNhwc(input.data, input.shape);
    const x = rt.upload(nhwc.data, nhwc.shape);
    const { depth } = net.forward(x);
    const got = await depth.read();
    const want = readNpy(new URL('depth.npy', DIR).pathname).data;
    const rel = maxAbsDiff(got, want) / range(want);
    console.log(`reduced MidasNet, precision ${precision}: max|Δ| / range = ${rel.toExponential(2)}`);
    expect(rel).toBeGreaterThan(0); // the weights really were rounded
    expect(rel).toBeLessThanOrEqual(1e-2);
    x.dispose();
    depth.dispose();
    net.dispose();
  });
});

describe('MidasNet (full size) structure', () => {
  it('has the 666 - 105 = 561 float tensors and 105,565,929 - 105 numbers of MiDaS v2 (num_batches_tracked aside)', () => {
    const shapes = new MidasNet(MIDAS_V2).stateShapes();
    const bn = [...shapes.keys()].filter((k) => k.endsWith('.running_mean')).length;
    let numbers = 0;
    for (const s of shapes.values()) numbers += s.reduce((a, b) => a * b, 1);
    expect(shapes.size + bn).toBe(666);
    expect(numbers + bn).toBe(105_565_929);
    expect(shapes.get('pretrained.layer1.4.0.conv1.weight')).toEqual([256, 64, 1, 1]);
    expect(shapes.get('pretrained.layer3.22.bn3.weight')).toEqual([1024]);
    expect(shapes.get('pretrained.layer2.0.conv2.weight')).toEqual([512, 16, 3, 3]);
    expect(shapes.get('scratch.refinenet2.resConfUnit1.conv2.weight')).toEqual([256, 256, 3, 3]);
    expect(shapes.get('scratch.output_conv.4.weight')).toEqual([1, 32, 1, 1]);
  });
});
