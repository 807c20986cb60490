// The reference convolution: one thread per output value, loops over the window.
// Readable first; the tiled kernel in conv2d_tiled.ts is tested against it.
import type { Runtime } from '../nn/runtime.js';
import { nhwc, type Tensor } from '../nn/tensor.js';
import { FLAT_BUILTINS, FLAT_INDEX, grid1d, pad4, pair, Params, windowOut, type Padding, type Pair } from './common.js';

export interface Conv2dOptions {
  stride?: number | Pair;
  /** Zero padding: every side, `[rows, cols]`, or `[top, left, bottom, right]` (TF "SAME" is asymmetric). */
  padding?: Padding;
  groups?: number;
  /** `[Cout]`, added to every output pixel. */
  bias?: Tensor;
  /** NHWC tensor of the output's shape added after the bias (a residual connection). */
  residual?: Tensor;
  /** ReLU on the input as it is read: conv(relu(x)). */
  reluInput?: boolean;
  /** ReLU on the residual as it is read: ... + relu(r) (MiDaS's residual conv unit). */
  reluResidual?: boolean;
  /** ReLU on the result, after bias and residual. */
  relu?: boolean;
  /** ReLU6 on the result, after bias and residual: clamped to [0, 6] (MobileNet / EfficientNet-Lite). */
  relu6?: boolean;
}

export interface ConvGeometry {
  n: number; h: number; w: number; cin: number;
  oh: number; ow: number; cout: number;
  kh: number; kw: number; sh: number; sw: number;
  /** Padding before the first row and column: where the window starts (top, left). */
  ph: number; pw: number;
  /** Padding after the last row and column (bottom, right); only the output size depends on it. */
  pb: number; pr: number;
  groups: number; cinG: number; coutG: number;
}

/** Checks shapes and returns the convolution's geometry. `weightShape` is PyTorch's `[Cout, Cin/groups, kH, kW]`. */
export function convGeometry(x: Tensor, weightShape: readonly number[], opts: Conv2dOptions): ConvGeometry {
  const [n, h, w, cin] = nhwc(x, 'conv2d input');
  if (weightShape.length !== 4) throw new Error(`conv2d: weight shape [${weightShape.join(', ')}] is not 4-D`);
  const [cout, cinG, kh, kw] = weightShape as [number, number, number, number];
  const groups = opts.groups ?? 1;
  const [sh, sw] = pair(opts.stride, 1);
  const [ph, pw, pb, pr] = pad4(opts.padding, 'conv2d padding');
  if (cin % groups !== 0 || cout % groups !== 0) {
    throw new Error(`conv2d: ${cin} input / ${cout} output channels do not split into ${groups} groups`);
  }
  if (cin / groups !== cinG) {
    throw new Error(`conv2d: weight expects ${cinG} channels per group, input gives ${cin / groups}`);
  }
  if (opts.relu && opts.relu6) throw new Error('conv2d: relu and relu6 are exclusive');
  const oh = windowOut(h, kh, sh, ph, 'conv2d', pb);
  const ow = windowOut(w, kw, sw, pw, 'conv2d', pr);
  if (opts.bias && (opts.bias.shape.length !== 1 || opts.bias.shape[0] !== cout)) {
    throw new Error(`conv2d: bias shape [${opts.bias.shape.join(', ')}] is not [${cout}]`);
  }
  if (opts.residual) {
    const r = opts.residual.shape.join(', ');
    if (r !== [n, oh, ow, cout].join(', ')) throw new Error(`conv2d: residual [${r}] is not the output's [${n}, ${oh}, ${ow}, ${cout}]`);
  }
  return { n, h, w, cin, oh, ow, cout, kh, kw, sh, sw, ph, pw, pb, pr, groups, cinG, coutG: cout / groups };
}

/** The fused work of a conv, for labels: `relu(x)`, `+res`, `+relu(res)`, `relu`, `relu6`. */
export function epilogueText(opts: Conv2dOptions): string {
  const parts = [
    opts.reluInput ? 'relu(x)' : '',
    opts.residual ? (opts.reluResidual ? '+relu(res)' : '+res') : '',
    opts.relu ? 'relu' : '',
    opts.relu6 ? 'relu6' : '',
  ].filter(Boolean);
  return parts.length ? ` [${parts.join(' ')}]` : '';
}

/** Multiply-accumulates of a convolution. */
export function convMacs(g: ConvGeometry): number {
  return g.n * g.oh * g.ow * g.cout * g.cinG * g.kh * g.kw;
}

