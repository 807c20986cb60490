// A same-adapter peer for `bench kernels`: TensorFlow.js's WebGPU backend (a dev
// dependency of the bench, never of the library) running conv2d on the SAME Dawn GPU
// object the bench uses (`nodeGpu()`), in the same process, so the ratio ours/tfjs is
// measured on one adapter rather than quoted from elsewhere.
//
// tfjs asks `navigator.gpu` for an adapter and opens its own device on it (the same
// lavapipe adapter as ours; a second device, idle while our kernels run).
//
// Waiting, as the bench does for ours (see `waitGpu` in timing.ts): a pending WebGPU
// promise makes Dawn poll on the main thread, which takes a core from lavapipe. With
// timestamps, tfjs's own GPU timing (`tf.time` -> kernelMs, from timestamp queries on
// every program's compute pass) starts its query readback (a pending mapAsync) inside the
// timed call, so a timer-based sleep would not help: the nap blocks the main thread
// instead (Atomics.wait inside the function passed to tf.time, after the conv has been
// submitted), so Dawn cannot poll until the nap is over. Without timestamps, the conv is
// submitted, the bench sleeps on a timer (nothing pending) and then awaits
// `queue.onSubmittedWorkDone()`, exactly as for ours.
import { createRequire } from 'node:module';
import type * as TfCore from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { TimingMethod } from './timing.js';
import { median } from './timing.js';

type Tf = typeof TfCore;

export interface TfjsPeer {
  tf: Tf;
  backend: WebGPUBackend;
  /** tfjs-core / tfjs-backend-webgpu versions. */
  version: string;
  /** The adapter under tfjs's device: vendor / architecture / device / description, as the runtime names ours. */
  adapter: string;
  /** Whether tfjs's device has timestamp-query (tf.time gives kernelMs). */
  timestamps: boolean;
}

let peer: Promise<TfjsPeer> | undefined;

/**
 * Loads tfjs-core and tfjs-backend-webgpu on `gpu` (installed as `navigator.gpu` first:
 * the backend registers itself at import time only when it finds one). Once per process.
 */
export function loadTfjsPeer(gpu: GPU): Promise<TfjsPeer> {
  peer ??= (async () => {
    const g = globalThis as { navigator?: object };
    // Node 20 may have no navigator; Node 21+ has a read-only one: define the property.
    Object.defineProperty(g.navigator ?? (g.navigator = {}), 'gpu', { value: gpu, configurable: true });
    const tf = (await import('@tensorflow/tfjs-core')) as Tf;
    await import('@tensorflow/tfjs-backend-webgpu');
    const ok = await tf.setBackend('webgpu');
    await tf.ready();
    if (!ok || tf.getBackend() !== 'webgpu') throw new Error(`tfjs could not start its webgpu backend (backend: ${tf.getBackend()})`);
    const backend = tf.backend() as WebGPUBackend;
    const dev = backend.device as GPUDevice & { adapterInfo?: GPUAdapterInfo };
    const info = (dev.adapterInfo ?? backend.adapterInfo) as unknown as Partial<Record<'vendor' | 'architecture' | 'device' | 'description', string>>;
    let beVersion = '?';
    try {
      beVersion = (createRequire(import.meta.url)('@tensorflow/tfjs-backend-webgpu/package.json') as { version: string }).version;
    } catch {
      // the version is only reported
    }
    return {
      tf,
      backend,
      version: `tfjs-core ${tf.version_core}, tfjs-backend-webgpu ${beVersion}`,
      adapter: [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' / ') || '?',
      timestamps: backend.device.features.has('timestamp-query'),
    };
  })();
  return peer;
}

