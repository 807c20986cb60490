// The weight re-layouts on the CPU: the folded BatchNorm's scale applied while packing
// must give exactly the weights of fold-then-pack (the GPU tests compare those with
// PyTorch), and packing into reused space must leave nothing of the last conv behind.
import { describe, expect, it } from 'vitest';
import { batchNormScale, foldBatchNorm, type BatchNormParams } from '../src/kernels/channelwise.js';
import { packConvWeight, paddedCout, type TileConfig } from '../src/kernels/conv2d_tiled.js';
import { packDepthwiseWeight } from '../src/kernels/depthwise.js';

function random(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = lo + ((s >>> 0) / 4294967296) * (hi - lo);
  }
  return a;
}

function batchNorm(c: number, seed: number): BatchNormParams {
  return { weight: random(c, seed, 0.5, 1.5), bias: random(c, seed + 1), runningMean: random(c, seed + 2), runningVar: random(c, seed + 3, 0.5, 2) };
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

describe('conv weight packing', () => {
  const cases: { shape: [number, number, number, number]; groups: number; tile: TileConfig }[] = [
    { shape: [64, 48, 1, 1], groups: 1, tile: { tm: 4, nv: 8 } },
    { shape: [36, 5, 3, 3], groups: 1, tile: { tm: 4, nv: 2 } }, // 36 -> 40: padded columns
    { shape: [64, 8, 3, 3], groups: 8, tile: { tm: 4, nv: 2 } },
    { shape: [40, 3, 7, 7], groups: 1, tile: { tm: 4, nv: 2 } },
  ];
  for (const { shape, groups, tile } of cases) {
    const [cout, cinG, kh, kw] = shape;
    it(`[${shape.join(', ')}] groups ${groups}: the layout, and BN's scale applied while packing equals fold then pack, bit for bit`, () => {
      const w = random(cout * cinG * kh * kw, cout + cinG);
      const bn = batchNorm(cout, 7);
      const { data: plain, coutPad } = packConvWeight(w, shape, groups, tile);
      expect(coutPad).toBe(paddedCout(cout, tile));
      for (let co = 0; co < coutPad; co++) {
        for (let ci = 0; ci < cinG; ci++) {
          for (let t = 0; t < kh * kw; t++) {
            const want = co < cout ? w[(co * cinG + ci) * kh * kw + t]! : 0;
            if (plain[(t * cinG + ci) * coutPad + co] !== want) throw new Error(`co ${co} ci ${ci} tap ${t}: ${plain[(t * cinG + ci) * coutPad + co]} != ${want}`);
          }
        }
      }
      const folded = foldBatchNorm(w, cout, bn, undefined, 1e-5);
      const { scale, bias } = batchNormScale(cout, bn, undefined, 1e-5);
      expect(bits(bias)).toEqual(bits(folded.bias));
      const viaFold = packConvWeight(folded.weight, shape, groups, tile).data;
      const scaled = packConvWeight(w, shape, groups, tile, scale).data;
      expect(bits(scaled)).toEqual(bits(viaFold));
      // Into space the previous conv filled (NaN here): the same values, padding zeros.
      const used = new Float32Array(viaFold.length + 17).fill(NaN);
      const reused = packConvWeight(w, shape, groups, tile, scale, used).data;
      expect(reused.length).toBe(viaFold.length);
      expect(bits(reused)).toEqual(bits(viaFold));
    });
  }

  it('refuses a scale of the wrong length', () => {
    expect(() => packConvWeight(new Float32Array(8 * 4), [8, 4, 1, 1], 1, { tm: 4, nv: 2 }, new Float64Array(4))).toThrow(/4 channel scales for 8 channels/);
  });
});

describe('depthwise weight packing', () => {
  it("BN's scale applied while packing equals fold then pack, bit for bit (odd channels, 5x5)", () => {
    const c = 7;
    const w = random(c * 25, 11);
    const bn = batchNorm(c, 12);
    const viaFold = packDepthwiseWeight(foldBatchNorm(w, c, bn, undefined, 1e-3).weight, [c, 1, 5, 5]);
    const scaled = packDepthwiseWeight(w, [c, 1, 5, 5], batchNormScale(c, bn, undefined, 1e-3).scale);
    expect(scaled.cPad).toBe(8);
    expect(bits(scaled.data)).toEqual(bits(viaFold.data));
  });
});
