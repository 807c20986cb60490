// Per-channel affine kernels on NHWC tensors: inference batch norm and the
// input normalization. Both are y = x * scale[c] + shift[c] on the GPU; they differ
// in where scale and shift come from.
import type { Runtime } from '../nn/runtime.js';
import { nhwc, type Tensor } from '../nn/tensor.js';
import { FLAT_BUILTINS, FLAT_INDEX, grid1d, Params } from './common.js';

export const BN_EPS = 1e-5;

const BATCHNORM = (relu: boolean) => /* wgsl */ `
struct P { count: u32, channels: u32, eps: f32, _pad: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read> mean: array<f32>;
@group(0) @binding(4) var<storage, read> variance: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<uniform> p: P;
@compute @workgroup_size(64)
fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX};
  if (i >= p.count) { return; }
  let c = i % p.channels;
  let v = (x[i] - mean[c]) / sqrt(variance[c] + p.eps) * gamma[c] + beta[c];
  y[i] = ${relu ? 'max(v, 0.0)' : 'v'};
}`;

export interface BatchNormTensors {
  weight: Tensor;
  bias: Tensor;
  runningMean: Tensor;
  runningVar: Tensor;
}

/** BatchNorm2d in inference mode on an NHWC tensor, as PyTorch's `eval()` computes it. */
export function batchnorm2d(
  rt: Runtime,
  x: Tensor,
  bn: BatchNormTensors,
  opts: { eps?: number; relu?: boolean } = {},
): Tensor {
  const c = nhwc(x, 'batchnorm2d input')[3];
  for (const [name, t] of Object.entries(bn)) {
    if (t.shape.length !== 1 || t.shape[0] !== c) throw new Error(`batchnorm2d: ${name} is [${t.shape.join(', ')}], expected [${c}]`);
  }
  const y = rt.empty(x.shape);
  rt.dispatch({
    label: `batchnorm2d ${c} [${x.shape.join('x')}]`,
    pipeline: rt.pipeline(BATCHNORM(!!opts.relu)),
    buffers: [x, bn.weight, bn.bias, bn.runningMean, bn.runningVar, y],
    uniforms: new Params().u32(x.size, c).f32(opts.eps ?? BN_EPS).u32(0).build(),
    workgroups: grid1d(x.size),
  });
  return y;
}

/** CPU-side batch norm parameters, as stored in a checkpoint. */
export interface BatchNormParams {
  weight: Float32Array;
  bias: Float32Array;
  runningMean: Float32Array;
  runningVar: Float32Array;
}

/**
 * An inference BatchNorm after a convolution, as a per-output-channel scale and a new
 * bias: bn(conv(x)) = conv'(x) with w' = w * scale[co] and
 * b' = (b - mean) * s + beta, s = gamma / sqrt(var + eps). The scale stays float64 so
 * that w * scale, rounded once to f32, is exactly `foldBatchNorm`'s weight, wherever
 * the product is taken (the conv packers take it while re-laying out the weights,
 * which saves a pass and an allocation the size of the weights).
 */
export function batchNormScale(
  cout: number,
  bn: BatchNormParams,
  bias?: Float32Array,
  eps = BN_EPS,
): { scale: Float64Array; bias: Float32Array } {
  const scale = new Float64Array(cout);
  const b = new Float32Array(cout);
  for (let co = 0; co < cout; co++) {
    const s = bn.weight[co]! / Math.sqrt(bn.runningVar[co]! + eps);
    scale[co] = s;
    b[co] = ((bias?.[co] ?? 0) - bn.runningMean[co]!) * s + bn.bias[co]!;
  }
  return { scale, bias: b };
}

/**
 * Folds an inference BatchNorm into the convolution before it, once at load time:
 * the weights times `batchNormScale`'s scale (computed in float64), its bias.
 */
export function foldBatchNorm(
  weight: Float32Array,
  cout: number,
  bn: BatchNormParams,
  bias?: Float32Array,
  eps = BN_EPS,
): { weight: Float32Array; bias: Float32Array } {
  if (weight.length % cout !== 0) throw new Error(`foldBatchNorm: ${weight.length} weights do not split into ${cout} channels`);
  const folded = batchNormScale(cout, bn, bias, eps);
  return { weight: scaleChannels(weight, folded.scale), bias: folded.bias };
}

/** weight [Cout, ...] with each output channel's values times scale[co], rounded to f32. */
export function scaleChannels(weight: Float32Array, scale: Float64Array): Float32Array {
  const per = weight.length / scale.length;
  const w = new Float32Array(weight.length);
  for (let co = 0; co < scale.length; co++) {
    const s = scale[co]!;
    for (let i = co * per; i < (co + 1) * per; i++) w[i] = weight[i]! * s;
  }
  return w;
}

const NORMALIZE = /* wgsl */ `
struct P { count: u32, channels: u32, scale: f32, _pad: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> stats: array<f32>;   // mean[0..C), std[C..2C)
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: P;
@compute @workgroup_size(64)
fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX};
  if (i >= p.count) { return; }
  let c = i % p.channels;
  y[i] = (x[i] * p.scale - stats[c]) / stats[p.channels + c];
}`;

/** ImageNet's mean and std, as the MiDaS hub transform uses them. */
export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

/**
 * y = (x * scale - mean[c]) / std[c] per channel of an NHWC tensor; `scale` = 1/255
 * turns 0..255 pixel values into the 0..1 range the transform expects.
 */
export function normalize(
  rt: Runtime,
  x: Tensor,
  mean: readonly number[],
  std: readonly number[],
  scale = 1,
): Tensor {
  const c = nhwc(x, 'normalize input')[3];
  if (mean.length !== c || std.length !== c) throw new Error(`normalize: need ${c} means and stds`);
  const stats = rt.upload(Float32Array.from([...mean, ...std]), [2 * c]);
  const y = rt.empty(x.shape);
  rt.dispatch({
    label: `normalize [${x.shape.join('x')}]`,
    pipeline: rt.pipeline(NORMALIZE),
    buffers: [x, stats, y],
    uniforms: new Params().u32(x.size, c).f32(scale).u32(0).build(),
    workgroups: grid1d(x.size),
  });
  stats.dispose();
  return y;
}
