// Separable resizing on NHWC tensors. Every method is a table of source indices
// and weights per output row and column, computed once on the CPU with the
// arithmetic of the library being matched (PyTorch's double index maths for bilinear and
// float for bicubic, OpenCV's double-then-float), and one GPU kernel that applies the taps: first along x for
// each tap row, then along y, in the order both libraries sum.
import type { Runtime } from '../nn/runtime.js';
import { nhwc, type Tensor } from '../nn/tensor.js';
import { FLAT_BUILTINS, FLAT_INDEX, grid1d, memo, Params } from './common.js';

export type ResizeMethod =
  /** torch.nn.functional.interpolate(mode='bilinear') */
  | { kind: 'bilinear'; alignCorners: boolean }
  /** torch.nn.functional.interpolate(mode='bicubic'): Keys a = -0.75, indices clamped */
  | { kind: 'bicubic'; alignCorners: boolean }
  /** cv2.resize(interpolation=cv2.INTER_CUBIC) on float data, BORDER_REPLICATE */
  | { kind: 'opencv-cubic' };

export interface Taps {
  taps: number;
  index: Int32Array;
  weight: Float32Array;
}

const f = Math.fround;
const A = -0.75;

/** PyTorch's area_pixel_compute_scale for an output size (no scale_factor given), in float as its bicubic kernel does. */
function torchScale(inSize: number, outSize: number, alignCorners: boolean): number {
  if (alignCorners) return outSize > 1 ? f((inSize - 1) / (outSize - 1)) : 0;
  return f(inSize / outSize);
}

/** PyTorch's area_pixel_compute_source_index, in float32 like its CPU kernels. */
function torchSource(scale: number, dst: number, alignCorners: boolean, cubic: boolean): number {
  if (alignCorners) return f(scale * dst);
  const src = f(f(scale * f(dst + 0.5)) - 0.5);
  return !cubic && src < 0 ? 0 : src;
}

const cubic1 = (x: number) => f(f(f(f(f((A + 2) * x) - (A + 3)) * x) * x) + 1);
const cubic2 = (x: number) => f(f(f(f(f(f(A * x) - 5 * A) * x) + 8 * A) * x) - 4 * A);

export function resizeTaps(inSize: number, outSize: number, method: ResizeMethod): Taps {
  if (inSize < 1 || outSize < 1) throw new Error(`resize: sizes must be positive (got ${inSize} -> ${outSize})`);
  const taps = method.kind === 'bilinear' ? 2 : 4;
  const index = new Int32Array(outSize * taps);
  const weight = new Float32Array(outSize * taps);
  const clamp = (i: number) => Math.min(Math.max(i, 0), inSize - 1);
  for (let d = 0; d < outSize; d++) {
    const o = d * taps;
    if (method.kind === 'bilinear') {
      // UpSampleKernel.cpp computes the bilinear source index in double and rounds only the weights.
      const scale = method.alignCorners ? (outSize > 1 ? (inSize - 1) / (outSize - 1) : 0) : inSize / outSize;
      const src = method.alignCorners ? scale * d : Math.max(scale * (d + 0.5) - 0.5, 0);
      const i0 = Math.trunc(src);
      const step = i0 < inSize - 1 ? 1 : 0;
      const l1 = f(src - i0);
      index[o] = i0;
      index[o + 1] = i0 + step;
      weight[o] = f(1 - l1);
      weight[o + 1] = l1;
    } else if (method.kind === 'bicubic') {
      const src = torchSource(torchScale(inSize, outSize, method.alignCorners), d, method.alignCorners, true);
      const i0 = Math.floor(src);
      const t = f(src - i0);
      const c = [cubic2(f(t + 1)), cubic1(t), cubic1(f(1 - t)), cubic2(f(f(1 - t) + 1))];
      for (let k = 0; k < 4; k++) {
        index[o + k] = clamp(i0 - 1 + k);
        weight[o + k] = c[k]!;
      }
    } else {
      // OpenCV: scale = 1 / (dst/src) in double, source coordinate rounded to float.
      const scale = 1 / (outSize / inSize);
      let fx = f((d + 0.5) * scale - 0.5);
      const sx = Math.floor(fx);
      fx = f(fx - sx);
      const c0 = f(f(f(f(f(A * f(fx + 1)) - 5 * A) * f(fx + 1)) + 8 * A) * f(fx + 1) - 4 * A);
      const c1 = f(f(f(f(f((A + 2) * fx) - (A + 3)) * fx) * fx) + 1);
      const g = f(1 - fx);
      const c2 = f(f(f(f(f((A + 2) * g) - (A + 3)) * g) * g) + 1);
      const c3 = f(f(f(1 - c0) - c1) - c2);
      const c = [c0, c1, c2, c3];
      for (let k = 0; k < 4; k++) {
        index[o + k] = clamp(sx - 1 + k);
        weight[o + k] = c[k]!;
      }
    }
  }
  return { taps, index, weight };
}

/**
 * One thread per output pixel, looping over its channels (as vec4s when C is a
 * multiple of 4, as in the decoder's upsampling: C = 256, 128): the pixel's taps,
 * weights and source offsets are read and computed once, where a thread per value
 * recomputed them (with integer divisions lavapipe does lane by lane) for every 4
 * channels. On lavapipe the decoder's 2x upsampling at 384 (192 -> 384, C = 128)
 * took 18-20 ms this way against 60-63 ms one thread per vec4, bit for bit the same.
 * The sums keep the order both libraries use: along x within each tap row, then y.
 * For one channel (the depth map's resize back) the shader has no loop (`single`):
 * with one it ran no faster (4.7-5.3 against 4.1-6.0 ms at 384 -> 480).
 */
