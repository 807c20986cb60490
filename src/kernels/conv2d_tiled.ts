// The fast convolution: implicit GEMM over channels-last activations.
//
//   output[m, co] = sum_k  input_patch[m, k] * weight[k, co]
//   m = (n, oy, ox) pixel,  k = (ky, kx, ci) inside one group,  co = output channel
//
// No im2col buffer is built: each thread walks the window itself. A thread owns TM
// output pixels (spaced by the workgroup width, so neighbouring threads touch
// neighbouring pixels) and 4*NV output channels held in vec4 accumulators. All threads
// of a workgroup share the same output channels, so their weight loads are the same
// address: one load feeds TM*4 FMAs per thread. Weights are re-laid out once, at load
// time, as [kH][kW][Cin/groups][Cout] (Cout padded to the tile) so that 4 output
// channels are one vec4 load.
import type { Runtime } from '../nn/runtime.js';
import type { DType, Tensor } from '../nn/tensor.js';
import { memo, Params } from './common.js';
import { CONV_PARAMS_WGSL, convGeometry, type ConvGeometry, convMacs, epilogueBindings, epilogueText, type Conv2dOptions } from './conv2d.js';

export interface TileConfig {
  /** Output pixels per thread. */
  tm: number;
  /** vec4s of output channels per thread (4*nv channels). */
  nv: number;
  /**
   * Where subgroups do not share weight loads: stage the weights in workgroup memory,
   * this many input channels (a multiple of 4) at a time, so that each is loaded once
   * per workgroup instead of once per thread. The usual design on GPUs; on lavapipe it
   * is slower (the 1x1 1024->1024 conv at 24x24 without subgroups: 118-141 ms with
   * 32 or 64 channels staged and tiles of 3-4 pixels x 16-32 channels, against 90 ms
   * for 4 x 8 read straight from storage): workgroup reads there are per-lane loads
   * like storage reads, and the barriers cost on top. So it is not a default; the tuner
   * (`tuneConv`) tries it on adapters without subgroups. Absent or 0: none.
   */
  wgK?: number;
  /**
   * true: run this conv on the rows kernel where it can (`rowsSupported`: 3x3 stride-1
   * convs whose width is a multiple of the subgroup width, with subgroups); otherwise
   * the GEMM kernel runs it. Which is faster depends on the CPU under lavapipe: on
   * some the rows kernel is the faster on 3x3 256->256 at 96x96; on the CI machine
   * kind, run alternately with the GEMM kernel on every 3x3 shape MiDaS has
   * at 384, it takes 1.5-1.8x as long as the GEMM with 4 x 32 tiles (346 against 209
   * ms at 96x96, 617 against 373 at 192x192, 91.5 against 48.7 at 24x24). So the
   * built-in choice is the GEMM, and the tuner tries both on the user's machine.
   */
  rows?: boolean;
}

export const DEFAULT_TILE: TileConfig = { tm: 4, nv: 2 };
/**
 * With weights shared across a subgroup, a weight costs each thread a fraction of a
 * load, so more output channels per thread pay off. Swept on lavapipe over the MiDaS
 * shapes the GEMM path runs at 384 (tm 1-6 x nv 2-16): 32 channels per thread was
 * best or close to it on nearly all (the 1x1 1024->1024 conv at 24x24: 31-36 ms,
 * against 39-51 for 16 channels and ~60 for 2 x 16). With
 * 16-thread workgroups, 4 pixels per thread then beat 3 on every shape but one, run
 * alternately (3x3 256->256 at 96x96: 209 against 260 ms; 1x1 512->512 at 48x48: 22.1
 * against 24.1; 1x1 256->256 at 96x96: 31.3 against 29.6), and 5 lost on most.
 * Convs whose channels (per group) are not a multiple of 32 take the widest of 16 and
 * 8 that divides them, or 8 with padding. Without subgroups every thread loads every
 * weight itself and 4 x 8 is best by far.
 */
const WIDE_TILES: TileConfig[] = [{ tm: 4, nv: 8 }, { tm: 4, nv: 4 }, { tm: 4, nv: 2 }];

/** The tile for a conv on this runtime: the tuner's choice (`useTiles`) if it has one, else a wide one where subgroups share weights. */
export function chooseTile(rt: Runtime, shape: readonly number[], groups: number): TileConfig {
  const t = tuned.get(rt)?.get(tileKey(shape, groups));
  return t && tiledSupports(shape, groups, t) ? t : builtinTile(rt, shape, groups);
}

/**
 * The tiles the tuner times for a conv on this runtime. With subgroups: the wide
 * tiles (4 pixels x 32, 16, 8 channels) and 3 x 32. Without: 4 x 8 straight from
 * storage, and 4 x 8, 4 x 16 and 3 x 32 with weights staged in workgroup memory 32
 * input channels at a time (where the input is read as vec4s, which staging needs).
 * With `rowsCan` (the rows kernel can run the conv), the rows kernel as well.
 */
export function tileCandidates(rt: Runtime, shape: readonly number[], groups: number, rowsCan = false): TileConfig[] {
  const vec4 = shape[1]! % 4 === 0;
  const gemm = sharesWeights(rt)
    ? [...WIDE_TILES, { tm: 3, nv: 8 }]
    : [DEFAULT_TILE, ...(vec4 ? [{ tm: 4, nv: 2, wgK: 32 }, { tm: 4, nv: 4, wgK: 32 }, { tm: 3, nv: 8, wgK: 32 }] : [])];
  const fit = gemm.filter((t) => tiledSupports(shape, groups, t));
  // Where the rows kernel can run the conv, it is a candidate too.
  return rowsCan ? [...fit, { ...builtinTile(rt, shape, groups), rows: true }] : fit;
}

/** The tile chosen without a tuner: a wide one where subgroups share weights, 4 x 8 otherwise. */
export function builtinTile(rt: Runtime, shape: readonly number[], groups: number): TileConfig {
  if (!sharesWeights(rt)) return DEFAULT_TILE;
  const coutG = shape[0]! / groups;
  const tiles = shape[1]! % 4 === 0 ? WIDE_TILES : SCALAR_INPUT_TILES;
  const narrowest = tiles[tiles.length - 1]!;
  return tiles.find((t) => coutG % (4 * t.nv) === 0) ?? (tiledSupports(shape, groups, narrowest) ? narrowest : DEFAULT_TILE);
}

