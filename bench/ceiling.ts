// The adapter's ceilings: peak f32 FMA rate and copy bandwidth, measured with
// shaders written to reach them: 64-thread workgroups, independent vec4 fma chains,
// the loop bound from a uniform (a constant bound runs ~40% slower on lavapipe).
//
// The FMA probe runs 8 chains and 4 fmas per chain in each loop iteration. lavapipe
// masks every loop-carried value on each iteration (a vblendvps per vector in the
// machine code, beside the multiply and the add), so a probe with one fma per chain per iteration measures
// that overhead too: on the CI machine kind, 6 chains x 1 ran at 81-83 GFLOP/s where
// 8 x 4 ran at 141-147 (and 6 x 4, 12 x 2 at 130-144), alternately in one process.
// The rolled probe is still run (`fmaRolled`), as the rate a loop that does one fma per
// value per iteration can reach.
import type { Runtime } from '../src/nn/runtime.js';
import { asWall, judgeTimestamps, measure, type Measurement, type TimingPolicy } from './timing.js';

/** The FMA probe: `chains` independent vec4 chains, each advanced `unroll` times per loop iteration. */
export function fmaShader(chains: number, unroll: number): string {
  const A = [...Array(chains).keys()];
  const lines = [
    'struct P { iters: u32, seed: f32, _a: u32, _b: u32 }',
    '@group(0) @binding(0) var<storage, read_write> out: array<vec4<f32>>;',
    '@group(0) @binding(1) var<uniform> p: P;',
    '@compute @workgroup_size(64)',
    'fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {',
    '  let i = gid.x + gid.y * nwg.x * 64u;',
    '  let s = p.seed * f32(i & 7u);',
    '  let m = vec4<f32>(0.999);',
    '  let c = vec4<f32>(0.001);',
    ...A.map((a) => `  var a${a} = vec4<f32>(s, s + 1.0, s + 2.0, s + 3.0) + vec4<f32>(${(a / 10).toFixed(1)});`),
    '  for (var k = 0u; k < p.iters; k++) {',
  ];
  for (let u = 0; u < unroll; u++) for (const a of A) lines.push(`    a${a} = fma(a${a}, m, c);`);
  lines.push('  }', `  out[i] = ${A.map((a) => `a${a}`).join(' + ')};`, '}');
  return lines.join('\n');
}
export const FMA_PROBE = { chains: 8, unroll: 4 };
export const FMA_ROLLED = { chains: 6, unroll: 1 };
/** FLOPs per loop iteration per thread: chains x unroll x vec4 x (mul + add). */
const flopPerIter = (probe: { chains: number; unroll: number }) => probe.chains * probe.unroll * 4 * 2;

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
  fma: Ceiling & { flop: number; threads: number; iters: number; chains: number; unroll: number };
  /** The same work with one fma per chain per loop iteration (6 chains): what lavapipe's per-iteration masking leaves of the ceiling. */
  fmaRolled: Ceiling & { chains: number; unroll: number };
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
  const out = rt.empty([threads * 4]);
  // Each probe does the same work: 98,304 FLOPs per thread (a twelfth with --quick).
  const probe = (shape: { chains: number; unroll: number }) => {
    const iters = ((quick ? 512 : 2048) * flopPerIter(FMA_ROLLED)) / flopPerIter(shape);
    const pipeline = rt.pipeline(fmaShader(shape.chains, shape.unroll));
    const params = new ArrayBuffer(16);
    new Uint32Array(params, 0, 1)[0] = iters;
    new Float32Array(params, 4, 1)[0] = 0.5;
    const run = () => rt.dispatch({ label: `ceiling fma ${shape.chains}x${shape.unroll}`, pipeline, buffers: [out], uniforms: params, workgroups: grid(workgroups) });
    return { run, iters, flop: threads * iters * flopPerIter(shape) };
  };
  const fma = probe(FMA_PROBE);
  // Awaited at once: long passes, so this run also judges the timestamps against wall time.
  const spinM = await measure(rt, fma.run, { ...runs, nap: false }, rt.features.timestamps);
  const verdict = judgeTimestamps(spinM);
  const granularity = spinM.gpuMs ? granularityNs(spinM.gpuMs) : null;
  const spin = verdict.useTimestamps ? spinM : asWall(spinM);
  const napM = nap ? await measure(rt, fma.run, { ...runs, nap: true, noWarmup: true }, verdict.useTimestamps) : spin;
  const rolled = probe(FMA_ROLLED);
  const rolledM = await measure(rt, rolled.run, { ...runs, nap }, verdict.useTimestamps);
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
    fma: { rate: fma.flop / napM.min / 1e6, ms: napM.min, measurement: napM, flop: fma.flop, threads, iters: fma.iters, ...FMA_PROBE },
    fmaSpin: { rate: fma.flop / spin.min / 1e6, ms: spin.min, measurement: spin },
    fmaRolled: { rate: rolled.flop / rolledM.min / 1e6, ms: rolledM.min, measurement: rolledM, ...FMA_ROLLED },
    copy: { rate: (2 * bytes) / copyM.min / 1e6, ms: copyM.min, measurement: copyM, bytes: 2 * bytes },
    timing: { ...verdict, granularityNs: granularity },
    nap,
  };
}
