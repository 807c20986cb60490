// Timing of GPU work on a Runtime: timestamp queries around every compute pass when the
// device has them (and they prove plausible), wall-clock around `rt.sync()` otherwise.
import type { Runtime } from '../src/nn/runtime.js';
import type { Tensor } from '../src/nn/tensor.js';

export type TimingMethod = 'timestamp' | 'wall';

/** What one call of the measured function leaves behind: tensors disposed after each run. */
export type RunResult = void | Tensor | readonly Tensor[];

export interface MeasureOptions {
  /** At least this many timed runs (after one untimed warm-up). */
  minRuns: number;
  /** At most this many timed runs. */
  maxRuns: number;
  /** Keep running (up to maxRuns) until the timed runs add up to this many ms. */
  targetMs: number;
  /** Skip the warm-up run (the caller has already run the kernel once). */
  noWarmup?: boolean;
}

export interface Measurement {
  method: TimingMethod;
  /** The figure reported: GPU pass time (timestamp) or wall time (wall), per run. */
  ms: number[];
  /** Wall-clock per run: record + submit + wait for the GPU. */
  wallMs: number[];
  /** Sum of the run's compute-pass times from timestamp queries, when profiled. */
  gpuMs: number[] | null;
  /** Compute passes per run. */
  passes: number;
  median: number;
  min: number;
}

/** How the bench times passes: decided once, from the FMA ceiling run. */
export interface TimingPolicy {
  useTimestamps: boolean;
  /** Why: 'ok', or what was wrong with the timestamps. */
  note: string;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

function disposeResult(r: RunResult): void {
  if (!r) return;
  if (Array.isArray(r)) for (const t of r as readonly Tensor[]) t.dispose();
  else (r as Tensor).dispose();
}

/**
 * Runs `fn` (which records dispatches) once untimed, then `minRuns..maxRuns` times,
 * each run on its own submit followed by a wait. With `profile`, every compute pass
 * carries timestamp writes and a run's GPU time is the sum of its passes.
 */
export async function measure(rt: Runtime, fn: () => RunResult, opts: MeasureOptions, profile: boolean): Promise<Measurement> {
  if (!opts.noWarmup) {
    await rt.sync();
    disposeResult(fn());
    await rt.sync();
  }
  await rt.sync();
  const profiling = profile && rt.startProfile(4096);
  const wallMs: number[] = [];
  const passCounts: number[] = [];
  let total = 0;
  while (wallMs.length < opts.maxRuns && (wallMs.length < opts.minRuns || total < opts.targetMs)) {
    const d0 = rt.stats().dispatches;
    const t0 = performance.now();
    const r = fn();
    await rt.sync();
    const dt = performance.now() - t0;
    disposeResult(r);
    passCounts.push(rt.stats().dispatches - d0);
    wallMs.push(dt);
    total += dt;
  }
  let gpuMs: number[] | null = null;
  if (profiling) {
    const timings = await rt.stopProfile();
    gpuMs = [];
    let k = 0;
    for (const n of passCounts) {
      let s = 0;
      for (let i = 0; i < n; i++) s += timings[k++]?.ms ?? NaN;
      gpuMs.push(s);
    }
  }
  const ms = gpuMs ?? wallMs;
  return {
    method: gpuMs ? 'timestamp' : 'wall',
    ms,
    wallMs,
    gpuMs,
    passes: passCounts[0] ?? 0,
    median: median(ms),
    min: Math.min(...ms),
  };
}

/**
 * Judges timestamps from a measurement taken with both clocks on a kernel long enough
 * (tens of ms) that submit overhead is small: each pass time must be positive, no
 * longer than the wall time around it, and not far below it.
 */
export function judgeTimestamps(m: Measurement): TimingPolicy {
  if (!m.gpuMs) return { useTimestamps: false, note: 'timestamp-query not available' };
  for (let i = 0; i < m.gpuMs.length; i++) {
    const g = m.gpuMs[i]!;
    const w = m.wallMs[i]!;
    if (!Number.isFinite(g) || g <= 0) return { useTimestamps: false, note: `timestamp gave ${g} ms (wall ${w.toFixed(2)} ms)` };
    if (g > w * 1.05 + 0.05) return { useTimestamps: false, note: `timestamp ${g.toFixed(3)} ms exceeds wall ${w.toFixed(3)} ms` };
    if (g < w * 0.5) return { useTimestamps: false, note: `timestamp ${g.toFixed(3)} ms is under half of wall ${w.toFixed(3)} ms` };
  }
  return { useTimestamps: true, note: 'ok' };
}