/**
 * Tiles for convs whose input channels are not a multiple of 4 (the stems: 3), read
 * one channel a step. Each step shares one row of weights and carries the loop
 * overhead of a whole window position, so fewer pixels per thread pay. The 7x7/2
 * 3->64 stem at 384x384 on lavapipe, alternated: 51-55 ms with 2 x 32, 53-59 with
 * 3 x 32, 56-62 with 4 x 32, 67-70 with 3 x 16, 71-79 with 4 x 8 (94 ms with 4 x 8
 * and every lane loading every weight); MiDaS small's 3x3/2 3->32 stem at 256x256 in
 * 2.8-3.4 ms (5.0 before). 2 x 32 also compiles in half the time of 3 x 32 (0.75
 * against 1.55 s with Mesa's cache off).
 */
const SCALAR_INPUT_TILES: TileConfig[] = [{ tm: 2, nv: 8 }, { tm: 2, nv: 4 }, { tm: 2, nv: 2 }];
/** Threads per workgroup of the GEMM kernel where each thread loads its own weights (see `workgroupWidth`). */
const WGX = 64;

/** Tiles chosen by the tuner, per runtime, by `tileKey`. */
const tuned = new WeakMap<Runtime, Map<string, TileConfig>>();

/** What a tile choice is keyed by: the PyTorch weight shape and groups, e.g. `1024x32x3x3/g32`. */
export function tileKey(shape: readonly number[], groups: number): string {
  return `${shape.join('x')}/g${groups}`;
}

/**
 * Makes `chooseTile` on this runtime take these tiles (by `tileKey`; others keep the
 * built-in choice). Applies to convs packed afterwards (the tile fixes the packing).
 */
export function useTiles(rt: Runtime, tiles: Iterable<readonly [string, TileConfig]>): void {
  let map = tuned.get(rt);
  if (!map) tuned.set(rt, (map = new Map()));
  for (const [key, tile] of tiles) map.set(key, { ...tile });
}

/** The tiles `useTiles` gave this runtime. */
export function tilesInUse(rt: Runtime): ReadonlyMap<string, TileConfig> {
  return tuned.get(rt) ?? new Map();
}

/** A convolution's weights (and bias) re-laid out for `conv2dTiled`. */
export interface PackedConv {
  /** `[kH*kW*Cin/groups, CoutPad]` */
  weight: Tensor;
  /** `[CoutPad]`, zero-padded; zeros for a conv without bias (one shader serves both). */
  bias: Tensor;
  /** PyTorch's `[Cout, Cin/groups, kH, kW]`. */
  shape: readonly [number, number, number, number];
  groups: number;
  coutPad: number;
  tile: TileConfig;
  /**
   * Multiply in f16 (activations rounded to f16, times the f16 weights), accumulate in
   * f32. Only with f16 weights; the scalar-input path (the stem) stays f32.
   */
  f16Math?: boolean;
}

/** Whether the tiled kernel can run this conv (otherwise use `conv2dNaive`). */
export function tiledSupports(shape: readonly number[], groups: number, tile: TileConfig = DEFAULT_TILE): boolean {
  const cout = shape[0]!;
  const tn = 4 * tile.nv;
  return groups === 1 || (cout / groups) % tn === 0;
}

/** Output channels rounded up to the tile's 4*nv: the packed weights' row length. */
export function paddedCout(cout: number, tile: TileConfig): number {
  const tn = 4 * tile.nv;
  return Math.ceil(cout / tn) * tn;
}

/**
 * Re-lays out a PyTorch conv weight `[Cout, Cin/g, kH, kW]` as `[kH][kW][Cin/g][CoutPad]`,
 * each output channel times `scale[co]` if given (a folded BatchNorm: see
 * `batchNormScale`). Into `out` (at least the packed length) if given, else a new array.
 */
export function packConvWeight(
  weight: Float32Array,
  shape: readonly number[],
  groups: number,
  tile: TileConfig = DEFAULT_TILE,
  scale?: Float64Array,
  out?: Float32Array,
): { data: Float32Array; coutPad: number } {
  const [cout, cinG, kh, kw] = shape as [number, number, number, number];
  if (!tiledSupports(shape, groups, tile)) {
    throw new Error(`conv2d_tiled: ${cout / groups} output channels per group is not a multiple of ${4 * tile.nv}`);
  }
  if (tile.wgK !== undefined && !(Number.isInteger(tile.wgK) && tile.wgK >= 0 && tile.wgK % 4 === 0)) {
    throw new Error(`conv2d_tiled: wgK ${tile.wgK} is not a multiple of 4`);
  }
  if (scale && scale.length !== cout) throw new Error(`conv2d_tiled: ${scale.length} channel scales for ${cout} channels`);
  const coutPad = paddedCout(cout, tile);
  const n = kh * kw * cinG * coutPad;
  const data = out ? out.subarray(0, n) : new Float32Array(n);
  if (out && coutPad !== cout) data.fill(0);
  const k = kh * kw;
  const taps = cinG * k;
  // Blocks of PACK_BLOCK output channels: each destination row gets a short run of
  // consecutive writes instead of one scattered write per element (2x faster on 1x1
  // convs with thousands of channels, where every write would miss the cache).
  for (let co0 = 0; co0 < cout; co0 += PACK_BLOCK) {
    const co1 = Math.min(cout, co0 + PACK_BLOCK);
    for (let ci = 0; ci < cinG; ci++) {
      for (let t = 0; t < k; t++) {
        const row = (t * cinG + ci) * coutPad;
        let src = co0 * taps + ci * k + t;
        if (scale) for (let co = co0; co < co1; co++, src += taps) data[row + co] = weight[src]! * scale[co]!;
        else for (let co = co0; co < co1; co++, src += taps) data[row + co] = weight[src]!;
      }
    }
  }
  return { data, coutPad };
}

const PACK_BLOCK = 32;

/**
 * Packing space reused from conv to conv: `rt.upload` copies what it is given before it
 * returns, and a fresh array the size of every conv's weights would cost the page
 * faults of the whole model again (about 3 s per GB on the CI machine kind).
 */
let scratch = new Float32Array(0);
function packScratch(n: number): Float32Array {
  if (scratch.length < n) scratch = new Float32Array(n);
  return scratch;
}

