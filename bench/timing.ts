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
  /** Skip the warm-up run (default: one untimed run first). */
  noWarmup?: boolean;
  /** Keep the warm-up run's outputs and return them as `kept` (the caller disposes them). */
  keepWarmup?: boolean;
  /** Sleep before waiting on the GPU (see `waitGpu`); default true. */
  nap?: boolean;
  /** A first guess of one call's GPU time, for the first nap (else taken from the warm-up). */
  estimateMs?: number;
  /** Size batches so that one run takes about this long (default: one call per run). */
  batchTargetMs?: number;
  /** At most this many calls per run (default 32). */
  maxBatch?: number;
}

export interface Measurement {
  method: TimingMethod;
  /** The figure reported, per call of `fn`: GPU pass time (timestamp) or wall time (wall). */
  ms: number[];
  /** Per run: record + submit + wait for the GPU, divided by the batch. */
  wallMs: number[];
  /** Per call: the sum of its compute-pass times from timestamp queries, when profiled. */
  gpuMs: number[] | null;
  /** Calls of `fn` per run (one submit). */
  batch: number;
  /** Compute passes per call. */
  passes: number;
  median: number;
  min: number;
  /** Whether the runs slept before awaiting the GPU. */
  nap: boolean;
  /** The warm-up's outputs, with `keepWarmup`. */
  kept?: RunResult;
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

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Flushes, then waits until the GPU is done. While a WebGPU promise is pending, Dawn's
 * Node binding polls for events from `setImmediate` on the main thread, which keeps a
 * CPU core busy; lavapipe runs compute on the same cores, so an immediate await slows
 * the kernel itself (up to 2x on 2 cores). With `napMs`, sleep that long first (no
 * promise pending, the core stays free) and only then await the rest.
 */
export async function waitGpu(rt: Runtime, napMs = 0): Promise<void> {
  rt.flush();
  if (napMs >= 1) await sleep(napMs);
  await rt.sync();
}

/**
 * Runs `fn` (which records dispatches) once untimed, then `minRuns..maxRuns` times.
 * Each run records `fn` `batch` times into one submit and waits for it; with
 * `batchTargetMs`, the batch is sized so that a run takes about that long, so short
 * kernels are timed back to back as in a forward pass rather than one submit each.
 * With `profile`, every compute pass carries timestamp writes and a sample is the sum
 * of one call's passes. With `nap` (the default), each wait first sleeps 90% of the
 * expected time, so the main thread does not compete with lavapipe (see `waitGpu`).
 */
export async function measure(rt: Runtime, fn: () => RunResult, opts: MeasureOptions, profile: boolean): Promise<Measurement> {
  const nap = opts.nap ?? true;
  /** Expected GPU time of one call, ms. */
  let estimate = opts.estimateMs ?? NaN;
  let kept: RunResult = undefined;
  let passesPerCall = 1;
  await rt.sync();
  if (!opts.noWarmup) {
    const d0 = rt.stats().dispatches;
    const r = fn();
    passesPerCall = Math.max(1, rt.stats().dispatches - d0);
    const t0 = performance.now();
    await waitGpu(rt, nap && Number.isFinite(estimate) ? 0.9 * estimate : 0);
    // An un-napped wait runs up to ~2x slow (less for short kernels): a first guess.
    if (!Number.isFinite(estimate)) estimate = 0.7 * (performance.now() - t0);
    if (opts.keepWarmup) kept = r;
    else disposeResult(r);
  }
  let batch = 1;
  if (opts.batchTargetMs && Number.isFinite(estimate)) {
    batch = Math.min(opts.maxBatch ?? 32, Math.max(1, Math.round(opts.batchTargetMs / Math.max(estimate, 0.05))));
  }
  // The profiler holds 2048 passes.
  const maxRuns = Math.max(1, Math.min(opts.maxRuns, Math.floor(2000 / (batch * passesPerCall))));
  const profiling = profile && rt.startProfile();
  const wallMs: number[] = [];
  const callPasses: number[] = [];
  let total = 0;
  while (wallMs.length < maxRuns && (wallMs.length < opts.minRuns || total < opts.targetMs)) {
    const t0 = performance.now();
    for (let b = 0; b < batch; b++) {
      const d0 = rt.stats().dispatches;
      // Disposed at once: the next call may reuse the buffer, queue order keeps that safe.
      disposeResult(fn());
      callPasses.push(rt.stats().dispatches - d0);
    }
    const t1 = performance.now();
    await waitGpu(rt, nap && Number.isFinite(estimate) ? 0.9 * estimate * batch : 0);
    const dt = performance.now() - t0;
    // The GPU part of the wall time bounds the GPU time from above.
    estimate = Math.min(Number.isFinite(estimate) ? estimate : Infinity, (performance.now() - t1) / batch);
    wallMs.push(dt / batch);
    total += dt;
  }
  let gpuMs: number[] | null = null;
  if (profiling) {
    const timings = await rt.stopProfile();
    gpuMs = [];
    let k = 0;
    for (const n of callPasses) {
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
    batch,
    passes: callPasses[0] ?? 0,
    median: median(ms),
    min: Math.min(...ms),
    nap,
    kept,
  };
}

/**
 * Judges timestamps from a measurement taken with both clocks on a kernel long enough
 * (tens of ms) that submit overhead is small: each pass time must be positive, no
 * longer than the wall time around it, and not far below it.
 */
export function judgeTimestamps(m: Measurement): TimingPolicy {
  if (!m.gpuMs) return { useTimestamps: false, note: 'timestamp-query not available' };
  for (let i = 0; i < m.wallMs.length; i++) {
    let g = 0;
    for (let b = 0; b < m.batch; b++) g += m.gpuMs[i * m.batch + b]!;
    g /= m.batch;
    const w = m.wallMs[i]!;
    if (!Number.isFinite(g) || g <= 0) return { useTimestamps: false, note: `timestamp gave ${g} ms (wall ${w.toFixed(2)} ms)` };
    if (g > w * 1.05 + 0.05) return { useTimestamps: false, note: `timestamp ${g.toFixed(3)} ms exceeds wall ${w.toFixed(3)} ms` };
    if (g < w * 0.5) return { useTimestamps: false, note: `timestamp ${g.toFixed(3)} ms is under half of wall ${w.toFixed(3)} ms` };
  }
  return { useTimestamps: true, note: 'ok' };
}

/** The same runs, reported by wall-clock (when timestamps were judged unusable). */
export function asWall(m: Measurement): Measurement {
  return { ...m, method: 'wall', ms: m.wallMs, median: median(m.wallMs), min: Math.min(...m.wallMs) };
}
