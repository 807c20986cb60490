// Depthwise convolution (groups = channels = output channels), channels-last.
//
// Each output value reads k*k inputs and k*k weights and does k*k FMAs: next to a dense
// conv it has almost no arithmetic per byte, so the kernel is laid out for memory
// traffic. A thread owns 4 channels (one vec4: neighbouring threads read neighbouring
// 16 bytes of the same pixel, and 4 channels are one load) and `tx` neighbouring
// output pixels along x of one row: per kernel row it loads the (tx-1)*stride + kw
// input columns those pixels share once, and each weight once for all tx pixels.
// Weights are re-laid out at load time as [kH][kW][C] (C padded to 4) so that 4
// channels of one tap are one vec4 load. Channel counts that are not a multiple of 4
// take a scalar variant of the same shader.
import type { Runtime } from '../nn/runtime.js';
import type { DType, Tensor } from '../nn/tensor.js';
import { Params } from './common.js';
import { convGeometry, convMacs, epilogueText, type Conv2dOptions, type ConvGeometry } from './conv2d.js';
import { reluBounds } from './conv2d_tiled.js';

/** A depthwise conv's weights (and bias) re-laid out for `depthwiseConv2d`. */
export interface PackedDepthwise {
  /** `[kH*kW, CPad]`: tap-major, channels padded to a multiple of 4 with zeros. */
  weight: Tensor;
  /** `[CPad]`: zeros for a conv without bias (one shader serves both). */
  bias: Tensor;
  /** PyTorch's `[C, 1, kH, kW]`. */
  shape: readonly [number, number, number, number];
  /** Channels rounded up to 4. */
  cPad: number;
}

/** Whether a conv of this PyTorch weight shape and groups is one `depthwiseConv2d` runs. */
export function isDepthwise(shape: readonly number[], groups: number): boolean {
  return shape.length === 4 && shape[1] === 1 && groups === shape[0] && groups >= 1;
}

/** Re-lays out a PyTorch depthwise weight `[C, 1, kH, kW]` as `[kH][kW][CPad]`. */
export function packDepthwiseWeight(weight: Float32Array, shape: readonly number[]): { data: Float32Array; cPad: number } {
  const [c, one, kh, kw] = shape as [number, number, number, number];
  if (shape.length !== 4 || one !== 1) throw new Error(`depthwise: weight shape [${shape.join(', ')}] is not [C, 1, kH, kW]`);
  if (weight.length !== c * kh * kw) throw new Error(`depthwise: ${weight.length} weights do not fill [${shape.join(', ')}]`);
  const cPad = Math.ceil(c / 4) * 4;
  const data = new Float32Array(kh * kw * cPad);
  for (let ch = 0; ch < c; ch++) {
    for (let t = 0; t < kh * kw; t++) data[t * cPad + ch] = weight[ch * kh * kw + t]!;
  }
  return { data, cPad };
}

/**
 * Packs and uploads a depthwise conv's weights. With `weightDType` 'f16' they are
 * stored in half precision (half the weight traffic); the arithmetic stays f32, as
 * does the bias.
 */
export function packDepthwise(
  rt: Runtime,
  weight: Float32Array,
  shape: readonly [number, number, number, number],
  bias?: Float32Array,
  weightDType: DType = 'f32',
): PackedDepthwise {
  const { data, cPad } = packDepthwiseWeight(weight, shape);
  const [c, , kh, kw] = shape;
  if (bias && bias.length !== c) throw new Error(`depthwise: ${bias.length} biases for ${c} channels`);
  const b = new Float32Array(cPad);
  if (bias) b.set(bias);
  return { weight: rt.upload(data, [kh * kw, cPad], weightDType), bias: rt.upload(b, [cPad]), shape, cPad };
}

/** A shapes-only `PackedDepthwise` for a meta runtime (its tensors hold no data). */
export function emptyDepthwise(rt: Runtime, shape: readonly [number, number, number, number], weightDType: DType = 'f32'): PackedDepthwise {
  const [c, , kh, kw] = shape;
  const cPad = Math.ceil(c / 4) * 4;
  return { weight: rt.empty([kh * kw, cPad], weightDType), bias: rt.empty([cPad]), shape, cPad };
}

export function disposeDepthwise(p: PackedDepthwise): void {
  p.weight.dispose();
  p.bias.dispose();
}

/**
 * How a dispatch divides the work: each thread computes `tx` x `ty` output pixels of
 * one channel unit, and a workgroup is `wg` such threads, all on the same channel unit.
 */
export interface DepthwiseTile {
  tx: number;
  ty: number;
  wg: number;
}

