// One-thread-per-element kernels on flat buffers: ReLU, ReLU6 and add.
import type { Runtime } from '../nn/runtime.js';
import type { Tensor } from '../nn/tensor.js';
import { FLAT_BUILTINS, FLAT_INDEX, grid1d, Params } from './common.js';

/** y = f(x) elementwise; `expr` is WGSL in `v`. */
const UNARY = (expr: string) => /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> count: vec4<u32>;
@compute @workgroup_size(64)
fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX};
  if (i < count.x) { let v = x[i]; y[i] = ${expr}; }
}`;

const ADD = (relu: boolean) => /* wgsl */ `
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> count: vec4<u32>;
@compute @workgroup_size(64)
fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX};
  if (i < count.x) { y[i] = ${relu ? 'max(a[i] + b[i], 0.0)' : 'a[i] + b[i]'}; }
}`;

function unary(rt: Runtime, x: Tensor, name: string, expr: string): Tensor {
  const y = rt.empty(x.shape);
  rt.dispatch({
    label: `${name} [${x.shape.join('x')}]`,
    pipeline: rt.pipeline(UNARY(expr)),
    buffers: [x, y],
    uniforms: new Params().u32(x.size).build(),
    workgroups: grid1d(x.size),
  });
  return y;
}

export function relu(rt: Runtime, x: Tensor): Tensor {
  return unary(rt, x, 'relu', 'max(v, 0.0)');
}

/** min(max(x, 0), 6), as torch.nn.ReLU6. */
export function relu6(rt: Runtime, x: Tensor): Tensor {
  return unary(rt, x, 'relu6', 'min(max(v, 0.0), 6.0)');
}

/** a + b (same shape), optionally followed by ReLU. */
export function add(rt: Runtime, a: Tensor, b: Tensor, opts: { relu?: boolean } = {}): Tensor {
  if (a.shape.join() !== b.shape.join()) {
    throw new Error(`add: shapes [${a.shape.join(', ')}] and [${b.shape.join(', ')}] differ`);
  }
  const y = rt.empty(a.shape);
  rt.dispatch({
    label: `add${opts.relu ? '+relu' : ''} [${a.shape.join('x')}]`,
    pipeline: rt.pipeline(ADD(!!opts.relu)),
    buffers: [a, b, y],
    uniforms: new Params().u32(a.size).build(),
    workgroups: grid1d(a.size),
  });
  return y;
}
