// The tile tuner: times each candidate tile (`tileCandidates`) on one convolution, on
// the adapter at hand, and keeps the fastest. The built-in choices were swept on
// lavapipe; another adapter may want others (bigger tiles where registers are many,
// weights staged in workgroup memory where there are no subgroups). Which shapes to
// tune, and where the choices are kept, is up to the caller (src/midas/tune.ts,
// src/node/tuning.ts).
import type { Runtime } from '../nn/runtime.js';
import type { Tensor } from '../nn/tensor.js';
import type { Padding } from './common.js';
import { convGeometry } from './conv2d.js';
import { builtinTile, conv2dTiled, disposePacked, packConv, paddedCout, runsByRows, tileCandidates, tileKey, type TileConfig } from './conv2d_tiled.js';

/** One convolution as a network runs it. */
export interface ConvSpec {
  /** The checkpoint key of a module that runs it (for reports). */
  key: string;
  /** PyTorch's `[Cout, Cin/groups, kH, kW]`. */
  shape: readonly [number, number, number, number];
  groups: number;
  /** NHWC input. */
  input: readonly [number, number, number, number];
  stride: number;
  /** Per side or symmetric, as the kernels take it (a Conv2d's 'same' resolved for `input`). */
  padding: Padding;
}

export interface TimedTile {
  tile: TileConfig;
  /** Median ms of the timed runs. */
  ms: number;
}

export interface TunedConv {
  spec: ConvSpec;
  /** `tileKey` of the spec: what the choice is kept under. */
  tileKey: string;
  /** Every candidate, fastest first. */
  timed: TimedTile[];
  /** The choice: the fastest, unless the built-in tile is within `margin` of it. */
  best: TimedTile;
  /** Whether the rows kernel can run this conv (it is then a candidate). */
  rowsCan: boolean;
  /** The built-in choice's time (it is always a candidate). */
  builtin: TimedTile;
}

/** Milliseconds one run of a conv takes; the conv's output is the timer's to dispose. */
export type ConvTimer = (run: () => Tensor) => Promise<number>;

/** GPU time from timestamp queries where the device has them, else wall time around a sync. */
export function gpuTimer(rt: Runtime): ConvTimer {
  return async (run) => {
    await rt.sync();
    if (rt.startProfile()) {
      const y = run();
      const passes = await rt.stopProfile();
      y.dispose();
      return passes.reduce((a, p) => a + p.ms, 0);
    }
    const t0 = performance.now();
    const y = run();
    await rt.sync();
    const ms = performance.now() - t0;
    y.dispose();
    return ms;
  };
}

export interface TuneOptions {
  /** Timed runs per candidate after one untimed run (which compiles it). Default 3. */
  runs?: number;
  /** Default: `gpuTimer(rt)`. */
  timer?: ConvTimer;
  /**
   * Keep the built-in tile unless another is faster by more than this fraction
   * (default 0.05): on a noisy machine, near ties are noise, and the built-in
   * choices came from longer sweeps.
   */
  margin?: number;
}

/** Times every candidate tile for `spec` on random data and returns them fastest first. */
export async function tuneConv(rt: Runtime, spec: ConvSpec, options: TuneOptions = {}): Promise<TunedConv> {
  const runs = options.runs ?? 3;
  if (!(Number.isInteger(runs) && runs >= 1)) throw new Error(`tuneConv: runs must be a positive integer (got ${runs})`);
  const timer = options.timer ?? gpuTimer(rt);
  const [cout, cinG, kh, kw] = spec.shape;
  const builtin = builtinTile(rt, spec.shape, spec.groups);
  const weight = noise(cout * cinG * kh * kw, 1);
  const bias = noise(cout, 2);
  const x = rt.upload(noise(spec.input.reduce((a, b) => a * b, 1), 3), spec.input);
  const { padding } = spec;
  const g = convGeometry(x, spec.shape, { stride: spec.stride, padding, groups: spec.groups });
  const rowsTile = { ...builtin, rows: true };
  const rowsCan = runsByRows(rt, g, { tile: rowsTile, coutPad: paddedCout(cout, rowsTile) });
  const candidates = tileCandidates(rt, spec.shape, spec.groups, rowsCan);
  if (!candidates.some((t) => sameTile(t, builtin))) candidates.unshift(builtin);
  const timed: TimedTile[] = [];
  try {
    for (const tile of candidates) {
      const packed = packConv(rt, weight, spec.shape, spec.groups, bias, tile);
      try {
        const run = () => conv2dTiled(rt, x, packed, { stride: spec.stride, padding });
        await timer(run); // compiles the pipeline
        const ms: number[] = [];
        for (let i = 0; i < runs; i++) ms.push(await timer(run));
        timed.push({ tile, ms: median(ms) });
      } finally {
        disposePacked(packed);
      }
    }
  } finally {
    x.dispose();
  }
  timed.sort((a, b) => a.ms - b.ms);
  const builtinTimed = timed.find((t) => sameTile(t.tile, builtin))!;
  const fastest = timed[0]!;
  return {
    spec,
    tileKey: tileKey(spec.shape, spec.groups),
    timed,
    best: fastest.ms * (1 + (options.margin ?? 0.05)) < builtinTimed.ms ? fastest : builtinTimed,
    builtin: builtinTimed,
    rowsCan,
  };
}

export function sameTile(a: TileConfig, b: TileConfig): boolean {
  return a.tm === b.tm && a.nv === b.nv && (a.wgK ?? 0) === (b.wgK ?? 0) && !!a.rows === !!b.rows;
}

/** `tm x channels`, plus `wgK` where weights are staged (`3x32`, `4x8 wg32`); `rows` for the rows kernel. */
export function tileText(t: TileConfig): string {
  if (t.rows) return 'rows';
  return `${t.tm}x${4 * t.nv}${t.wgK ? ` wg${t.wgK}` : ''}`;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** Deterministic values in [-1, 1): the timing does not depend on them. */
function noise(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let a = seed >>> 0;
  for (let i = 0; i < n; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    out[i] = a / 2 ** 31 - 1;
  }
  return out;
}
