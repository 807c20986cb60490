// Depthwise convolution (groups = channels = output channels), channels-last.
//
// Each output value reads k*k inputs and k*k weights for k*k FMAs: next to a dense
// conv there is almost no arithmetic per byte, so the kernel is laid out to load
// little. A thread owns one channel unit (4 channels as one vec4) and a block of
// tx x ty output pixels: it streams the ((tx-1)*s + kw) x ((ty-1)*s + kh) input window
// of the block one row at a time, each input vec4 loaded once for every output of the
// block that uses it. Weights are re-laid out at load time as [kH][kW][C] (C padded to
// 4), so that 4 channels of one tap are one vec4 load.
//
// On large maps all threads of a workgroup share the channel unit (workgroup id x) and
// cover neighbouring blocks. Then the weights and the bias have one address per
// workgroup: lavapipe loads them once per SIMD group, where per-lane addresses cost one
// gather per vec4 component (the kernel ran 2x slower with the channel varying across
// lanes). On a GPU, lanes then read 16 bytes each at the pixel stride rather than one
// contiguous run; neighbouring workgroups (the other channel units of the same pixels,
// dispatched next) find those lines in cache. On small maps, where a few big blocks
// cover the map, neighbouring threads take neighbouring channel units instead (each
// gathers its weights, amortized over its block). `depthwiseTile` chooses.
// Channel counts that are not a multiple of 4 take a scalar variant of the shader.
import type { Runtime } from '../nn/runtime.js';
import type { DType, Tensor } from '../nn/tensor.js';
import { memo, Params } from './common.js';
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
export function packDepthwiseWeight(weight: Float32Array, shape: readonly number[], scale?: Float64Array): { data: Float32Array; cPad: number } {
  const [c, one, kh, kw] = shape as [number, number, number, number];
  if (shape.length !== 4 || one !== 1) throw new Error(`depthwise: weight shape [${shape.join(', ')}] is not [C, 1, kH, kW]`);
  if (weight.length !== c * kh * kw) throw new Error(`depthwise: ${weight.length} weights do not fill [${shape.join(', ')}]`);
  if (scale && scale.length !== c) throw new Error(`depthwise: ${scale.length} channel scales for ${c} channels`);
  const cPad = Math.ceil(c / 4) * 4;
  const data = new Float32Array(kh * kw * cPad);
  for (let ch = 0; ch < c; ch++) {
    const s = scale ? scale[ch]! : 1;
    for (let t = 0; t < kh * kw; t++) data[t * cPad + ch] = weight[ch * kh * kw + t]! * s;
  }
  return { data, cPad };
}

/**
 * Packs and uploads a depthwise conv's weights (times `scale` per channel: a folded
 * BatchNorm). With `weightDType` 'f16' they are stored in half precision (half the
 * weight traffic); the arithmetic stays f32, as does the bias.
 */
