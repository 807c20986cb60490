import type { Runtime } from '../nn/runtime.js';
import { nhwc, type Tensor } from '../nn/tensor.js';
import { FLAT_BUILTINS, FLAT_INDEX, grid1d, pair, Params, windowOut, type Pair } from './common.js';

// Padded positions are skipped, not read as zeros or -inf: padding never wins the
// max, as in PyTorch. Every window holds at least one real pixel when pad <= k/2.
const MAXPOOL = /* wgsl */ `
struct P { n: u32, h: u32, w: u32, c: u32, oh: u32, ow: u32, kh: u32, kw: u32, sh: u32, sw: u32, ph: u32, pw: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX};
  if (i >= p.n * p.oh * p.ow * p.c) { return; }
  let c = i % p.c;
  let ox = (i / p.c) % p.ow;
  let oy = (i / (p.c * p.ow)) % p.oh;
  let n = i / (p.c * p.ow * p.oh);
  var m = -3.402823e38;
  for (var ky = 0u; ky < p.kh; ky++) {
    let iy = i32(oy * p.sh + ky) - i32(p.ph);
    if (iy < 0 || iy >= i32(p.h)) { continue; }
    for (var kx = 0u; kx < p.kw; kx++) {
      let ix = i32(ox * p.sw + kx) - i32(p.pw);
      if (ix < 0 || ix >= i32(p.w)) { continue; }
      m = max(m, x[((n * p.h + u32(iy)) * p.w + u32(ix)) * p.c + c]);
    }
  }
  y[i] = m;
}`;

export interface MaxPoolOptions {
  kernel?: number | Pair;
  stride?: number | Pair;
  padding?: number | Pair;
}

/** MaxPool2d on NHWC; defaults are ResNet's stem: 3x3, stride 2, padding 1. */
export function maxpool2d(rt: Runtime, x: Tensor, opts: MaxPoolOptions = {}): Tensor {
  const [n, h, w, c] = nhwc(x, 'maxpool2d input');
  const [kh, kw] = pair(opts.kernel, 3);
  const [sh, sw] = pair(opts.stride ?? opts.kernel, 2);
  const [ph, pw] = pair(opts.padding, 1);
  if (2 * ph > kh || 2 * pw > kw) throw new Error(`maxpool2d: padding ${ph}x${pw} is over half the kernel ${kh}x${kw}`);
  const oh = windowOut(h, kh, sh, ph, 'maxpool2d');
  const ow = windowOut(w, kw, sw, pw, 'maxpool2d');
  const y = rt.empty([n, oh, ow, c]);
  rt.dispatch({
    label: `maxpool2d ${kh}x${kw}/${sh} [${x.shape.join('x')}]`,
    pipeline: rt.pipeline(MAXPOOL),
    buffers: [x, y],
    uniforms: new Params().u32(n, h, w, c, oh, ow, kh, kw, sh, sw, ph, pw).build(),
    workgroups: grid1d(y.size),
  });
  return y;
}