/**
 * Packs and uploads a conv's weights (times `scale` per output channel: a folded
 * BatchNorm). With `weightDType` 'f16' the weights are stored in half precision (half
 * the memory and weight traffic); the arithmetic stays f32 unless `f16Math` (products
 * in f16, sums in f32); the bias stays f32. `weight` is either the PyTorch-layout
 * weight or, as `{ packed }`, what `packConvWeight(weight, shape, groups, tile, scale)`
 * gave for it (packed elsewhere: see src/nn/packing.ts), or its `toFloat16Bits` for f16
 * storage.
 */
export function packConv(
  rt: Runtime,
  weight: Float32Array | { packed: Float32Array | Uint16Array },
  shape: readonly [number, number, number, number],
  groups: number,
  bias?: Float32Array,
  tile: TileConfig = DEFAULT_TILE,
  weightDType: DType = 'f32',
  f16Math = false,
  scale?: Float64Array,
): PackedConv {
  if (f16Math && weightDType !== 'f16') throw new Error('packConv: f16 arithmetic needs f16 weights');
  const [cout, cinG, kh, kw] = shape;
  const coutPad = paddedCout(cout, tile);
  const n = kh * kw * cinG * coutPad;
  if ('packed' in weight && weight.packed.length !== n) {
    throw new Error(`packConv: ${weight.packed.length} packed values for a [${shape.join(', ')}] conv with ${coutPad} padded output channels (${n})`);
  }
  const data = 'packed' in weight ? weight.packed : packConvWeight(weight, shape, groups, tile, scale, packScratch(n)).data;
  // A conv without bias gets zeros: one shader serves both (see EpilogueKey).
  const b = new Float32Array(coutPad);
  if (bias) b.set(bias);
  return { weight: rt.upload(data, [kh * kw * cinG, coutPad], weightDType), bias: rt.upload(b, [coutPad]), shape, groups, coutPad, tile, f16Math };
}

export function disposePacked(p: PackedConv): void {
  p.weight.dispose();
  p.bias.dispose();
}

/**
 * What both fast kernels' shaders depend on besides their tiling: storage and the
 * fused residual. The fused activations are not in it: the shaders always take
 * max(v, lo) (and the result min(max(v, lo), hi)) with lo = 0 or -inf and hi = 6 or
 * +inf from the params (`reluBounds`), so a conv with a ReLU, one with a ReLU6 and one
 * with neither share one pipeline; nor is the bias (packConv gives every conv one, zeros where
 * it has none). lavapipe compiles a conv2d_rows shader in ~11 s (once; Mesa caches it
 * on disk), so fewer variants is a shorter first run.
 */
interface EpilogueKey {
  f16Weights: boolean;
  /** Products in f16, accumulation in f32 (f16 weights only). */
  f16Math: boolean;
  residual: boolean;
  /**
   * The output has a multiple of 4 channels (every MiDaS conv but the last): the
   * result (and residual) are read and written as vec4s, one guarded store per 4
   * channels instead of four.
   */
  vecOut: boolean;
}

/**
 * The params block's activation bounds, in order xlo (input), rlo (residual), ylo and
 * yhi (result): lower bounds 0 for a fused ReLU or ReLU6, else -inf; yhi 6 for a
 * fused ReLU6, else +inf.
 */
const RELU_PARAMS = 'xlo: f32, rlo: f32, ylo: f32, yhi: f32,';
export function reluBounds(opts: Pick<Conv2dOptions, 'reluInput' | 'reluResidual' | 'relu' | 'relu6'>): number[] {
  const lo = (on?: boolean) => (on ? 0 : -Infinity);
  return [lo(opts.reluInput), lo(opts.reluResidual), lo(opts.relu || opts.relu6), opts.relu6 ? 6 : Infinity];
}

/** The params block both kernels bind: ConvParams, then `extra` (the kernel's own u32s), then the ReLU bounds (see `emitBindings`). */
function convParams(g: ConvGeometry, extra: number[], opts: Omit<Conv2dOptions, 'groups' | 'bias'>): ArrayBuffer {
  return new Params()
    .u32(g.n, g.h, g.w, g.cin, g.oh, g.ow, g.cout, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.cinG, g.coutG, ...extra)
    .f32(...reluBounds(opts))
    .build();
}

/** The dispatch label's storage note: ' f16' (f16 math), ' w:f16' (f16 weights) or nothing. */
function storageText(k: EpilogueKey): string {
  return k.f16Math ? ' f16' : k.f16Weights ? ' w:f16' : '';
}

/**
 * One accumulation in either arithmetic: acc += x * w as an f32 fma, or, with f16
 * math, the f16 product of `x16` (x already rounded to f16) and the f16 weight `w`,
 * added in f32.
 */
function accumulate(k: EpilogueKey, acc: string, x32: string, x16: string, w: string): string {
  return k.f16Math ? `${acc} += vec4<f32>(${x16} * ${w});` : `${acc} = fma(vec4<f32>(${x32}), ${w}, ${acc});`;
}

/** Whether the tiled kernel shares weight loads across the subgroup (`subgroupBroadcast`) on this runtime. */
function sharesWeights(rt: Runtime): boolean {
  return subgroupWidth(rt) > 0;
}

/** Widths set by `useSubgroupWidth`, per runtime. */
const forcedWidths = new WeakMap<Runtime, number>();

/**
 * The subgroup width both fast kernels plan with on this runtime: the adapter's
 * smallest subgroup (`subgroupMinSize`: 4 on SwiftShader, 8 on lavapipe, 32 or 64 on
 * most GPUs, up to 128), or the narrower one `useSubgroupWidth` set; 0 where they use
 * no subgroup operations (no `subgroups` feature, or a width WebGPU does not allow).
 *
 * The kernels are written for "at least this many lanes", never for an exact width,
 * because a device may run any subgroup size from `subgroupMinSize` to
 * `subgroupMaxSize` (Intel: 8 to 32; AMD: 32 or 64), chosen per pipeline:
 * - GEMM: every lane of a workgroup needs the same weights, lane l loads the slices
 *   l % width, l % width + width, ..., and `subgroupBroadcast` reads lanes below
 *   `width`. A real subgroup of 32 or 64 lanes holds lanes 0..width-1 (its lanes past
 *   `width` load duplicates); one wider than the workgroup (16 threads for width 4 or
 *   8: lanes 16.. inactive) still does, since the workgroup is at least 2 x width.
 * - rows: a workgroup is `width` threads, so it lies in one subgroup whatever size the
 *   device picks (all are >= width); in a wider subgroup lanes width.. are inactive and
 *   no shuffle or broadcast reads them (sources are (lane + 1 or 2) mod width and
 *   slot mod width). This assumes, as every Vulkan, D3D12 and Metal driver does, that
 *   a workgroup no wider than a subgroup sits in lanes 0..width-1 in invocation order.
 * Tested on SwiftShader (4 lanes) and lavapipe (8 lanes), and at width 4 on lavapipe
 * (kernels.test.ts), which is the 32/64-lane case in small: a subgroup wider than the
 * width planned with, and a rows workgroup narrower than its subgroup.
 */