export interface TfjsConvSpec {
  /** Input side (square) and channels; groups = 1 only (tf.conv2d has no grouped conv). */
  size: number;
  cin: number;
  cout: number;
  k: number;
  stride: number;
  /** Symmetric zero padding (PyTorch's), not TF's 'same'. */
  pad: number;
  /** NHWC input, [1, size, size, cin]. */
  x: Float32Array;
  /** PyTorch layout [cout, cin, k, k]; transposed to tfjs's HWIO here. */
  weight: Float32Array;
  bias?: Float32Array;
  /** relu(x) first: applied once before timing (ours fuses it into the conv; tfjs cannot). */
  reluInput?: boolean;
  /** relu on the output: fused into tfjs's conv (tf.fused.conv2d activation). */
  relu?: boolean;
}

export interface TfjsMeasureOptions {
  /** Timed runs after the warm-up: at least / at most, and until they add up to targetMs. */
  minRuns: number;
  maxRuns: number;
  targetMs: number;
  /** Sleep ~90% of the expected time before Dawn may poll (see the file comment). */
  nap: boolean;
  /** Time by tfjs's timestamp queries (tf.time kernelMs); else by wall clock. */
  timestamps: boolean;
  /**
   * A guess of one call's GPU time for the first timed run's nap: the warm-up's time is
   * no guide (on lavapipe the first dispatch of a fresh pipeline on fresh buffers runs up
   * to ~10x slow), so the first nap is min(0.7 x warm-up, this).
   */
  estimateMs?: number;
}

export interface TfjsMeasurement {
  method: TimingMethod;
  /** Per run: kernelMs (timestamp) or wall time (wall). */
  ms: number[];
  /** Per run: call + submit + wait (+ the timestamp readback with timestamps). */
  wallMs: number[];
  gpuMs: number[] | null;
  median: number;
  min: number;
  nap: boolean;
  /** The programs tfjs ran per call, e.g. ['Conv2DMMProgram'] (with timestamps). */
  programs: string[] | null;
  /** Wall time of the untimed warm-up call (pipeline compile + input upload included). */
  warmupMs: number;
  /** The warm-up's output, NHWC, for comparison with ours. */
  output: Float32Array;
}

/** [cout, cin, kh, kw] -> [kh, kw, cin, cout]. */
export function oihwToHwio(w: Float32Array, cout: number, cin: number, k: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let o = 0; o < cout; o++)
    for (let i = 0; i < cin; i++)
      for (let y = 0; y < k; y++)
        for (let x = 0; x < k; x++) out[((y * k + x) * cin + i) * cout + o] = w[((o * cin + i) * k + y) * k + x]!;
  return out;
}

const napCell = new Int32Array(new SharedArrayBuffer(4));
/** Blocks the main thread (no event loop, so no Dawn polling) for `ms`. */
function sleepSync(ms: number): void {
  if (ms >= 1) Atomics.wait(napCell, 0, 0, ms);
}
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Runs the conv once untimed (kept for the comparison), then `minRuns..maxRuns` times,
 * one call per submit, disposing every tfjs tensor it made.
 */