function resizeShader({ taps, vec, single }: { taps: number; vec: boolean; single: boolean }): string {
  const T = vec ? 'vec4<f32>' : 'f32';
  const A = [...Array(taps).keys()];
  const lines = [
    'struct P { n: u32, h: u32, w: u32, c: u32, oh: u32, ow: u32 }',
    `@group(0) @binding(0) var<storage, read> x: array<${T}>;`,
    '@group(0) @binding(1) var<storage, read> iy: array<i32>;',
    '@group(0) @binding(2) var<storage, read> wy: array<f32>;',
    '@group(0) @binding(3) var<storage, read> ix: array<i32>;',
    '@group(0) @binding(4) var<storage, read> wx: array<f32>;',
    `@group(0) @binding(5) var<storage, read_write> y: array<${T}>;`,
    '@group(0) @binding(6) var<uniform> p: P;',
    '@compute @workgroup_size(64)',
    `fn main(${FLAT_BUILTINS}) {`,
    `  let i = ${FLAT_INDEX};`,
    '  if (i >= p.n * p.oh * p.ow) { return; }',
    `  let c = ${vec ? 'p.c / 4u' : 'p.c'};`,
    '  let ox = i % p.ow;',
    '  let oy = (i / p.ow) % p.oh;',
    '  let n = i / (p.ow * p.oh);',
  ];
  for (const a of A) lines.push(`  let row${a} = (n * p.h + u32(iy[oy * ${taps}u + ${a}u])) * p.w;`, `  let wy${a} = wy[oy * ${taps}u + ${a}u];`);
  for (const b of A) lines.push(`  let col${b} = u32(ix[ox * ${taps}u + ${b}u]);`, `  let wx${b} = wx[ox * ${taps}u + ${b}u];`);
  for (const a of A) for (const b of A) lines.push(`  let o${a}_${b} = (row${a} + col${b}) * c;`);
  const ch = single ? '0u' : 'ch';
  if (!single) lines.push('  for (var ch = 0u; ch < c; ch++) {');
  lines.push(`    var acc = ${T}(0.0);`);
  for (const a of A) {
    lines.push('    {', `      var r = ${T}(0.0);`);
    for (const b of A) lines.push(`      r += wx${b} * x[o${a}_${b} + ${ch}];`);
    lines.push(`      acc += wy${a} * r;`, '    }');
  }
  lines.push(`    y[i * c + ${ch}] = acc;`);
  if (!single) lines.push('  }');
  lines.push('}');
  return lines.join('\n');
}

/**
 * Resizes an NHWC tensor to `outH x outW` with `method`. With `rows` = [start, end)
 * only those output rows are computed (the result is `end - start` rows high): a
 * result too big for one buffer is made in strips.
 */
export function resize2d(rt: Runtime, x: Tensor, outH: number, outW: number, method: ResizeMethod, rows?: readonly [number, number]): Tensor {
  const [n, h, w, c] = nhwc(x, 'resize input');
  const [r0, r1] = rows ?? [0, outH];
  if (!(0 <= r0 && r0 < r1 && r1 <= outH)) throw new Error(`resize: rows [${r0}, ${r1}) are outside 0..${outH}`);
  const full = resizeTaps(h, outH, method);
  const ty: Taps = {
    taps: full.taps,
    index: full.index.subarray(r0 * full.taps, r1 * full.taps),
    weight: full.weight.subarray(r0 * full.taps, r1 * full.taps),
  };
  const tx = resizeTaps(w, outW, method);
  const tables = [
    rt.upload(new Float32Array(ty.index.buffer, ty.index.byteOffset, ty.index.length), [ty.index.length]),
    rt.upload(ty.weight, [ty.weight.length]),
    rt.upload(new Float32Array(tx.index.buffer, tx.index.byteOffset, tx.index.length), [tx.index.length]),
    rt.upload(tx.weight, [tx.weight.length]),
  ];
  const y = rt.empty([n, r1 - r0, outW, c]);
  const name = method.kind === 'opencv-cubic' ? 'opencv-cubic' : `${method.kind}${method.alignCorners ? ' align_corners' : ''}`;
  rt.dispatch({
    label: `resize ${name} ${h}x${w}->${outH}x${outW} c${c}${rows ? ` rows ${r0}..${r1}` : ''}`,
    pipeline: rt.pipeline(memo(resizeShader, { taps: ty.taps, vec: c % 4 === 0, single: c === 1 })),
    buffers: [x, ...tables, y],
    uniforms: new Params().u32(n, h, w, c, r1 - r0, outW).build(),
    workgroups: grid1d(n * (r1 - r0) * outW),
  });
  for (const t of tables) t.dispose();
  return y;
}

/** `interpolate(scale_factor=2, mode='bilinear')`, as MiDaS's decoder uses it. */
export function upsample2x(rt: Runtime, x: Tensor, alignCorners: boolean): Tensor {
  const [, h, w] = nhwc(x, 'upsample input');
  return resize2d(rt, x, 2 * h, 2 * w, { kind: 'bilinear', alignCorners });
}