export function packDepthwise(
  rt: Runtime,
  weight: Float32Array,
  shape: readonly [number, number, number, number],
  bias?: Float32Array,
  weightDType: DType = 'f32',
  scale?: Float64Array,
): PackedDepthwise {
  const { data, cPad } = packDepthwiseWeight(weight, shape, scale);
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
 * one channel unit; a workgroup is `wc` channel units x `wx` x `wy` blocks. With `wc` 1
 * (large maps) all its threads share the channel unit, and so the weights; with `wc`
 * over 1 and one block (small maps: a few big blocks cover the map) neighbouring
 * threads take neighbouring channel units.
 */
export interface DepthwiseTile {
  tx: number;
  ty: number;
  wc: number;
  wx: number;
  wy: number;
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
  bx: u32, by: u32, gy: u32, rows: u32,
  xlo: f32, rlo: f32, ylo: f32, yhi: f32,
}`;

/** Input rows (columns) under a block of `n` output rows (columns) at `stride`, `k` taps: the shader's loop bound p.rows too. */
function windowSpan(n: number, stride: number, k: number): number {
  return (n - 1) * stride + k;
}

/** The taps' weights w0.. and the bias bv of channel unit `c`. */
function emitWeights(emit: (line: string) => void, k: DwKey, W: (i: string) => string): void {
  for (let t = 0; t < k.kh * k.kw; t++) emit(`  let w${t} = ${W(`${t}u * p.wrow + c`)};`);
  emit(`  let bv = bias[c];`);
}

function dwShader(k: DwKey): string {
  const lines: string[] = [];
  const emit = (s: string) => lines.push(s);
  const cols = windowSpan(k.tx, k.sw, k.kw);
  const rows = windowSpan(k.ty, k.sh, k.kh);
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
  emit(`@compute @workgroup_size(${k.wc}, ${k.wx}, ${k.wy})`);
  emit(`fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {`);
  // Workgroups: x channel units, y columns of blocks, z images x rows of blocks. No
  // division depends on the lane: lavapipe runs a per-lane u32 division as scalar code,
  // which cost as much as the loads when the block came from a flat index.
  emit(`  let bxi = wid.y * ${k.wx}u + lid.y;`);
  emit(`  let byi = (wid.z % p.gy) * ${k.wy}u + lid.z;`);
  emit(`  let img = wid.z / p.gy;`);
  if (k.wc === 1) {
    // The channel unit from the workgroup alone: the weight and bias loads have one
    // address for the whole workgroup (see the header).
    emit(`  let c = wid.x;`);
    emitWeights(emit, k, W);
    emit(`  if (bxi >= p.bx || byi >= p.by) { return; }`);
  } else {
    emit(`  let c = wid.x * ${k.wc}u + lid.x;`);
    emit(`  if (c >= p.cv || bxi >= p.bx || byi >= p.by) { return; }`);
    emitWeights(emit, k, W);
  }
  emit(`  let ox0 = bxi * ${k.tx}u;`);
  emit(`  let oy0 = byi * ${k.ty}u;`);
  emit(`  let iy0 = i32(oy0 * ${k.sh}u) - i32(p.pt);`);
  emit(`  let ix0 = i32(ox0 * ${k.sw}u) - i32(p.pl);`);
  // Input columns: their offsets and whether each is inside the image, once for all rows.
  for (let j = 0; j < cols; j++) {
    emit(`  let cx${j} = ix0 + ${j};`);
    emit(`  let cin${j} = cx${j} >= 0 && cx${j} < i32(p.w);`);
    emit(`  let co${j} = u32(clamp(cx${j}, 0, i32(p.w) - 1));`);
  }
  for (let ty = 0; ty < k.ty; ty++) for (let tx = 0; tx < k.tx; tx++) emit(`  var ${acc(ty, tx)} = bv;`);
  // One input row per iteration: its columns are loaded once and feed every output row
  // and column of the block that uses them; then they are dead. The loop runs p.rows
  // (the window's rows) times, a bound the compiler cannot see, so that it stays a
  // loop: lavapipe lowers each vec4 load to a bounds-checked access per lane, and the
  // window unrolled (36-49 loads) took 3.5-6.5 s to compile per shader. Row r meets
  // output row ty at tap row r - ty * sh, whose weights a select picks (zero outside).
  emit(`  for (var r = 0u; r < p.rows; r++) {`);
  emit(`    let iy = iy0 + i32(r);`);
  emit(`    let rin = iy >= 0 && iy < i32(p.h);`);
  emit(`    let row = (img * p.h + u32(clamp(iy, 0, i32(p.h) - 1))) * p.w;`);
  for (let j = 0; j < cols; j++) {
    emit(`    let x${j} = select(${zero}, max(x[(row + co${j}) * p.cv + c], ${F}(p.xlo)), rin && cin${j});`);
  }
  for (let ty = 0; ty < k.ty; ty++) {
    emit(`    {`);
    emit(`      let ky = i32(r) - ${ty * k.sh};`);
    for (let kx = 0; kx < k.kw; kx++) {
      let wk = zero;
      for (let ky = 0; ky < k.kh; ky++) wk = `select(${wk}, w${ky * k.kw + kx}, ky == ${ky})`;
      emit(`      let wk${kx} = ${wk};`);
      for (let tx = 0; tx < k.tx; tx++) emit(`      ${acc(ty, tx)} = fma(x${tx * k.sw + kx}, wk${kx}, ${acc(ty, tx)});`);
    }
    emit(`    }`);
  }
  emit(`  }`);
  // The stores, a loop over the block's rows for the same reason (oy0 + t < p.oh, so t < p.oh).
  emit(`  for (var t = 0u; t < min(${k.ty}u, p.oh); t++) {`);
  emit(`    if (oy0 + t >= p.oh) { break; }`);
  for (let tx = 0; tx < k.tx; tx++) {
    let a = acc(0, tx);
    for (let ty = 1; ty < k.ty; ty++) a = `select(${a}, ${acc(ty, tx)}, t == ${ty}u)`;
    emit(`    if (ox0 + ${tx}u < p.ow) {`);
    emit(`      let o = ((img * p.oh + oy0 + t) * p.ow + ox0 + ${tx}u) * p.cv + c;`);
    emit(`      var v = ${a};`);
    if (k.residual) emit(`      v += max(residual[o], ${F}(p.rlo));`);
    emit(`      y[o] = min(max(v, ${F}(p.ylo)), ${F}(p.yhi));`);
    emit(`    }`);
  }
  emit(`  }`);
  emit(`}`);
  return lines.join('\n');
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

/** What the built-in choice looks at. */
type DwShape = Pick<ConvGeometry, 'n' | 'oh' | 'ow' | 'cout' | 'kh' | 'kw' | 'sh' | 'sw'>;

/** Output pixels per thread the built-in choice considers (narrow first: it wins ties). */
export const DEPTHWISE_BLOCKS: readonly (readonly [number, number])[] = [
  [1, 1], [1, 2], [2, 1], [2, 2], [2, 4], [4, 2], [4, 4],
];

/**
 * The straight-line code of one thread: the window's loads (each bounds-checked) plus
 * the FMAs of its block, both unrolled.
 */
export function depthwiseUnrolled(g: Pick<ConvGeometry, 'kh' | 'kw' | 'sh' | 'sw'>, tx: number, ty: number): number {
  return windowSpan(tx, g.sw, g.kw) * windowSpan(ty, g.sh, g.kh) + tx * ty * g.kh * g.kw;
}

/**
 * The most straight-line code the built-in choice takes (`depthwiseUnrolled`: the
 * window's loads and the block's FMAs). Bigger blocks load each input for more outputs
 * but make longer shaders, which lavapipe compiles in time that grows faster than their
 * size; blocks past this ran the depthwise convs of MiDaS_small at 256 about 2 ms
 * faster in all, less than their compile costs a first run.
 */
export const MAX_UNROLLED = 200;
/** Threads per workgroup the built-in choice aims for; no fewer than SIMD lanes count. */
const WG = 16;
/**
 * lavapipe's SIMD width, for the cost model only. The kernel uses no subgroup
 * operations: each thread reads its own inputs, so its results do not depend on the
 * subgroup size (4 on SwiftShader, 32 or 64 on GPUs, where a 16-thread workgroup
 * leaves the rest of a subgroup idle but computes the same), and its workgroups of at
 * most 16 threads are within every adapter's maxComputeInvocationsPerWorkgroup.
 */
const SIMD = 8;

/**
 * The workgroup for blocks of tx x ty on this output, one channel unit per workgroup:
 * up to 16 blocks, as many along x as the row of blocks has (powers of two), the rest
 * along y.
 */
export function depthwiseWorkgroup(g: Pick<ConvGeometry, 'oh' | 'ow'>, tx: number, ty: number): DepthwiseTile {
  const wx = Math.min(WG, pow2AtLeast(Math.ceil(g.ow / tx)));
  const wy = Math.min(WG / wx, pow2AtLeast(Math.ceil(g.oh / ty)));
  return { tx, ty, wc: 1, wx, wy };
}

/**
 * Relative cost of running a conv with this tile, from lavapipe's costs per lane
 * (measured with single-pattern kernels on its 8-lane SIMD, 2 cores): a vec4 load at a
 * per-lane address ~2.6 ns (one gather per component), a vec4 store ~0.8 ns, a vec4
 * FMA ~0.1 ns. Weight loads cost nothing with one channel unit per workgroup (one
 * address) and a gather each across channel units. Lanes that a workgroup leaves idle
 * cost as much as busy ones (masked SIMD), and a workgroup fills at least one SIMD group.
 * The model picks within ~10% of the fastest tile measured at each of MiDaS_small's
 * shapes; on 8x8 maps 16 channel units of one 8x8 block took 0.32 ms for k5/1 over 1392
 * channels, one unit of 2x4 blocks per workgroup 0.62 ms.
 */
export function depthwiseCost(g: DwShape, t: DepthwiseTile): number {
  const cols = windowSpan(t.tx, g.sw, g.kw);
  const rows = windowSpan(t.ty, g.sh, g.kh);
  const weights = t.wc > 1 ? 2.6 * g.kh * g.kw : 0;
  const perThread = 2.6 * cols * rows + weights + (0.8 + 0.1 * g.kh * g.kw) * t.tx * t.ty;
  const units = Math.ceil(g.cout / 4);
  const workgroups = Math.ceil(units / t.wc) * Math.ceil(Math.ceil(g.ow / t.tx) / t.wx) * g.n * Math.ceil(Math.ceil(g.oh / t.ty) / t.wy);
  return workgroups * Math.max(SIMD, t.wc * t.wx * t.wy) * perThread;
}

/**
 * The built-in block and workgroup for a conv of this geometry: the cheapest by
 * `depthwiseCost` whose code is small enough to compile quickly (`MAX_UNROLLED`). Bigger
 * blocks load each input for more outputs; on small maps they leave lanes idle.
 */
export function depthwiseTile(g: DwShape): DepthwiseTile {
  let best = depthwiseWorkgroup(g, 1, 1);
  let bestCost = depthwiseCost(g, best);
  for (const [tx, ty] of DEPTHWISE_BLOCKS) {
    if (depthwiseUnrolled(g, tx, ty) > MAX_UNROLLED) continue;
    for (const t of [depthwiseWorkgroup(g, tx, ty), { tx, ty, wc: WG, wx: 1, wy: 1 }]) {
      const cost = depthwiseCost(g, t);
      if (cost < bestCost) [best, bestCost] = [t, cost];
    }
  }
  return best;
}

function pow2AtLeast(n: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, n)));
}

/**
 * Depthwise convolution of an NHWC input with weights from `packDepthwise`: the same
 * options and result as `conv2dNaive` with groups = channels (any kernel size, stride
 * and padding, per side too; the fused ReLU / ReLU6, residual and input ReLU).
 * `tile` overrides the built-in choice (`depthwiseTile` of the square of the longer side).
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
  // Chosen for the square of the longer side: the hub transform scales every photo to
  // the model's size on its longer side, so each conv sees one longer side whatever
  // the photo's shape, and so runs one shader (one compile, and the one the warm-up
  // planned on a square), where a choice for each shape made a shader for each.
  const side = Math.max(g.oh, g.ow);
  const t = tile ?? depthwiseTile({ ...g, oh: side, ow: side });
  const vec4 = c % 4 === 0;
  // Channel units: vec4s, or single channels where C is not a multiple of 4.
  const cv = vec4 ? c / 4 : c;
  const bx = Math.ceil(g.ow / t.tx);
  const by = Math.ceil(g.oh / t.ty);
  // Workgroups along z: images x rows of blocks.
  const gy = Math.ceil(by / t.wy);
  const dims = [Math.ceil(cv / t.wc), Math.ceil(bx / t.wx), g.n * gy] as const;
  const max = rt.limits.maxComputeWorkgroupsPerDimension;
  if (dims.some((d) => d > max)) {
    throw new Error(`depthwise: ${dims.join('x')} workgroups for [${x.shape.join(', ')}] exceed maxComputeWorkgroupsPerDimension ${max}`);
  }
  const key: DwKey = {
    ...t, kh: g.kh, kw: g.kw, sh: g.sh, sw: g.sw, vec4,
    f16Weights: packed.weight.dtype === 'f16',
    residual: !!opts.residual,
  };
  // x, y and the residual hold cv units per pixel; a packed tap holds wrow: the same
  // for vec4s, the padded channel count for the scalar shader.
  const params = new Params()
    .u32(g.h, g.w, g.oh, g.ow, cv, vec4 ? cv : packed.cPad, g.ph, g.pw, bx, by, gy, windowSpan(t.ty, g.sh, g.kh))
    .f32(...reluBounds(opts))
    .build();
  const y = rt.empty([g.n, g.oh, g.ow, g.cout]);
  rt.dispatch({
    label: `depthwise ${g.kh}x${g.kw}/${g.sh} ${g.cout} @${g.oh}x${g.ow}${key.f16Weights ? ' w:f16' : ''}${epilogueText(opts)}`,
    pipeline: rt.pipeline(memo(dwShader, key)),
    buffers: [x, packed.weight, packed.bias, ...(opts.residual ? [opts.residual] : []), y],
    uniforms: params,
    workgroups: dims,
    macs: convMacs(g),
  });
  return y;
}