export function subgroupWidth(rt: Runtime): number {
  const w = forcedWidths.get(rt) ?? rt.subgroupMinSize;
  return w >= 4 && w <= 128 && w <= maxThreads(rt) ? w : 0;
}

/** The most threads a one-dimensional workgroup may have on this runtime. */
function maxThreads(rt: Runtime): number {
  return Math.min(rt.limits.maxComputeInvocationsPerWorkgroup, rt.limits.maxComputeWorkgroupSizeX);
}

/**
 * Makes this runtime's fast kernels plan with subgroups of `width` lanes (a power of
 * two from 4 to the adapter's `subgroupMinSize`), or with the adapter's own again
 * (undefined). Their code must hold on any subgroup at least that wide (see
 * `subgroupWidth`), so on one adapter this runs what a device whose narrowest
 * subgroup is `width` would run, on wider subgroups than planned: how the tests check
 * the 32/64-lane reasoning on an 8-lane adapter. Applies to convs dispatched afterwards.
 */
export function useSubgroupWidth(rt: Runtime, width: number | undefined): void {
  if (width === undefined) {
    forcedWidths.delete(rt);
    return;
  }
  if (!(width >= 4 && width <= rt.subgroupMinSize && (width & (width - 1)) === 0)) {
    throw new Error(`useSubgroupWidth: ${width} lanes is not a power of two from 4 to this adapter's smallest subgroup (${rt.subgroupMinSize})`);
  }
  forcedWidths.set(rt, width);
}

function epilogueKey(packed: PackedConv, opts: Omit<Conv2dOptions, 'groups' | 'bias'>): EpilogueKey {
  return {
    f16Weights: packed.weight.dtype === 'f16',
    f16Math: !!packed.f16Math,
    residual: !!opts.residual,
    vecOut: packed.shape[0] % 4 === 0,
  };
}

/** The buffers both fast kernels bind, in binding order (`emitBindings`). */
function convBuffers(x: Tensor, packed: PackedConv, opts: Omit<Conv2dOptions, 'groups' | 'bias'>, y: Tensor): Tensor[] {
  return [x, packed.weight, packed.bias, ...(opts.residual ? [opts.residual] : []), y];
}

/**
 * `enable`s, the params struct (ConvParams plus `extraParams`) and the bindings of
 * `convBuffers`: x (vec4s or scalars), packed weights, bias, residual, y, params.
 */
function emitBindings(emit: (line: string) => void, k: EpilogueKey, extraParams: string, xVec4: boolean, subgroups: boolean): void {
  const ep = epilogueBindings({ residual: k.residual ? ({} as Tensor) : undefined }, 3);
  const outBinding = 3 + ep.order.length;
  const out = k.vecOut ? 'vec4<f32>' : 'f32';
  if (k.f16Weights) emit('enable f16;');
  if (subgroups) emit('enable subgroups;');
  emit(CONV_PARAMS_WGSL.replace('cin_g: u32, cout_g: u32,', `cin_g: u32, cout_g: u32, ${extraParams} ${RELU_PARAMS}`));
  emit(`@group(0) @binding(0) var<storage, read> x: array<${xVec4 ? 'vec4<f32>' : 'f32'}>;`);
  emit(`@group(0) @binding(1) var<storage, read> w: array<vec4<${k.f16Weights ? 'f16' : 'f32'}>>;`);
  emit(`@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;`);
  emit(k.vecOut ? ep.decl.replace('array<f32>', 'array<vec4<f32>>') : ep.decl);
  emit(`@group(0) @binding(${outBinding}) var<storage, read_write> y: array<${out}>;`);
  emit(`@group(0) @binding(${outBinding + 1}) var<uniform> p: ConvParams;`);
}


/**
 * Threads per workgroup of the GEMM kernel: two subgroups where they share weights
 * (16 at 4 or 8 lanes, 64 at 32, 256 at 128: WebGPU's least
 * maxComputeInvocationsPerWorkgroup; never past `maxThreads`), else 64. A workgroup
 * covers wgx * tm pixels, so a narrower one pads small images less: at 12x12 (144
 * pixels, 3 per thread) a 64-wide workgroup computes 48 pixels it throws away. On
 * lavapipe, with 3 x 32 tiles, 1x1 2048->2048 at 12x12 ran in 25-30 ms at 16 wide
 * against 33-35 at 64, the grouped 3x3 in 8 ms against 10-11, and the 24x24 and 96x96
 * convs no slower. Without subgroups 64 stays:
 * there the 1x1 1024->1024 at 24x24 ran faster at 64 (110-157 ms against 140-213).
 */
export function workgroupWidth(sgW: number, maxThreads = 256): number {
  // subgroupWidth keeps sgW within maxThreads: the workgroup holds lanes 0..sgW-1.
  return sgW ? Math.min(Math.max(16, 2 * sgW), maxThreads) : WGX;
}

interface ShaderKey extends TileConfig, EpilogueKey {
  vecIn: boolean;
  /** Subgroup size to share weight loads across (0: every thread loads every weight itself). */
  sgW: number;
  /** Threads per workgroup (`workgroupWidth`). */
  wgx: number;
  /** Input channels per chunk of weights staged in workgroup memory (0: none; only without sgW). */
  wgK: number;
}