export async function measureTfjsConv(p: TfjsPeer, s: TfjsConvSpec, o: TfjsMeasureOptions): Promise<TfjsMeasurement> {
  const { tf, backend } = p;
  const timestamps = o.timestamps && p.timestamps;
  const x0 = tf.tensor4d(s.x, [1, s.size, s.size, s.cin]);
  const x = s.reluInput ? tf.relu(x0) : x0;
  if (x !== x0) x0.dispose();
  const filter = tf.tensor4d(oihwToHwio(s.weight, s.cout, s.cin, s.k), [s.k, s.k, s.cin, s.cout]);
  const bias = s.bias ? tf.tensor1d(s.bias) : undefined;
  const call = (): TfCore.Tensor4D =>
    tf.fused.conv2d({ x, filter, strides: s.stride, pad: s.pad, bias, activation: s.relu ? 'relu' : 'linear' });

  /** One call: returns its output, wall ms, and kernelMs / programs with timestamps. */
  const once = async (napMs: number): Promise<{ y: TfCore.Tensor4D; wall: number; gpu: number | null; programs: string[] | null }> => {
    let y: TfCore.Tensor4D | undefined;
    const t0 = performance.now();
    if (timestamps) {
      // f runs synchronously inside tf.time: each program's pass is submitted with its
      // query readback (a pending mapAsync), then the nap blocks the thread.
      const info = await tf.time(() => {
        y = call();
        sleepSync(napMs);
      });
      const wall = performance.now() - t0;
      if (typeof info.kernelMs !== 'number') throw new Error(`tfjs kernelMs: ${info.kernelMs.error}`);
      const extra = (info as { getExtraProfileInfo?: () => string }).getExtraProfileInfo?.() ?? '';
      const programs = extra ? extra.split(', ').map((e) => e.replace(/:.*$/, '')) : null;
      return { y: y!, wall, gpu: info.kernelMs, programs };
    }
    y = call();
    backend.ensureCommandEncoderReady();
    backend.endComputePassEncoder();
    backend.submitQueue();
    if (napMs >= 1) await sleep(napMs);
    await backend.queue.onSubmittedWorkDone();
    return { y, wall: performance.now() - t0, gpu: null, programs: null };
  };

  try {
    // Warm-up: compiles tfjs's pipeline and uploads x / filter / bias (tfjs uploads lazily).
    // Uploading and relu(x) happen here, before any timed run.
    await backend.queue.onSubmittedWorkDone();
    const w0 = await once(0);
    const output = (await w0.y.data()) as Float32Array;
    w0.y.dispose();
    // As measure() does for ours: an un-napped wait runs up to ~2x slow; a first guess.
    let estimate = Math.min(0.7 * (w0.gpu ?? w0.wall), o.estimateMs ?? Infinity);
    let programs = w0.programs;

    const wallMs: number[] = [];
    const gpuMs: number[] = [];
    let total = 0;
    while (wallMs.length < o.maxRuns && (wallMs.length < o.minRuns || total < o.targetMs)) {
      const r = await once(o.nap ? 0.9 * estimate : 0);
      r.y.dispose();
      wallMs.push(r.wall);
      if (r.gpu !== null) gpuMs.push(r.gpu);
      programs = r.programs ?? programs;
      total += r.wall;
      estimate = Math.min(estimate, r.gpu ?? r.wall);
    }
    const ms = timestamps ? gpuMs : wallMs;
    return {
      method: timestamps ? 'timestamp' : 'wall',
      ms,
      wallMs,
      gpuMs: timestamps ? gpuMs : null,
      median: median(ms),
      min: Math.min(...ms),
      nap: o.nap,
      programs,
      warmupMs: w0.wall,
      output,
    };
  } finally {
    x.dispose();
    filter.dispose();
    bias?.dispose();
  }
}

/** Live tfjs tensors (to check the bench leaks none). */
export function tfjsLiveTensors(p: TfjsPeer): number {
  return p.tf.memory().numTensors;
}

/**
 * Frees the buffers tfjs pooled after its tensors were disposed (its pool only grows,
 * and every bench shape has new sizes). The key arrays are emptied rather than the map
 * replaced: tfjs stops pooling released buffers once the map is empty.
 */
export async function trimTfjs(p: TfjsPeer): Promise<void> {
  const bm = p.backend.bufferManager as unknown as {
    freeBuffers: Map<string, GPUBuffer[]>;
    numFreeBuffers: number;
    numBytesAllocated: number;
  };
  await p.backend.queue.onSubmittedWorkDone();
  for (const list of bm.freeBuffers.values()) {
    for (const b of list) {
      bm.numBytesAllocated -= b.size;
      b.destroy();
    }
    bm.numFreeBuffers -= list.length;
    list.length = 0;
  }
}

/** Bytes tfjs's buffer pool holds (in use and free). */
export function tfjsAllocatedBytes(p: TfjsPeer): number {
  return (p.backend.bufferManager as unknown as { numBytesAllocated: number }).numBytesAllocated;
}