interface DwKey extends DepthwiseTile {
  kh: number; kw: number; sh: number; sw: number;
  /** Channels as vec4s (C a multiple of 4) or one channel per thread. */
  vec4: boolean;
  f16Weights: boolean;
  residual: boolean;
}

const DW_PARAMS = /* wgsl */ `
struct DwParams {
  h: u32, w: u32, oh: u32, ow: u32,
  cv: u32, wrow: u32, pt: u32, pl: u32,
  bx: u32, by: u32, blocks: u32, wg_x: u32,
  xlo: f32, rlo: f32, ylo: f32, yhi: f32,
}`;

function dwShader(k: DwKey): string {
  const lines: string[] = [];
  const emit = (s: string) => lines.push(s);
  const cols = (k.tx - 1) * k.sw + k.kw;
  const rows = (k.ty - 1) * k.sh + k.kh;
  const F = k.vec4 ? 'vec4<f32>' : 'f32';
  const wType = k.f16Weights ? (k.vec4 ? 'vec4<f16>' : 'f16') : F;
  const W = (i: string) => (k.f16Weights ? `${F}(w[${i}])` : `w[${i}]`);
  const zero = `${F}(0.0)`;
  const acc = (ty: number, tx: number) => `acc${ty}_${tx}`;
  if (k.f16Weights) emit('enable f16;');
  emit(DW_PARAMS);
  emit(`@group(0) @binding(0) var<storage, read> x: array<${F}>;`);
  emit(`@group(0) @binding(1) var<storage, read> w: array<${wType}>;`);
  emit(`@group(0) @binding(2) var<storage, read> bias: array<${F}>;`);
  let b = 3;
  if (k.residual) emit(`@group(0) @binding(${b++}) var<storage, read> residual: array<${F}>;`);
  emit(`@group(0) @binding(${b++}) var<storage, read_write> y: array<${F}>;`);
  emit(`@group(0) @binding(${b}) var<uniform> p: DwParams;`);
  emit(`@compute @workgroup_size(${k.wg})`);
  emit(`fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {`);
  // The channel unit comes from the workgroup alone, so the weight and bias loads have
  // one address for the whole workgroup (see `depthwiseConv2d`).
  emit(`  let c = wid.y;`);
  for (let t = 0; t < k.kh * k.kw; t++) emit(`  let w${t} = ${W(`${t}u * p.wrow + c`)};`);
  emit(`  let bv = bias[c];`);
  // Pixel blocks run along x, and on along z past the adapter's workgroups per dimension.
  emit(`  let blk = (wid.z * p.wg_x + wid.x) * ${k.wg}u + lid.x;`);
  emit(`  if (blk >= p.blocks) { return; }`);
  emit(`  let ox0 = (blk % p.bx) * ${k.tx}u;`);
  emit(`  let oy0 = ((blk / p.bx) % p.by) * ${k.ty}u;`);
  emit(`  let img = blk / (p.bx * p.by);`);
  emit(`  let iy0 = i32(oy0 * ${k.sh}u) - i32(p.pt);`);
  emit(`  let ix0 = i32(ox0 * ${k.sw}u) - i32(p.pl);`);
  // Input columns: their offsets and whether each is inside the image, once for all rows.
  for (let j = 0; j < cols; j++) {
    emit(`  let cx${j} = ix0 + ${j};`);
    emit(`  let cin${j} = cx${j} >= 0 && cx${j} < i32(p.w);`);
    emit(`  let co${j} = u32(clamp(cx${j}, 0, i32(p.w) - 1));`);
  }
  for (let ty = 0; ty < k.ty; ty++) for (let tx = 0; tx < k.tx; tx++) emit(`  var ${acc(ty, tx)} = bv;`);
  // One input row at a time: its columns are loaded once and feed every output row
  // and column of the block that uses them; then they are dead.
  for (let r = 0; r < rows; r++) {
    emit(`  {`);
    emit(`    let iy = iy0 + ${r};`);
    emit(`    let rin = iy >= 0 && iy < i32(p.h);`);
    emit(`    let row = (img * p.h + u32(clamp(iy, 0, i32(p.h) - 1))) * p.w;`);
    for (let j = 0; j < cols; j++) {
      emit(`    let x${j} = select(${zero}, max(x[(row + co${j}) * p.cv + c], ${F}(p.xlo)), rin && cin${j});`);
    }
    for (let ty = 0; ty < k.ty; ty++) {
      const ky = r - ty * k.sh;
      if (ky < 0 || ky >= k.kh) continue;
      for (let kx = 0; kx < k.kw; kx++) {
        for (let tx = 0; tx < k.tx; tx++) emit(`    ${acc(ty, tx)} = fma(x${tx * k.sw + kx}, w${ky * k.kw + kx}, ${acc(ty, tx)});`);
      }
    }
    emit(`  }`);
  }
  for (let ty = 0; ty < k.ty; ty++) {
    for (let tx = 0; tx < k.tx; tx++) {
      emit(`  if (oy0 + ${ty}u < p.oh && ox0 + ${tx}u < p.ow) {`);
      emit(`    let o = ((img * p.oh + oy0 + ${ty}u) * p.ow + ox0 + ${tx}u) * p.cv + c;`);
      emit(`    var v = ${acc(ty, tx)};`);
      if (k.residual) emit(`    v += max(residual[o], ${F}(p.rlo));`);
      emit(`    y[o] = min(max(v, ${F}(p.ylo)), ${F}(p.yhi));`);
      emit(`  }`);
    }
  }
  emit(`}`);
  return lines.join('\n');
}