function tiledShader(k: ShaderKey): string {
  const { tm, nv, wgx } = k;
  const P = [...Array(tm).keys()];
  const Q = [...Array(nv).keys()];
  const J = [0, 1, 2, 3];
  const lines: string[] = [];
  const emit = (s: string) => lines.push(s);

  emitBindings(emit, k, 'm: u32, cout_pad4: u32, wg_x: u32,', k.vecIn, !!k.sgW);
  // A weight vec4 from storage (w) or from workgroup memory (wt), as f32 ...
  const W = (index: string, from = 'w') => (k.f16Weights ? `vec4<f32>(${from}[${index}])` : `${from}[${index}]`);
  // ... except that with f16 arithmetic the vec4 paths keep it in f16 (the scalar path converts).
  const Wv = (index: string, from = 'w') => (k.f16Math ? `${from}[${index}]` : W(index, from));
  // One step of 4 input channels on the vec4 paths: each pixel's input vec4, then the
  // FMAs one group of 4 output channels at a time, each weight fetched (or broadcast)
  // right before its FMAs: only that group's accumulators are updated meanwhile, so
  // they stay in registers (as in the rows kernel). On lavapipe this took the 1x1
  // 1024->1024 conv at 24x24 from 39-51 ms (3 x 16, all weights first) to 31-36 ms
  // with 3 x 32; without subgroups, 4 x 8 went from ~105 to ~91 ms.
  const emitStep = (pad: string, xAt: (i: number) => string, weightAt: (q: number, j: number) => string) => {
    for (const i of P) {
      emit(`${pad}let xv${i} = select(vec4<f32>(0.0), max(${xAt(i)}, vec4<f32>(p.xlo)), in${i});`);
      if (k.f16Math) emit(`${pad}let xh${i} = vec4<f16>(xv${i});`);
    }
    for (const q of Q) for (const j of J) {
      emit(`${pad}{`);
      emit(`${pad}  let wv = ${weightAt(q, j)};`);
      for (const i of P) emit(`${pad}  ${accumulate(k, `acc${i}_${q}`, `xv${i}[${j}]`, `xh${i}[${j}]`, 'wv')}`);
      emit(`${pad}}`);
    }
  };
  const wtype = k.f16Weights ? 'f16' : 'f32';
  if (k.wgK) emit(`var<workgroup> wt: array<vec4<${wtype}>, ${k.wgK * nv}>;`);
  emit(`@compute @workgroup_size(${wgx})`);
  emit(`fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>${k.sgW ? ', @builtin(subgroup_invocation_id) lane: u32' : ''}) {`);
  // The weight tile a step shares across the subgroup: 4 input channels x nv vec4s on
  // the vec4 path, one input channel x nv vec4s on the scalar one.
  const slots = k.vecIn ? 4 * nv : nv;
  const loadsPerLane = Math.ceil(slots / (k.sgW || 1));
  if (k.sgW) {
    for (let r = 0; r < loadsPerLane; r++) {
      emit(`  let slot${r} = min(lane % ${k.sgW}u + ${r * k.sgW}u, ${slots - 1}u);`);
      // The scalar path's slot is its vec4 of channels; the vec4 path's also picks one of 4 input channels.
      if (k.vecIn) emit(`  let wj${r} = slot${r} / ${nv}u;`);
      emit(`  let wq${r} = slot${r} % ${nv}u;`);
    }
  }
  emit(`  let co0 = wid.y * ${4 * nv}u;`);
  emit(`  let q0 = co0 / 4u;`);
  emit(`  let cbase = (co0 / p.cout_g) * p.cin_g;`);
  for (const i of P) {
    emit(`  let m${i} = (wid.z * p.wg_x + wid.x) * ${wgx * tm}u + ${i * wgx}u + lid.x;`);
    emit(`  let mm${i} = min(m${i}, p.m - 1u);`);
    emit(`  let ox${i} = mm${i} % p.ow;`);
    emit(`  let oy${i} = (mm${i} / p.ow) % p.oh;`);
    emit(`  let nh${i} = (mm${i} / (p.ow * p.oh)) * p.h;`);
    emit(`  let iy0_${i} = i32(oy${i} * p.sh) - i32(p.ph);`);
    emit(`  let ix0_${i} = i32(ox${i} * p.sw) - i32(p.pw);`);
    for (const q of Q) emit(`  var acc${i}_${q} = vec4<f32>(0.0);`);
  }
  emit(`  for (var ky = 0u; ky < p.kh; ky++) {`);
  emit(`    for (var kx = 0u; kx < p.kw; kx++) {`);
  for (const i of P) {
    emit(`      let iy${i} = iy0_${i} + i32(ky);`);
    emit(`      let ix${i} = ix0_${i} + i32(kx);`);
    emit(`      let in${i} = iy${i} >= 0 && iy${i} < i32(p.h) && ix${i} >= 0 && ix${i} < i32(p.w);`);
    const off = `((nh${i} + u32(iy${i})) * p.w + u32(ix${i})) * p.cin + cbase`;
    emit(`      let off${i} = select(0u, ${k.vecIn ? `(${off}) / 4u` : off}, in${i});`);
  }
  emit(`      let krow = (ky * p.kw + kx) * p.cin_g;`);
  if (k.vecIn && k.wgK) {
    // The workgroup stages wgK rows of the weight tile in workgroup memory, then every
    // thread reads them from there (one address for all: a broadcast).
    const T = k.wgK * nv;
    emit(`      for (var c0 = 0u; c0 < p.cin_g; c0 += ${k.wgK}u) {`);
    emit(`        let chunk = min(${k.wgK}u, p.cin_g - c0);`);
    emit(`        workgroupBarrier();`);
    for (let r = 0; r < Math.ceil(T / wgx); r++) {
      emit(`        {`);
      emit(`          let t = lid.x + ${r * wgx}u;`);
      emit(`          if (t / ${nv}u < chunk${T % wgx && r === Math.ceil(T / wgx) - 1 ? ` && t < ${T}u` : ''}) { wt[t] = w[(krow + c0 + t / ${nv}u) * p.cout_pad4 + q0 + t % ${nv}u]; }`);
      emit(`        }`);
    }
    emit(`        workgroupBarrier();`);
    emit(`        for (var ci = 0u; ci < chunk; ci += 4u) {`);
    emitStep('          ', (i) => `x[off${i} + (c0 + ci) / 4u]`, (q, j) => Wv(`(ci + ${j}u) * ${nv}u + ${q}u`, 'wt'));
    emit(`        }`);
  } else if (k.vecIn) {
    emit(`      for (var ci = 0u; ci < p.cin_g; ci += 4u) {`);
    emit(`        let wr = (krow + ci) * p.cout_pad4 + q0;`);
    if (k.sgW) {
      // Each lane loads a different slice of the weight tile and the subgroup shares
      // them: one load per slice instead of one per lane.
      for (let r = 0; r < loadsPerLane; r++) emit(`        let wl${r} = ${Wv(`wr + wj${r} * p.cout_pad4 + wq${r}`)};`);
    }
    emitStep('        ', (i) => `x[off${i} + ci / 4u]`, (q, j) => {
      const slot = j * nv + q;
      return k.sgW ? `subgroupBroadcast(wl${Math.floor(slot / k.sgW)}, ${slot % k.sgW}u)` : Wv(`wr + ${j}u * p.cout_pad4 + ${q}u`);
    });
  } else {
    emit(`      for (var ci = 0u; ci < p.cin_g; ci++) {`);
    emit(`        let wr = (krow + ci) * p.cout_pad4 + q0;`);
    if (k.sgW) {
      // As on the vec4 path: each lane loads a slice of the step's weights and the
      // subgroup shares them (see SCALAR_INPUT_TILES for what it gained).
      for (let r = 0; r < loadsPerLane; r++) emit(`        let wl${r} = ${W(`wr + wq${r}`)};`);
      for (const q of Q) emit(`        let w0_${q} = subgroupBroadcast(wl${Math.floor(q / k.sgW)}, ${q % k.sgW}u);`);
    } else {
      for (const q of Q) emit(`        let w0_${q} = ${W(`wr + ${q}u`)};`);
    }
    for (const i of P) {
      const v = `x[off${i} + ci]`;
      emit(`        let xv${i} = select(0.0, max(${v}, p.xlo), in${i});`);
      for (const q of Q) emit(`        acc${i}_${q} = fma(vec4<f32>(xv${i}), w0_${q}, acc${i}_${q});`);
    }
  }
  emit(`      }`);
  emit(`    }`);
  emit(`  }`);
  // Pixel i's m is at least i, so i < p.m holds for every valid one.
  const block = `(wid.z * p.wg_x + wid.x) * ${wgx * tm}u`;
  emitEpilogue(emit, k, { count: tm, bound: `min(${tm}u, p.m)`, m: (i) => `${block} + ${i} * ${wgx}u + lid.x`, valid: (m) => `${m} < p.m` }, nv);
  emit(`}`);
  return lines.join('\n');
}

