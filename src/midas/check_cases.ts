// One kernel call of the model (kernel_variants.ts) made again at another input size,
// with random inputs, and its CPU reference (cpu_kernels.ts). The same code dispatches
// on a meta runtime (shapes only: which shader a size gets) and on the device.
import { Float16Array } from '@petamoriken/float16';
import { IMAGENET_MEAN, IMAGENET_STD, normalize } from '../kernels/channelwise.js';
import { pad4 } from '../kernels/common.js';
import { add, relu, relu6 } from '../kernels/elementwise.js';
import { maxpool2d } from '../kernels/maxpool2d.js';
import { resize2d, resizeTaps } from '../kernels/resize.js';
import { Conv2d } from '../nn/layers.js';
import type { Runtime } from '../nn/runtime.js';
import type { Tensor } from '../nn/tensor.js';
import {
  addReference, clampReference, convOutputSize, convReference, maxpoolReference, normalizeReference,
  randomValues, resizeReference, sampleOutputs, type Reference,
} from './cpu_kernels.js';
import type { KernelCall } from './kernel_variants.js';

/** A call at one input size: its inputs, and what to compare the output with. */
export interface CheckCase {
  /** The input's NHWC shape. */
  input: readonly number[];
  /** Dispatches the kernel on `rt`; `perturbed`: element 0 of the main input is off by 3 (see `SelfCheckOptions.breakKernel`). */
  run(rt: Runtime, perturbed?: boolean): Tensor;
  reference(): Reference;
}

/** A call that can be made at other sizes: its sizes to try, smallest first, and the case at one. */
export interface CaseMaker {
  sizes: readonly (readonly [number, number])[];
  /** Shapes only (for a meta runtime): null where the size does not fit the call (a window larger than the input). */
  at(h: number, w: number, withData: boolean): CheckCase | null;
}

/** Sides to try along an axis of length n: 4..16, then multiples of 8, then n itself. */
function ladder(n: number): number[] {
  const s = new Set<number>([n]);
  for (let v = Math.min(4, n); v <= Math.min(16, n); v++) s.add(v);
  for (let v = 24; v < n; v += 8) s.add(v);
  return [...s].sort((a, b) => a - b);
}

/** Input sizes up to the original's, by area (then squarer first). */
function sizesUpTo(input: readonly number[]): [number, number][] {
  const pairs: [number, number][] = [];
  for (const h of ladder(input[1]!)) for (const w of ladder(input[2]!)) pairs.push([h, w]);
  return pairs.sort((a, b) => a[0] * a[1] - b[0] * b[1] || Math.abs(a[0] - a[1]) - Math.abs(b[0] - b[1]));
}

/** x with element 0 moved by 3: a kernel that reads its input wrongly, as far as the comparison can tell. */
function perturb(x: Float32Array, on?: boolean): Float32Array {
  if (!on) return x;
  const y = x.slice();
  y[0] = y[0]! + 3;
  return y;
}

/** Uploads `values`, or on a meta runtime (or without data) a tensor of the shape only. */
function tensor(rt: Runtime, values: Float32Array | null, shape: readonly number[]): Tensor {
  return values && !rt.meta ? rt.upload(values, shape) : rt.empty(shape);
}

let seed = 1;
const random = (n: number, lo = -1, hi = 1) => randomValues(n, seed++, lo, hi);

export function caseMaker(call: KernelCall): CaseMaker {
  switch (call.op) {
    case 'conv':
      return convCases(call);
    case 'maxpool':
      return simpleCases(call.input, (h, w, c, data) => {
        const { kernelSize: k, stride: s, padding: p } = call.pool;
        if (h + 2 * p < k || w + 2 * p < k) return null;
        const x = data ? random(h * w * c) : null;
        return {
          run: (rt, bad) => withInput(rt, x && perturb(x, bad), [1, h, w, c], (t) => maxpool2d(rt, t, { kernel: k, stride: s, padding: p })),
          reference: () => maxpoolReference(x!, 1, h, w, c, [k, k], [s, s], [p, p]),
        };
      });
    case 'resize': {
      const [, H, W] = call.input as [number, number, number, number];
      const [, OH, OW] = call.output as [number, number, number, number];
      return simpleCases(call.input, (h, w, c, data) => {
        // The same ratio as the model's call (the taps are uniforms: any ratio runs the same shader).
        const oh = Math.max(1, Math.round((h * OH) / H));
        const ow = Math.max(1, Math.round((w * OW) / W));
        const x = data ? random(h * w * c) : null;
        return {
          run: (rt, bad) => withInput(rt, x && perturb(x, bad), [1, h, w, c], (t) => resize2d(rt, t, oh, ow, call.method)),
          reference: () => resizeReference(x!, 1, h, w, c, resizeTaps(h, oh, call.method), resizeTaps(w, ow, call.method)),
        };
      });
    }
    case 'add':
      return simpleCases(call.input, (h, w, c, data) => {
        const a = data ? random(h * w * c) : null;
        const b = data ? random(h * w * c) : null;
        const shape = [1, h, w, c];
        return {
          run: (rt, bad) => withInput(rt, a && perturb(a, bad), shape, (ta) => withInput(rt, b, shape, (tb) => add(rt, ta, tb, { relu: call.relu }))),
          reference: () => addReference(a!, b!, call.relu),
        };
      });
    case 'normalize':
      return simpleCases(call.input, (h, w, c, data) => {
        if (c !== IMAGENET_MEAN.length) return null;
        // The transform's: pixel values 0..255 scaled by 1/255, ImageNet's mean and std.
        const x = data ? random(h * w * c, 0, 255) : null;
        return {
          run: (rt, bad) => withInput(rt, x && perturb(x, bad), [1, h, w, c], (t) => normalize(rt, t, IMAGENET_MEAN, IMAGENET_STD, 1 / 255)),
          reference: () => normalizeReference(x!, IMAGENET_MEAN, IMAGENET_STD, 1 / 255),
        };
      });
    case 'relu':
    case 'relu6':
      return simpleCases(call.input, (h, w, c, data) => {
        const x = data ? random(h * w * c, -8, 8) : null;
        const f = call.op === 'relu' ? relu : relu6;
        return {
          run: (rt, bad) => withInput(rt, x && perturb(x, bad), [1, h, w, c], (t) => f(rt, t)),
          reference: () => clampReference(x!, call.op === 'relu6'),
        };
      });
  }
}