const shaderTexts = new Map<string, string>();
function shaderFor(k: DwKey): string {
  const id = JSON.stringify(k);
  let text = shaderTexts.get(id);
  if (text === undefined) shaderTexts.set(id, (text = dwShader(k)));
  return text;
}

/**
 * Compulsory traffic of a depthwise conv, in bytes: the input read once, the weights
 * and bias once, the residual once, the output written once.
 */
export function depthwiseBytes(g: ConvGeometry, opts: { residual?: unknown; weightBytes?: number } = {}): number {
  const act = g.n * g.oh * g.ow * g.cout;
  const cPad = Math.ceil(g.cout / 4) * 4;
  return 4 * (g.n * g.h * g.w * g.cin + act * (opts.residual ? 2 : 1) + cPad) + g.kh * g.kw * cPad * (opts.weightBytes ?? 4);
}

/**
 * The block and workgroup for a conv of this geometry. TODO sweep
 */
export function depthwiseTile(g: ConvGeometry): DepthwiseTile {
  return { tx: 8, ty: 4, wg: 16 };
}

/**
 * Depthwise convolution of an NHWC input with weights from `packDepthwise`: the same
 * options and result as `conv2dNaive` with groups = channels (any kernel size, stride
 * and padding, per side too; the fused ReLU / ReLU6, residual and input ReLU).
 * `tile` overrides the built-in choice (`depthwiseTile`).
 */
export function depthwiseConv2d(
  rt: Runtime,
  x: Tensor,
  packed: PackedDepthwise,
  opts: Omit<Conv2dOptions, 'groups' | 'bias'> = {},
  tile?: DepthwiseTile,
): Tensor {
  const [c] = packed.shape;
  const g = convGeometry(x, packed.shape, { ...opts, groups: c });
  const t = tile ?? depthwiseTile(g);
  const vec4 = c % 4 === 0;
  // Channel units: vec4s, or single channels where C is not a multiple of 4.
  const cv = vec4 ? c / 4 : c;
  const bx = Math.ceil(g.ow / t.tx);
  const by = Math.ceil(g.oh / t.ty);
  const blocks = g.n * by * bx;
  const groups = Math.ceil(blocks / t.wg);
  const groupsX = Math.min(groups, rt.limits.maxComputeWorkgroupsPerDimension);
  if (cv > rt.limits.maxComputeWorkgroupsPerDimension) {
    throw new Error(`depthwise: ${c} channels need ${cv} workgroups along y, over maxComputeWorkgroupsPerDimension`);
  }
  const key: DwKey = {
    ...t, kh: g.kh, kw: g.kw, sh: g.sh, sw: g.sw, vec4,
    f16Weights: packed.weight.dtype === 'f16',
    residual: !!opts.residual,
  };
  // x, y and the residual hold cv units per pixel; a packed tap holds wrow: the same
  // for vec4s, the padded channel count for the scalar shader.
  const params = new Params()
    .u32(g.h, g.w, g.oh, g.ow, cv, vec4 ? cv : packed.cPad, g.ph, g.pw, bx, by, blocks, groupsX)
    .f32(...reluBounds(opts))
    .build();
  const y = rt.empty([g.n, g.oh, g.ow, g.cout]);
  rt.dispatch({
    label: `depthwise ${g.kh}x${g.kw}/${g.sh} ${g.cout} @${g.oh}x${g.ow}${key.f16Weights ? ' w:f16' : ''}${epilogueText(opts)}`,
    pipeline: rt.pipeline(shaderFor(key)),
    buffers: [x, packed.weight, packed.bias, ...(opts.residual ? [opts.residual] : []), y],
    uniforms: params,
    workgroups: [groupsX, cv, Math.ceil(groups / groupsX)],
    macs: convMacs(g),
  });
  return y;
}