/**
 * Bias, residual, the activation clamp, then a guarded store of each valid channel, for
 * each of the `count` pixels a thread owns (accumulators acc{i}_{q}; pixel i at `m(i)`,
 * stored where `valid(i)`). A loop over the pixels, each iteration picking its
 * accumulators with selects, and bounded by `bound` (at least every valid pixel's i)
 * so that the compiler cannot unroll it: lavapipe lowers each vec4 load and store to a
 * bounds-checked access per lane, and the unrolled epilogue of a 4 x 32 tile with a
 * residual (32 loads and 32 stores per pixel) took 80% of its compile time: 6.2 s
 * against 1.3 s in this form. The selects cost nothing next to the conv's loop.
 */
function emitEpilogue(
  emit: (line: string) => void,
  k: EpilogueKey,
  pixels: { count: number; bound: string; m: (i: string) => string; valid: (m: string, i: string) => string },
  nv: number,
): void {
  emit(`  for (var i = 0u; i < ${pixels.bound}; i++) {`);
  emit(`    let m = ${pixels.m('i')};`);
  emit(`    if (${pixels.valid('m', 'i')}) {`);
  for (let q = 0; q < nv; q++) {
    let acc = `acc0_${q}`;
    for (let i = 1; i < pixels.count; i++) acc = `select(${acc}, acc${i}_${q}, i == ${i}u)`;
    emit(`      {`);
    emit(`        var v = ${acc} + bias[q0 + ${q}u];`);
    if (k.vecOut) {
      // p.cout is a multiple of 4: a vec4 is all in or all out.
      emit(`        if (co0 + ${4 * q}u < p.cout) {`);
      emit(`          let base = m * (p.cout / 4u) + q0 + ${q}u;`);
      if (k.residual) emit(`          v += max(residual[base], vec4<f32>(p.rlo));`);
      emit(`          y[base] = min(max(v, vec4<f32>(p.ylo)), vec4<f32>(p.yhi));`);
      emit(`        }`);
    } else {
      emit(`        let base = m * p.cout + co0 + ${4 * q}u;`);
      emit(`        for (var j = 0u; j < 4u; j++) {`);
      emit(`          if (co0 + ${4 * q}u + j < p.cout) {`);
      emit(`            var s = v[j];`);
      if (k.residual) emit(`            s += max(residual[base + j], p.rlo);`);
      emit(`            y[base + j] = min(max(s, p.ylo), p.yhi);`);
      emit(`          }`);
      emit(`        }`);
    }
    emit(`      }`);
  }
  emit(`    }`);
  emit(`  }`);
}

/** Convolution with weights from `packConv`; same options and result as `conv2dNaive`. */
export function conv2dTiled(rt: Runtime, x: Tensor, packed: PackedConv, opts: Omit<Conv2dOptions, 'groups' | 'bias'> = {}): Tensor {
  const g = convGeometry(x, packed.shape, { ...opts, groups: packed.groups });
  if (runsByRows(rt, g, packed)) return conv3x3Rows(rt, x, packed, g, opts);
  const m = g.n * g.oh * g.ow;
  const vecIn = g.cin % 4 === 0 && g.cinG % 4 === 0;
  const sgW = subgroupWidth(rt);
  const wgx = workgroupWidth(sgW, maxThreads(rt));
  // The tile's pixels per thread whatever the image: a workgroup covers wgx * tm
  // pixels, and the last one computes clamped copies where that does not divide the
  // image (at 12x12, 16 x 4 pixels a workgroup: 48 of 192 thrown away, where 3 per
  // thread would fit exactly and run 1x1 2048->2048 at 12x12 12% faster). Fitting tm
  // to each image would make a shader for each value a photo's shapes need, each
  // compiled at first use and unknown to the warm-up until the photo comes; fixed, a
  // tile is one shader whatever the photo.
  const { tm, nv } = packed.tile;
  const y = rt.empty([g.n, g.oh, g.ow, g.cout]);
  const key: ShaderKey = {
    tm, nv, vecIn, sgW, wgx,
    wgK: vecIn && !sharesWeights(rt) ? packed.tile.wgK ?? 0 : 0,
    ...epilogueKey(packed, opts),
  };
  // Pixel blocks run along x, and on along z past the adapter's workgroups per dimension.
  const blocks = Math.ceil(m / (wgx * tm));
  const blocksX = Math.min(blocks, rt.limits.maxComputeWorkgroupsPerDimension);
  const params = convParams(g, [m, packed.coutPad / 4, blocksX], opts);
  rt.dispatch({
    label: `conv2d_tiled ${g.kh}x${g.kw}/${g.sh} g${g.groups} ${g.cin}->${g.cout} @${g.oh}x${g.ow}${key.wgK ? ` wg${key.wgK}` : ''}${storageText(key)}${epilogueText(opts)}`,
    pipeline: rt.pipeline(memo(tiledShader, key)),
    buffers: convBuffers(x, packed, opts, y),
    uniforms: params,
    workgroups: [blocksX, packed.coutPad / (4 * nv), Math.ceil(blocks / blocksX)],
    macs: convMacs(g),
  });
  return y;
}