/** Runs `f` on a tensor of `values` and frees it. */
function withInput(rt: Runtime, values: Float32Array | null, shape: readonly number[], f: (t: Tensor) => Tensor): Tensor {
  const t = tensor(rt, values, shape);
  try {
    return f(t);
  } finally {
    t.dispose();
  }
}

/** Kernels whose shader does not depend on the input's size: any size runs it. */
function simpleCases(
  input: readonly number[],
  make: (h: number, w: number, c: number, data: boolean) => Omit<CheckCase, 'input'> | null,
): CaseMaker {
  const c = input[3]!;
  return {
    sizes: sizesUpTo(input),
    at(h, w, withData) {
      const made = make(h, w, c, withData);
      return made && { input: [1, h, w, c], ...made };
    },
  };
}

/**
 * A conv of the model's module's shape (channels, kernel, stride, padding, groups,
 * weight storage and arithmetic) on a smaller input: a new Conv2d, so that the tile is
 * chosen as for the model's (by weight shape, on the runtime given), with random
 * weights, and the fused work of the model's dispatch.
 */
function convCases(call: Extract<KernelCall, { op: 'conv' }>): CaseMaker {
  const src = call.conv;
  const cin = call.input[3]!;
  const shape = src.weightShape;
  const [cout, cinG, kh, kw] = shape;
  // A BatchNorm folded at load time gave the conv a bias even where it had none.
  const hasBias = src.hasBias || !!src.foldedBatchNorm;
  const f16 = src.weightDType === 'f16';
  const module = (rt: Runtime, weight?: Float32Array, bias?: Float32Array): Conv2d => {
    const c = new Conv2d(src.inChannels, src.outChannels, src.kernelSize, { stride: src.stride, padding: src.padding, groups: src.groups, bias: hasBias });
    c.weightDType = src.weightDType;
    c.f16Math = src.f16Math;
    if (weight) {
      const w = new Map<string, { shape: readonly number[]; data: Float32Array }>([['weight', { shape, data: weight }]]);
      if (bias) w.set('bias', { shape: [cout], data: bias });
      c.loadState(w);
    }
    c.upload(rt);
    return c;
  };
  const metaModules = new WeakMap<Runtime, Conv2d>();
  return {
    sizes: sizesUpTo(call.input),
    at(h, w, withData) {
      const pad = pad4(src.paddingFor(h, w));
      const [oh, ow] = convOutputSize({ h, w, kh, kw, sh: src.stride, sw: src.stride, pad });
      if (oh < 1 || ow < 1) return null;
      const out = [1, oh, ow, cout];
      const x = withData ? random(h * w * cin) : null;
      // Weights scaled so each output sums to about 1; f16 storage rounds them as the GPU has them.
      let weight = withData ? random(cout * cinG * kh * kw, -1 / Math.sqrt(cinG * kh * kw), 1 / Math.sqrt(cinG * kh * kw)) : null;
      if (weight && f16) weight = new Float32Array(new Float16Array(weight));
      const bias = withData && hasBias ? random(cout, -0.5, 0.5) : undefined;
      const residual = withData && call.epilogue.residual ? random(oh * ow * cout) : null;
      return {
        input: [1, h, w, cin],
        run(rt, bad) {
          let conv: Conv2d;
          if (rt.meta) {
            conv = metaModules.get(rt) ?? module(rt);
            metaModules.set(rt, conv);
          } else {
            conv = module(rt, weight!, bias);
          }
          const res = call.epilogue.residual ? tensor(rt, residual, out) : undefined;
          try {
            return withInput(rt, x && perturb(x, bad), [1, h, w, cin], (t) => conv.forward(t, { ...call.epilogue, residual: res }));
          } finally {
            res?.dispose();
            if (!rt.meta) conv.dispose();
          }
        },
        reference() {
          const index = sampleOutputs(oh * ow, cout, cinG * kh * kw);
          const { residual: _, ...fused } = call.epilogue;
          return convReference(x!, weight!, {
            n: 1, h, w, cin, cout, kh, kw, sh: src.stride, sw: src.stride, pad, groups: src.groups,
            bias, residual: residual ?? undefined, ...fused,
            // The depthwise kernel and the scalar-input path multiply in f32 regardless.
            f16Products: src.f16Math && !src.isDepthwise && cin % 4 === 0,
          }, index);
        },
      };
    },
  };
}