export function convParams(g: ConvGeometry): ArrayBuffer {
  return new Params()
    .u32(g.n, g.h, g.w, g.cin, g.oh, g.ow, g.cout, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.cinG, g.coutG)
    .build();
}

export const CONV_PARAMS_WGSL = /* wgsl */ `
struct ConvParams {
  n: u32, h: u32, w: u32, cin: u32,
  oh: u32, ow: u32, cout: u32,
  kh: u32, kw: u32, sh: u32, sw: u32, ph: u32, pw: u32,
  cin_g: u32, cout_g: u32,
}`;

/** The epilogue's bindings (bias, residual), shared by the conv kernels; applied in PyTorch's order, then the activation. */
export function epilogueBindings(opts: Conv2dOptions, first: number): { decl: string; order: ('bias' | 'residual')[] } {
  const order: ('bias' | 'residual')[] = [];
  let decl = '';
  let b = first;
  if (opts.bias) {
    decl += `@group(0) @binding(${b++}) var<storage, read> bias: array<f32>;\n`;
    order.push('bias');
  }
  if (opts.residual) {
    decl += `@group(0) @binding(${b++}) var<storage, read> residual: array<f32>;\n`;
    order.push('residual');
  }
  return { decl, order };
}

function naiveShader(opts: Conv2dOptions): string {
  const ep = epilogueBindings(opts, 2);
  const outBinding = 2 + ep.order.length;
  const read = opts.reluInput ? 'max(x[xi], 0.0)' : 'x[xi]';
  return /* wgsl */ `
${CONV_PARAMS_WGSL}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
${ep.decl}@group(0) @binding(${outBinding}) var<storage, read_write> y: array<f32>;
@group(0) @binding(${outBinding + 1}) var<uniform> p: ConvParams;

@compute @workgroup_size(64)
fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX};
  if (i >= p.n * p.oh * p.ow * p.cout) { return; }
  let co = i % p.cout;
  let ox = (i / p.cout) % p.ow;
  let oy = (i / (p.cout * p.ow)) % p.oh;
  let n = i / (p.cout * p.ow * p.oh);
  let g = co / p.cout_g;
  var acc = 0.0;
  for (var ky = 0u; ky < p.kh; ky++) {
    let iy = i32(oy * p.sh + ky) - i32(p.ph);
    if (iy < 0 || iy >= i32(p.h)) { continue; }
    for (var kx = 0u; kx < p.kw; kx++) {
      let ix = i32(ox * p.sw + kx) - i32(p.pw);
      if (ix < 0 || ix >= i32(p.w)) { continue; }
      let xrow = ((n * p.h + u32(iy)) * p.w + u32(ix)) * p.cin + g * p.cin_g;
      for (var ci = 0u; ci < p.cin_g; ci++) {
        let xi = xrow + ci;
        acc += ${read} * weight[((co * p.cin_g + ci) * p.kh + ky) * p.kw + kx];
      }
    }
  }
  ${opts.bias ? 'acc += bias[co];' : ''}
  ${opts.residual ? `acc += ${opts.reluResidual ? 'max(residual[i], 0.0)' : 'residual[i]'};` : ''}
  y[i] = ${opts.relu6 ? 'clamp(acc, 0.0, 6.0)' : opts.relu ? 'max(acc, 0.0)' : 'acc'};
}`;
}

/**
 * 2-D convolution, NHWC input, PyTorch-layout weight `[Cout, Cin/groups, kH, kW]`.
 * Any kernel size, stride, padding and groups.
 */
export function conv2dNaive(rt: Runtime, x: Tensor, weight: Tensor, opts: Conv2dOptions = {}): Tensor {
  const g = convGeometry(x, weight.shape, opts);
  const y = rt.empty([g.n, g.oh, g.ow, g.cout]);
  const buffers = [x, weight, ...(opts.bias ? [opts.bias] : []), ...(opts.residual ? [opts.residual] : []), y];
  rt.dispatch({
    label: `conv2d_naive ${g.kh}x${g.kw}/${g.sh} g${g.groups} ${g.cin}->${g.cout} @${g.oh}x${g.ow}${epilogueText(opts)}`,
    pipeline: rt.pipeline(naiveShader(opts)),
    buffers,
    uniforms: convParams(g),
    workgroups: grid1d(g.n * g.oh * g.ow * g.cout),
    macs: convMacs(g),
  });
  return y;
}