// ---- 3x3 stride-1 convs by rows of subgroup-wide segments ---------------------------
//
// In a 3x3 stride-1 conv, neighbouring output pixels read overlapping windows. Here a
// workgroup of S = `subgroupWidth` lanes (8 on lavapipe, 4 on SwiftShader) owns S
// neighbouring columns of 8 output rows: per input row and 4 input channels it loads
// S + 2 columns (each lane one, lanes 0-1 one more) and passes them left with
// subgroupShuffle, where the tiled kernel loads 3 x S; and each input row serves up to
// 3 output rows. On lavapipe, where every lane's load is a separate scalar load with
// its own bounds check, that is ~3.6x fewer activation loads at S = 8. Weights are
// loaded once per workgroup (each lane a slice) and broadcast, as in the tiled kernel.
// The workgroup must lie in one subgroup, lane i on column i: S is at most the
// device's smallest subgroup, so it does at any subgroup size the device picks (see
// `subgroupWidth` for wider ones). Workgroups of 8 segments, as before, left up to 7
// of them idle in the last workgroup: at 24x24 (9 segments) 3x3 1024->256 ran in
// 137-154 ms that way and in 87-100 ms with one segment per workgroup, with no loss at
// 48x48 and 96x96 (lavapipe, S = 8).

interface RowsKey extends EpilogueKey {
  /** vec4s of output channels per lane (4*nv channels). */
  nv: number;
  /** Lanes, and columns, per workgroup (`subgroupWidth`). */
  seg: number;
}

/**
 * Output rows per subgroup. More rows share each weight load among more FMAs and each
 * input row among more output rows, but hold more accumulators and make a longer
 * shader. At 96x96, 3x3 256->256 with 16 channels per lane: 12 rows ran in 243-255 ms,
 * 8 in 254-277, 16 in 292-309 (lavapipe, 2 cores); but lavapipe compiled the 12-row
 * shader in ~22 s and the 8-row one in ~11 s (once per variant and machine: Mesa caches
 * it on disk). One height for every image keeps it to one shader per variant: the
 * last segment of an image whose height is not a multiple of 8 computes a few rows
 * it does not store.
 */
export const ROWS_PER_SEGMENT = 8;

