// The adapter's ceilings: peak f32 FMA rate and copy bandwidth, measured with
// shaders written to reach them (SPEC §7: 64-thread workgroups, 6 independent vec4
// fma chains, loop bound from a uniform — a constant bound runs ~40% slower on
// lavapipe).
import type { Runtime } from '../src/nn/runtime.js';
import { asWall, judgeTimestamps, measure, type Measurement, type TimingPolicy } from './timing.js';

const FMA_SHADER = /* wgsl */ `
struct P { iters: u32, seed: f32, _a: u32, _b: u32 }
@group(0) @binding(0) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(1) var<uniform> p: P;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  let s = p.seed * f32(i & 7u);
  var a0 = vec4<f32>(s, s + 1.0, s + 2.0, s + 3.0);
  var a1 = a0 + vec4<f32>(0.1);
  var a2 = a0 + vec4<f32>(0.2);
  var a3 = a0 + vec4<f32>(0.3);
  var a4 = a0 + vec4<f32>(0.4);
  var a5 = a0 + vec4<f32>(0.5);
  let m = vec4<f32>(0.999);
  let c = vec4<f32>(0.001);
  for (var k = 0u; k < p.iters; k++) {
    a0 = fma(a0, m, c);
    a1 = fma(a1, m, c);
    a2 = fma(a2, m, c);
    a3 = fma(a3, m, c);
    a4 = fma(a4, m, c);
    a5 = fma(a5, m, c);
  }
  out[i] = a0 + a1 + a2 + a3 + a4 + a5;
}`;
/** FLOPs per loop iteration per thread: 6 chains x vec4 x (mul + add). */
const FMA_FLOP_PER_ITER = 6 * 4 * 2;

const COPY_SHADER = /* wgsl */ `
struct P { count: u32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i < p.count) { dst[i] = src[i]; }
}`;

export interface Ceiling {
  /** GFLOP/s (fma) or GB/s (copy), from the best run. */
  rate: number;
  ms: number;
  measurement: Measurement;
}

export interface CeilingResult {
  fma: Ceiling & { flop: number; threads: number; iters: number };
  copy: Ceiling & { bytes: number };
  /**
   * The same FMA kernel awaited at once, as a plain caller does: Dawn's Node binding
   * then polls on the main thread and takes a core from lavapipe (see waitGpu).
   */
  fmaSpin: Ceiling;
  timing: TimingPolicy & { granularityNs: number | null };
  /** Whether runs sleep before awaiting the GPU (the bench's default). */
  nap: boolean;
}

function grid(groups: number): [number, number] {
  if (groups <= 65535) return [groups, 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y];
}

/** The largest of 1 ns .. 1 ms (powers of 2 and of 10) that divides every pass time. */
export function granularityNs(ms: readonly number[]): number | null {
  const ns = ms.map((v) => Math.round(v * 1e6)).filter((v) => v > 0);
  if (ns.length === 0) return null;
  let best = 1;
  const candidates = [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 65536, 10, 100, 1000, 10000, 100000, 1000000];
  for (const q of candidates) if (q > best && ns.every((v) => v % q === 0)) best = q;
  return best;
}

export async function measureCeilings(rt: Runtime, quick: boolean, nap: boolean): Promise<CeilingResult> {
  const runs = { minRuns: quick ? 2 : 4, maxRuns: quick ? 3 : 8, targetMs: quick ? 150 : 500 };

  // ---- FMA ------------------------------------------------------------------
  const workgroups = 1024;
  const threads = workgroups * 64;
  const iters = quick ? 512 : 2048;
  const flop = threads * iters * FMA_FLOP_PER_ITER;
  const out = rt.empty([threads * 4]);
  const fmaPipeline = rt.pipeline(FMA_SHADER);
  const fmaParams = new ArrayBuffer(16);
  new Uint32Array(fmaParams, 0, 1)[0] = iters;
  new Float32Array(fmaParams, 4, 1)[0] = 0.5;
  const fmaRun = () =>
    rt.dispatch({ label: 'ceiling fma', pipeline: fmaPipeline, buffers: [out], uniforms: fmaParams, workgroups: grid(workgroups) });
  // Awaited at once: long passes, so this run also judges the timestamps against wall time.
  const spinM = await measure(rt, fmaRun, { ...runs, nap: false }, rt.features.timestamps);
  const verdict = judgeTimestamps(spinM);
  const granularity = spinM.gpuMs ? granularityNs(spinM.gpuMs) : null;
  const spin = verdict.useTimestamps ? spinM : asWall(spinM);
  const napM = nap ? await measure(rt, fmaRun, { ...runs, nap: true, noWarmup: true }, verdict.useTimestamps) : spin;
  out.dispose();

  // ---- copy -------------------------------------------------------------------
  const bytes = Math.min(64 * 1024 * 1024, Math.floor(rt.limits.maxStorageBufferBindingSize / 16) * 16);
  const count = bytes / 16;
  const src = rt.empty([bytes / 4]);
  const dst = rt.empty([bytes / 4]);
  const copyPipeline = rt.pipeline(COPY_SHADER);
  const copyParams = new Uint32Array([count, 0, 0, 0]).buffer;
  const copyRun = () =>
    rt.dispatch({ label: 'ceiling copy', pipeline: copyPipeline, buffers: [src, dst], uniforms: copyParams, workgroups: grid(Math.ceil(count / 64)) });
  const copyM = await measure(rt, copyRun, { ...runs, nap }, verdict.useTimestamps);
  src.dispose();
  dst.dispose();

  return {
    fma: { rate: flop / napM.min / 1e6, ms: napM.min, measurement: napM, flop, threads, iters },
    fmaSpin: { rate: flop / spin.min / 1e6, ms: spin.min, measurement: spin },
    copy: { rate: (2 * bytes) / copyM.min / 1e6, ms: copyM.min, measurement: copyM, bytes: 2 * bytes },
    timing: { ...verdict, granularityNs: granularity },
    nap,
  };
}