function rowsShader(k: RowsKey): string {
  const { nv, seg: SEG } = k;
  const R = ROWS_PER_SEGMENT;
  const lines: string[] = [];
  const emit = (s: string) => lines.push(s);
  const slots = 9 * 4 * nv;
  const perLane = Math.ceil(slots / SEG);
  emitBindings(emit, k, 'm: u32, cout_pad4: u32, segs: u32, rsegs: u32, segs_x: u32,', true, true);
  // conv(relu(x)) reads max(x, 0); a plain conv reads max(x, -inf), from the same
  // uniform. The max costs one instruction, but without it LLVM schedules the shuffled
  // loads so that far more values spill: 3x3 256->256 at 96x96 ran in 477 ms without
  // the max and in 320 ms with it (lavapipe).
  const relu4 = (v: string) => `max(${v}, vec4<f32>(p.xlo))`;
  // One subgroup (or part of one) per workgroup: a small image then leaves no subgroup idle.
  emit(`@compute @workgroup_size(${SEG})`);
  emit(`fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {`);
  emit(`  let co0 = wid.y * ${4 * nv}u;`);
  emit(`  let q0 = co0 / 4u;`);
  // Segments run along x, and on along z past the adapter's workgroups per dimension.
  emit(`  let segValid = wid.z * p.segs_x + wid.x < p.segs;`);
  emit(`  let seg = min(wid.z * p.segs_x + wid.x, p.segs - 1u);`);
  emit(`  let col = lid.x;`);
  emit(`  let cb = seg % (p.ow / ${SEG}u);`);
  emit(`  let rs = seg / (p.ow / ${SEG}u);`);
  emit(`  let img = rs / p.rsegs;`);
  emit(`  let oy0 = (rs % p.rsegs) * ${R}u;`);
  emit(`  let ixa = i32(cb * ${SEG}u + col) - 1;`);
  emit(`  let ixb = i32(cb * ${SEG}u + ${SEG - 1}u + col);`);
  emit(`  let ina = ixa >= 0;`);
  emit(`  let inb = col < 2u && ixb < i32(p.w);`);
  emit(`  let colA = u32(max(ixa, 0));`);
  emit(`  let colB = u32(min(ixb, i32(p.w) - 1));`);
  emit(`  let cin4 = p.cin / 4u;`);
  // The lanes holding columns col + 1 and col + 2 (mod S; the last lanes take them
  // from the extra columns xb of lanes 0 and 1). S is a power of two.
  emit(`  let sh1 = (lane & ~${SEG - 1}u) | ((lane + 1u) & ${SEG - 1}u);`);
  emit(`  let sh2 = (lane & ~${SEG - 1}u) | ((lane + 2u) & ${SEG - 1}u);`);
  for (let r = 0; r < perLane; r++) {
    emit(`  let slot${r} = min(col + ${r * SEG}u, ${slots - 1}u);`);
    emit(`  let wtap${r} = slot${r} / ${4 * nv}u;`);
    emit(`  let wj${r} = (slot${r} % ${4 * nv}u) / ${nv}u;`);
    emit(`  let wq${r} = slot${r} % ${nv}u;`);
  }
  for (let i = 0; i < R; i++) for (let q = 0; q < nv; q++) emit(`  var acc${i}_${q} = vec4<f32>(0.0);`);
  emit(`  for (var ci = 0u; ci < p.cin; ci += 4u) {`);
  for (let r = 0; r < perLane; r++) {
    const conv = k.f16Weights && !k.f16Math;
    emit(`    let wl${r} = ${conv ? 'vec4<f32>(' : ''}w[(wtap${r} * p.cin + ci + wj${r}) * p.cout_pad4 + q0 + wq${r}]${conv ? ')' : ''};`);
  }
  for (let r = 0; r < R + 2; r++) {
    emit(`    let iy${r} = i32(oy0) + ${r - 1};`);
    emit(`    let rin${r} = iy${r} >= 0 && iy${r} < i32(p.h);`);
    emit(`    let roff${r} = (img * p.h + u32(clamp(iy${r}, 0, i32(p.h) - 1))) * p.w;`);
    emit(`    let xa${r} = select(vec4<f32>(0.0), ${relu4(`x[(roff${r} + colA) * cin4 + ci / 4u]`)}, rin${r} && ina);`);
    emit(`    var xb${r} = vec4<f32>(0.0);`);
    emit(`    if (rin${r} && inb) { xb${r} = ${relu4(`x[(roff${r} + colB) * cin4 + ci / 4u]`)}; }`);
    emit(`    let x${r}_1 = select(subgroupShuffle(xa${r}, sh1), subgroupShuffle(xb${r}, sh1), col == ${SEG - 1}u);`);
    emit(`    let x${r}_2 = select(subgroupShuffle(xa${r}, sh2), subgroupShuffle(xb${r}, sh2), col >= ${SEG - 2}u);`);
    if (k.f16Math) for (const [kx, v] of [[0, `xa${r}`], [1, `x${r}_1`], [2, `x${r}_2`]] as const) emit(`    let h${r}_${kx} = vec4<f16>(${v});`);
  }
  const X = (r: number, kx: number) => (kx === 0 ? `xa${r}` : `x${r}_${kx}`);
  // One group of 4 output channels at a time: only its R accumulators are updated
  // while it runs, so LLVM keeps them in registers and reads the (spilled) inputs as
  // memory operands. With q innermost all R*nv accumulators were live at once and
  // spilled on every update: 3x3 256->256 at 96x96 ran in ~330 ms that way with 6 rows
  // x 8 channels, and in ~250-275 ms this way with 8 or 12 rows x 16 channels (lavapipe).
  for (let q = 0; q < nv; q++) {
    for (let ky = 0; ky < 3; ky++) {
      for (let kx = 0; kx < 3; kx++) {
        for (let j = 0; j < 4; j++) {
          const slot = ((ky * 3 + kx) * 4 + j) * nv + q;
          emit(`    {`);
          emit(`      let wv = subgroupBroadcast(wl${Math.floor(slot / SEG)}, ${slot % SEG}u);`);
          for (let i = 0; i < R; i++) emit(`      ${accumulate(k, `acc${i}_${q}`, `${X(i + ky, kx)}[${j}]`, `h${i + ky}_${kx}[${j}]`, 'wv')}`);
          emit(`    }`);
        }
      }
    }
  }
  emit(`  }`);
  emit(`  let ox = cb * ${SEG}u + col;`);
  // Row i is valid only where oy0 + i < p.oh, so i < p.oh.
  emitEpilogue(
    emit, k,
    { count: R, bound: `min(${R}u, p.oh)`, m: (i) => `(img * p.oh + oy0 + ${i}) * p.ow + ox`, valid: (_, i) => `segValid && oy0 + ${i} < p.oh` },
    nv,
  );
  emit(`}`);
  return lines.join('\n');
}

/**
 * vec4s of output channels per lane in the rows kernel: 4 where the packing pads the
 * channels to 16 (16 ran ~10% faster than 8 and 32 at 12 rows), else 2; 0 if neither.
 */
export function rowsChannelVecs(packed: Pick<PackedConv, 'coutPad'>): number {
  return packed.coutPad % 16 === 0 ? 4 : packed.coutPad % 8 === 0 ? 2 : 0;
}

/** Whether `conv2dTiled` runs this conv, packed so, with the rows kernel. */
export function runsByRows(rt: Runtime, g: ConvGeometry, packed: Pick<PackedConv, 'coutPad' | 'tile'>): boolean {
  return packed.tile.rows === true && rowsSupported(rt, g) && rowsChannelVecs(packed) > 0;
}

/**
 * Whether the rows kernel can run a conv of this geometry on this runtime: with
 * subgroups (`subgroupWidth`), 3x3 stride-1 convs padded 1 on every side whose width is
 * a multiple of the subgroup width (8 on lavapipe, 4 on SwiftShader).
 */
export function rowsSupported(rt: Runtime, g: ConvGeometry): boolean {
  const seg = subgroupWidth(rt);
  return (
    seg > 0 &&
    g.kh === 3 && g.kw === 3 && g.sh === 1 && g.sw === 1 && g.ph === 1 && g.pw === 1 && g.pb === 1 && g.pr === 1 &&
    g.groups === 1 && g.cin % 4 === 0 && g.ow % seg === 0
  );
}

function conv3x3Rows(rt: Runtime, x: Tensor, packed: PackedConv, g: ConvGeometry, opts: Omit<Conv2dOptions, 'groups' | 'bias'>): Tensor {
  const seg = subgroupWidth(rt);
  const rsegs = Math.ceil(g.oh / ROWS_PER_SEGMENT);
  const segs = g.n * rsegs * (g.ow / seg);
  const y = rt.empty([g.n, g.oh, g.ow, g.cout]);
  const nv = rowsChannelVecs(packed);
  const key: RowsKey = { nv, seg, ...epilogueKey(packed, opts) };
  const segsX = Math.min(segs, rt.limits.maxComputeWorkgroupsPerDimension);
  const params = convParams(g, [g.n * g.oh * g.ow, packed.coutPad / 4, segs, rsegs, segsX], opts);
  rt.dispatch({
    label: `conv2d_rows 3x3/1 g1 ${g.cin}->${g.cout} @${g.oh}x${g.ow}${storageText(key)}${epilogueText(opts)}`,
    pipeline: rt.pipeline(memo(rowsShader, key)),
    buffers: convBuffers(x, packed, opts, y),
    uniforms: params,
    workgroups: [segsX, packed.coutPad / (4 * nv), Math.ceil(segs / segsX)],
    macs: convMacs(g),
  });
  return y;
}
