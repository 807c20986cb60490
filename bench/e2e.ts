// `bench e2e`: the whole pipeline, decoded RGB bytes in -> depth Float32Array out,
// as `Midas.predict` runs it (hub transform on the GPU, the chosen MiDaS network with
// random weights, bicubic back to the image's size), for square S x S images. `--model`
// picks the network: v2 and v2.1 (one network, ResNeXt-101) or small (EfficientNet-
// Lite3); everything that depends on it follows `MODELS[model].config`. Per size: ms per image
// (median, min), a per-stage breakdown from timestamp queries (every run carries
// them; the last is broken down), achieved GFLOP/s against the FMA ceiling measured
// in the same run, peak GPU memory, and the peers on the same machine, run after ours
// (never at the same time): PyTorch CPU, then ONNX Runtime node on its WebGPU EP (the
// same lavapipe adapter) and its CPU EP, all on our random weights; the peers time the
// network alone on our network input, and every output is checked against the others
// (bench/ort-peer.ts).
//
// By default the runs call predict's own steps, recorded here (see `pipelineRunner`);
// `--predict` times `Midas.predict` itself.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { numel } from '../src/nn/tensor.js';
import type { MidasConfig } from '../src/midas/config.js';
import { checkInputFits, Midas } from '../src/midas/model.js';
import { MODELS, type ModelName } from '../src/midas/models.js';
import { largestActivation, MidasNet, type Precision } from '../src/midas/network.js';
import { resize2d } from '../src/kernels/resize.js';
import { preprocess, type RgbImage } from '../src/midas/transform.js';
import type { Weights } from '../src/nn/module.js';
import { Runtime, type DispatchRecord } from '../src/nn/runtime.js';
import type { Timing } from '../src/nn/profiler.js';
import { useTiles, type TileConfig } from '../src/kernels/conv2d_tiled.js';
import { sameTile, tileText, type TunedConv } from '../src/kernels/tuner.js';
import { tuneNetwork } from '../src/midas/tune.js';
import { measureCeilings, type CeilingResult } from './ceiling.js';
import { benchGpu } from './gpu.js';
import { waitQuiet, watchLoad, type MachineLoad } from './machine.js';
import { labelMacs, macsTotals, networkMacs, NETWORK_STAGES, stageOf, type NetworkStage } from './macs.js';
import { randomWeights, weightsSize, writeWeights } from './random-weights.js';
import { testImage } from './test-image.js';
import { ORT_BUDGET_MS, OUTPUT_TOLERANCE, peerLines, runOrtPeers, shareDir, writeNetworkInput, type PeerSize } from './ort-peer.js';
import { fmt, table, writeJson, type Column } from './report.js';
import { median, waitGpu } from './timing.js';

export interface E2eOptions {
  /** Which network (MODELS[model].config), random weights. */
  model: ModelName;
  json: string;
  sizes: number[];
  /** Timed runs per size (after one warm-up); undefined: DEFAULT_RUNS (--quick: 1). */
  runs: number | undefined;
  quick: boolean;
  torch: boolean;
  /** ONNX Runtime node's WebGPU and CPU EPs on the network exported by torch_e2e.py (needs /usr/bin/python3 with torch). */
  ort: boolean;
  /** Before each phase, wait up to this many seconds for other processes to leave the CPU (0: don't). */
  waitQuietS: number;
  /** The command line, for the markdown table. */
  command: string;
  /** Compare convs with this kernel-bench JSON (at 384) when it exists. */
  kernelsJson: string;
  /** pipeline (default): predict's steps recorded by the bench; predict: Midas.predict as is. */
  via: 'pipeline' | 'predict';
  /** Also run the model's hub size (v2: 384, small: 256) with precision 'f16' and 'f16-math', after the f32 sizes, against the f32 time. */
  f16: boolean;
  /** Also tune the convs' tiles at the model's hub size (tuneNetwork), then predict on them and on the built-in ones in turn. */
  tune: boolean;
}

/** v2's hub size is 384 and it runs 512 in a few seconds; small's hub size is 256. */
export const DEFAULT_SIZES: Readonly<Record<ModelName, readonly number[]>> = { v2: [256, 384, 512], 'v2.1': [256, 384, 512], small: [256, 384] };
export const DEFAULT_RUNS = 3;
/** Before each run (warm-up included) wait at most this long for a quiet CPU; before each phase, --wait-quiet. */
const RUN_QUIET_S = 5;
/** The size whose convs are compared with `bench kernels` (which runs v2's 384 shapes). */
const REFERENCE_SIZE = 384;

const TORCH_SCRIPT = fileURLToPath(new URL('../../bench/torch_e2e.py', import.meta.url));
const PYTHON = '/usr/bin/python3';
const MiB = 2 ** 20;

export interface BreakdownRow {
  name: string;
  /** gpu: sum of timestamp-query pass times; host: wall clock on the CPU. */
  clock: 'gpu' | 'host' | 'rest';
  passes?: number;
  ms: number;
  /** Of the broken-down run's wall time. */
  share: number;
  /** GPU rows: the sum of each of its passes' least time over the timed runs (see `passMinima`). */
  minMs?: number;
  macs?: number;
  gflops?: number;
  pctFma?: number;
  /** GFLOP/s and % of the FMA ceiling on minMs. */
  minGflops?: number;
  minPctFma?: number;
  note?: string;
}

interface KernelKindRow {
  kind: string;
  passes: number;
  ms: number;
  /** The sum of its passes' least times over the timed runs. */
  minMs: number;
  shareOfGpu: number;
  macs: number;
  gflops?: number;
  pctFma?: number;
  /**
   * Depthwise convs only (bandwidth-bound: k*k MACs per value read): the least traffic
   * of their passes, each input, output and weight read or written once, and its rate
   * against the copy ceiling.
   */
  bytes?: number;
  gbps?: number;
  pctCopy?: number;
}

interface ConvShapeRow {
  shape: string;
  passes: number;
  ms: number;
  gflops: number;
  kernelBenchGflops?: number;
  ratio?: number;
}

interface TorchSize {
  size: number;
  runs: number;
  macs: number;
  ms: number[];
  medianMs: number;
  minMs: number;
  othersCpuShare: number | null;
  pipelineMs?: number[];
  pipelineMedianMs?: number;
  pipelineMinMs?: number;
  pipelineOthersCpuShare?: number | null;
}

interface TorchResult {
  model?: string;
  torch: string;
  /** "ours (--weights)": our random weights; else its own randomize(). */
  weights?: string;
  onnxOpset?: number | null;
  threads: number;
  params: number;
  buildSeconds: number;
  sizes: TorchSize[];
  othersCpuShare?: number | null;
}

export interface SizeResult {
  size: number;
  runs: number;
  /** pipeline: predict's steps recorded by the bench; predict: Midas.predict as is. */
  via: 'pipeline' | 'predict';
  ms: number[];
  /** Per timed run: the wait from submit to data, the GPU passes' sum. */
  waitsMs: number[];
  gpuPassesMs: (number | null)[];
  medianMs: number;
  minMs: number;
  warmupMs: number;
  /** The first run: recording (pipelines compiled), and its GPU passes. */
  warmup: { hostSyncMs: number; gpuMs: number | null; passes: { label: string; ms: number }[] | null };
  loadMs: number;
  /**
   * From the architecture (bench/macs.ts); fromDispatches: the MACs the profiled run's
   * dispatches reported (DispatchRecord.macs); torch: PyTorch's forward hooks.
   */
  macs: { total: number; encoder: number; decoder: number; perStage: Record<NetworkStage, number>; fromDispatches: number | null; torch: number | null };
  gflop: number;
  /** Network FLOP / end-to-end median time. */
  gflopsE2e: number;
  pctFmaE2e: number;
  profile: {
    /** Which timed run (1-based): the one with the smallest GPU time. */
    run: number;
    wallMs: number;
    /** The synchronous part of the run: upload, recording every dispatch, submit. */
    hostSyncMs: number;
    waitMs: number;
    /** Sum of every pass's GPU time, pre/post included. */
    gpuMs: number;
    /** Sum of the network's passes. */
    networkGpuMs: number;
    networkGflops: number;
    networkPctFma: number;
    /**
     * The network's passes, each at its least time over the timed runs: on a shared
     * CPU one conv can take twice as long in one run as in the next, so this is what
     * the kernels take undisturbed, and where the time goes with the noise taken out.
     */
    networkMinMs: number;
    networkMinGflops: number;
    networkMinPctFma: number;
    uploadMs: number;
    readbackMs: number;
    breakdown: BreakdownRow[];
    kernels: KernelKindRow[];
    slowest: { label: string; ms: number; gflops?: number }[];
    convShapes: ConvShapeRow[] | null;
    passes: { label: string; ms: number }[];
  } | null;
  profileNote: string;
  memory: {
    weightsParamBytes: number;
    /** Weights as uploaded (packed, Cout padded to the tile). */
    weightsGpuBytes: number;
    /** Runtime.peakLiveBytes over load + every run on a fresh Runtime: weights included. */
    peakLiveBytes: number;
    /** peakLiveBytes minus the weights: the forward pass's own peak. */
    peakActivationBytes: number;
    largestActivationBytes: number;
    /** Live + pooled after the runs: what the runtime holds on the device. */
    heldBytes: number;
  };
  depthRange: [number, number];
  machine: MachineLoad;
  waitedForQuietSeconds: number | null;
  torch: TorchSize | null;
  /** Our end-to-end median / PyTorch's model(x) median. */
  ratio: number | null;
  /** Our end-to-end median / PyTorch's pipeline median (same steps as ours). */
  pipelineRatio: number | null;
  /** ONNX Runtime's runs and the output checks (null: --no-ort). */
  peers: PeerSize | null;
  /** Our end-to-end median / ORT's session.run median, WebGPU EP and CPU EP. */
  ortWebgpuRatio: number | null;
  ortCpuRatio: number | null;
}

/** Our depth map of each f32 size result (its last run), for the peers' output checks; kept out of the JSON. */
const ourDepth = new WeakMap<SizeResult, Float32Array>();

const now = () => performance.now();

/**
 * `resize bilinear align_corners 96x96->192x192 c256` -> `resize bilinear align_corners`;
 * `conv2d_tiled 3x3/1 ...` -> `conv2d_tiled 3x3`; `depthwise 5x5/2 816 @8x8` -> `depthwise 5x5`.
 */
function kernelKind(label: string): string {
  const op = label.includes(': ') ? label.slice(label.indexOf(': ') + 2) : label;
  const conv = /^(conv2d_\w+|depthwise) (\d+x\d+)/.exec(op);
  if (conv) return `${conv[1]} ${conv[2]}`;
  const resize = /^(resize [a-z-]+(?: align_corners)?)/.exec(op);
  if (resize) return resize[1]!;
  return op.split(/[ [+]/)[0]!;
}

/** Conv shape of a pass label, as `3x3/1 g32 256->256 @96` (null for other kernels). */
function convShape(label: string): string | null {
  const m = /conv2d_\w+ (\d+)x\d+\/(\d+) g(\d+) (\d+)->(\d+) @(\d+)x\d+/.exec(label);
  return m ? `${m[1]}x${m[1]}/${m[2]} g${m[3]} ${m[4]}->${m[5]} @${m[6]}` : null;
}

/** The tiled rows of a `bench kernels` JSON, keyed like `convShape`. */
function kernelBenchRates(path: string): Map<string, number> | null {
  if (!existsSync(path)) return null;
  try {
    const json = JSON.parse(readFileSync(path, 'utf8')) as { rows: { group: string; name: string; impl: string; shape: string; gflops?: number }[] };
    const out = new Map<string, number>();
    for (const r of json.rows) {
      if (r.impl !== 'tiled' || r.gflops === undefined || r.group === 'tile-sweep') continue;
      const s = /^(\d+)x\d+x(\d+) -> (\d+)x\d+x(\d+)$/.exec(r.shape);
      const k = /(\d+)x\1/.exec(r.name);
      if (!s || !k) continue;
      const [size, cin, outSide, cout] = s.slice(1).map(Number) as [number, number, number, number];
      const groups = Number(/ g(\d+)/.exec(r.name)?.[1] ?? 1);
      const key = `${k[1]}x${k[1]}/${Math.round(size / outSide)} g${groups} ${cin}->${cout} @${outSide}`;
      if (!out.has(key)) out.set(key, r.gflops);
    }
    return out;
  } catch {
    return null;
  }
}

function gflops(macs: number, ms: number): number {
  return (2 * macs) / ms / 1e6;
}

/** One run's passes, split into pre-processing, the network's stages and post-processing; `macs[i]` is pass i's. */
function splitPasses(passes: readonly Timing[], macs: readonly number[]) {
  const keyed = passes.map((p) => stageOf(p.label));
  const first = keyed.findIndex((k) => k !== undefined);
  let last = -1;
  keyed.forEach((k, i) => {
    if (k !== undefined) last = i;
  });
  const stages = new Map<NetworkStage, { ms: number; passes: number; macs: number }>(NETWORK_STAGES.map((s) => [s, { ms: 0, passes: 0, macs: 0 }]));
  const pre = { ms: 0, passes: 0 };
  const post = { ms: 0, passes: 0 };
  const unkeyed = { ms: 0, passes: 0 };
  passes.forEach((p, i) => {
    const k = keyed[i];
    if (k) {
      const s = stages.get(k)!;
      s.ms += p.ms;
      s.passes++;
      s.macs += macs[i]!;
    } else if (first < 0 || i < first) {
      pre.ms += p.ms;
      pre.passes++;
    } else if (i > last) {
      post.ms += p.ms;
      post.passes++;
    } else {
      unkeyed.ms += p.ms;
      unkeyed.passes++;
    }
  });
  return { stages, pre, post, unkeyed };
}

/** One image through the pipeline: what the run measured. */
interface RunOutcome {
  wallMs: number;
  /** The synchronous part: upload, recording every dispatch, submit. */
  hostSyncMs: number;
  /** From submit to data on the CPU: Runtime.lastWaitMs. */
  waitMs: number;
  passes: Timing[] | null;
  /** With passes: every dispatch of the run, in the same order (one compute pass each). */
  records: DispatchRecord[] | null;
  depth: Float32Array;
}

/**
 * Profiles a run: timestamp queries on every pass, and the runtime's dispatch records
 * (shapes and MACs, cheap to keep) beside them, as `midas predict --profile` does.
 */
function startProfile(rt: Runtime, profile: boolean): void {
  if (!profile) return;
  rt.startProfile();
  rt.records = [];
}

async function stopProfile(rt: Runtime, profile: boolean): Promise<Pick<RunOutcome, 'passes' | 'records'>> {
  if (!profile) return { passes: null, records: null };
  const passes = await rt.stopProfile();
  const records = rt.records;
  rt.records = null;
  return { passes, records };
}

/**
 * What `Midas.predict` does for an image that fits one buffer (src/midas/model.ts):
 * checkFits, preprocess, forward, PyTorch bicubic back (one strip), read.
 */
function pipelineRunner(rt: Runtime, net: MidasNet, config: MidasConfig, size: number) {
  return async (image: RgbImage, profile: boolean): Promise<RunOutcome> => {
    startProfile(rt, profile);
    const t0 = now();
    checkInputFits(config, size, rt.limits.maxStorageBufferBindingSize, image.width, image.height);
    const x = preprocess(rt, image, size);
    const { depth } = net.forward(x);
    x.dispose();
    const strip = resize2d(rt, depth, image.height, image.width, { kind: 'bicubic', alignCorners: false }, [0, image.height]);
    const pending = strip.read();
    const hostSyncMs = now() - t0;
    const out = await pending;
    const wallMs = now() - t0;
    strip.dispose();
    depth.dispose();
    return { wallMs, hostSyncMs, waitMs: rt.lastWaitMs, ...(await stopProfile(rt, profile)), depth: out };
  };
}

/** `Midas.predict` as is. */
function predictRunner(rt: Runtime, midas: Midas) {
  return async (image: RgbImage, profile: boolean): Promise<RunOutcome> => {
    startProfile(rt, profile);
    const t0 = now();
    const pending = midas.predict(image);
    const hostSyncMs = now() - t0;
    const r = await pending;
    const wallMs = now() - t0;
    return { wallMs, hostSyncMs, waitMs: rt.lastWaitMs, ...(await stopProfile(rt, profile)), depth: r.depth };
  };
}

const sumMs = (passes: readonly Timing[]) => passes.reduce((a, p) => a + p.ms, 0);

/**
 * Each pass of `passes` at its least time over the runs whose passes are the same (same
 * count, same labels, in order: a repeated forward pass at one size records the same
 * dispatches), `passes` itself included.
 */
function passMinima(passes: readonly Timing[], runs: readonly RunOutcome[]): Timing[] {
  const same = runs
    .map((o) => o.passes)
    .filter((q): q is Timing[] => q !== null && q.length === passes.length && q.every((t, i) => t.label === passes[i]!.label));
  return passes.map((p, i) => ({ label: p.label, ms: Math.min(p.ms, ...same.map((q) => q[i]!.ms)) }));
}

/** A depthwise conv's kernel kind (see `kernelKind`): bandwidth-bound, so reported in GB/s too. */
const isDepthwiseKind = (kind: string) => /^depthwise/i.test(kind);

/**
 * Each pass's MACs, and for depthwise convs the least bytes it moves, from the run's
 * dispatch records when they line up with the passes (one compute pass per dispatch,
 * in order, with the same label); otherwise MACs parsed from the labels and no bytes.
 * Depthwise bytes: input and output f32 once each, plus weights (C*k*k, which is the
 * pass's MACs over its output pixels) at `weightBytes` each and an f32 bias per channel.
 */
function passWork(
  passes: readonly Timing[],
  records: readonly DispatchRecord[] | null,
  weightBytes: number,
): { macs: number[]; bytes: (number | undefined)[]; source: 'dispatch records' | 'labels' } {
  const label = (r: DispatchRecord) => (r.scope ? `${r.scope}: ${r.kernel}` : r.kernel);
  const aligned = records !== null && records.length === passes.length && records.every((r, i) => label(r) === passes[i]!.label);
  if (!aligned) return { macs: passes.map((p) => labelMacs(p.label)), bytes: passes.map(() => undefined), source: 'labels' };
  const bytes = records.map((r) => {
    if (!isDepthwiseKind(kernelKind(r.kernel)) || r.output.length === 0) return undefined;
    const channels = r.output.at(-1)!;
    const pixels = numel(r.output) / channels;
    return 4 * numel(r.input) + 4 * numel(r.output) + weightBytes * (r.macs / pixels) + 4 * channels;
  });
  return { macs: records.map((r) => r.macs), bytes, source: 'dispatch records' };
}

async function runSize(
  gpu: GPU,
  weights: Weights,
  size: number,
  runs: number,
  ceil: CeilingResult,
  opts: E2eOptions,
  kernelRates: Map<string, number> | null,
  waitedS: number | null,
  /** Waits (briefly) for a quiet CPU before each run; returns seconds waited. */
  quietRun: () => Promise<number | null>,
  precision: Precision = 'f32',
): Promise<SizeResult> {
  const config = MODELS[opts.model].config;
  const log = (s: string) => process.stderr.write(`  [${size}${precision === 'f32' ? '' : ` ${precision}`}] ${s}\n`);
  // A fresh Runtime per size: peakLiveBytes has no reset.
  const rt = await Runtime.create(gpu);
  const useTs = rt.features.timestamps && ceil.timing.useTimestamps;
  const watch = watchLoad();
  let t = now();
  let dispose: () => void;
  let run: (image: RgbImage, profile: boolean) => Promise<RunOutcome>;
  if (opts.via === 'predict') {
    const midas = new Midas(rt, weights, { size, precision, config });
    run = predictRunner(rt, midas);
    dispose = () => midas.dispose();
  } else {
    // What the Midas constructor does.
    const net = new MidasNet(config);
    net.prepare(rt, weights, precision);
    run = pipelineRunner(rt, net, config, size);
    dispose = () => (net.dispose(), rt.trim());
  }
  await rt.sync();
  const loadMs = now() - t;
  const weightsGpuBytes = rt.stats().liveBytes;
  log(`weights packed and uploaded in ${fmt(loadMs / 1000, 2)} s (${fmt(weightsGpuBytes / MiB)} MiB on the device)`);

  const image = testImage(size);
  let waitedRunsS = 0;
  waitedRunsS += (await quietRun()) ?? 0;
  // Warm-up: compiles the pipelines.
  const warm = await run(image, useTs);
  const warmupMs = warm.wallMs;
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of warm.depth) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  log(
    `warm-up ${fmt(warmupMs)} ms (recording with pipeline compiles ${fmt(warm.hostSyncMs)} ms` +
      (warm.passes ? `, GPU passes ${fmt(sumMs(warm.passes))} ms` : '') +
      `; depth in [${fmt(lo)}, ${fmt(hi)}])`,
  );

  const outcomes: RunOutcome[] = [];
  for (let i = 0; i < runs; i++) {
    waitedRunsS += (await quietRun()) ?? 0;
    // Every run carries timestamp queries (a write at each pass's start and end).
    const last = await run(image, useTs);
    outcomes.push(last);
    log(
      `run ${i + 1}/${runs}: ${fmt(last.wallMs)} ms` +
        (last.passes ? `; GPU passes ${fmt(sumMs(last.passes))} ms` : ''),
    );
  }
  const ms = outcomes.map((o) => o.wallMs);
  const st = rt.stats();
  const memory = {
    weightsParamBytes: weightsSize(weights).bytes,
    weightsGpuBytes,
    peakLiveBytes: st.peakLiveBytes,
    peakActivationBytes: st.peakLiveBytes - weightsGpuBytes,
    largestActivationBytes: 4 * largestActivation(config, size, size),
    heldBytes: st.liveBytes + st.pooledBytes,
  };

  const perStage = networkMacs(config, size, size);
  const { total, encoder } = macsTotals(perStage);
  const med = median(ms);

  let profile: SizeResult['profile'] = null;
  let profileNote = '';
  let fromDispatches: number | null = null;
  // The breakdown: the least disturbed run (smallest GPU time; other processes and
  // Dawn's polling both stretch the passes).
  const chosen = outcomes.reduce((a, b) => (b.passes && (!a.passes || sumMs(b.passes) < sumMs(a.passes)) ? b : a));
  if (!rt.features.timestamps) profileNote = 'no timestamp-query on this device: no breakdown';
  else if (!ceil.timing.useTimestamps) profileNote = `timestamps judged unusable (${ceil.timing.note}): no breakdown`;
  else if (chosen.passes) {
    const passes = chosen.passes;
    const wallMs = chosen.wallMs;
    const hostSyncMs = chosen.hostSyncMs;

    // Host-side pieces the run does not expose, measured apart on an idle GPU (median of 3).
    const uploads: number[] = [];
    const readbacks: number[] = [];
    await rt.sync();
    for (let i = 0; i < 3; i++) {
      t = now();
      const x = preprocess(rt, image, size); // u8 -> f32, writeBuffer, and recording its 2 dispatches
      uploads.push(now() - t);
      x.dispose();
      await waitGpu(rt, 0);
    }
    const out = rt.empty([1, size, size, 1]);
    await rt.sync();
    for (let i = 0; i < 3; i++) {
      t = now();
      await out.read(); // copy to a staging buffer, submit, map, copy out
      readbacks.push(now() - t);
    }
    out.dispose();
    const uploadMs = median(uploads);
    const readbackMs = median(readbacks);

    const work = passWork(passes, chosen.records, precision === 'f32' ? 4 : 2);
    const split = splitPasses(passes, work.macs);
    const minima = passMinima(passes, outcomes);
    const minSplit = splitPasses(minima, work.macs);
    const gpuMs = sumMs(passes);
    fromDispatches = work.macs.reduce((a, m) => a + m, 0);
    const pct = (g: number) => (100 * g) / ceil.fma.rate;
    const share = (v: number) => v / wallMs;
    const breakdown: BreakdownRow[] = [];
    breakdown.push({ name: 'upload: u8->f32 + writeBuffer (host, measured apart)', clock: 'host', ms: uploadMs, share: share(uploadMs) });
    const record = Math.max(0, hostSyncMs - uploadMs);
    breakdown.push({ name: 'record dispatches + submit (host)', clock: 'host', ms: record, share: share(record), note: 'the run\'s synchronous part minus the upload' });
    breakdown.push({ name: 'pre-processing kernels (resize, normalize)', clock: 'gpu', passes: split.pre.passes, ms: split.pre.ms, share: share(split.pre.ms), minMs: minSplit.pre.ms });
    let networkGpuMs = 0;
    let networkMinMs = 0;
    for (const s of NETWORK_STAGES) {
      const v = split.stages.get(s)!;
      const minMs = minSplit.stages.get(s)!.ms;
      networkGpuMs += v.ms;
      networkMinMs += minMs;
      const g = gflops(perStage[s], v.ms);
      const gMin = gflops(perStage[s], minMs);
      breakdown.push({
        name: s, clock: 'gpu', passes: v.passes, ms: v.ms, share: share(v.ms), minMs,
        macs: perStage[s], gflops: g, pctFma: pct(g), minGflops: gMin, minPctFma: pct(gMin),
      });
    }
    if (split.unkeyed.passes) {
      networkGpuMs += split.unkeyed.ms;
      networkMinMs += minSplit.unkeyed.ms;
      breakdown.push({ name: 'network passes without a key', clock: 'gpu', passes: split.unkeyed.passes, ms: split.unkeyed.ms, share: share(split.unkeyed.ms), minMs: minSplit.unkeyed.ms });
    }
    breakdown.push({ name: 'post-processing (bicubic back)', clock: 'gpu', passes: split.post.passes, ms: split.post.ms, share: share(split.post.ms), minMs: minSplit.post.ms });
    breakdown.push({ name: 'readback: copy, map, copy out (host, measured apart)', clock: 'host', ms: readbackMs, share: share(readbackMs) });
    const accounted = breakdown.reduce((a, r) => a + r.ms, 0);
    breakdown.push({
      name: 'rest: GPU idle between passes, wait latency',
      clock: 'rest',
      ms: wallMs - accounted,
      share: share(wallMs - accounted),
      note: 'wall minus everything above',
    });

    // By kernel kind (time of every pass, pre/post included).
    const kinds = new Map<string, KernelKindRow>();
    passes.forEach((p, i) => {
      const k = kernelKind(p.label);
      const row = kinds.get(k) ?? { kind: k, passes: 0, ms: 0, minMs: 0, shareOfGpu: 0, macs: 0 };
      row.passes++;
      row.ms += p.ms;
      row.minMs += minima[i]!.ms;
      row.macs += work.macs[i]!;
      const b = work.bytes[i];
      if (b !== undefined) row.bytes = (row.bytes ?? 0) + b;
      kinds.set(k, row);
    });
    const kernels = [...kinds.values()].sort((a, b) => b.ms - a.ms);
    for (const r of kernels) {
      r.shareOfGpu = r.ms / gpuMs;
      if (r.macs) {
        r.gflops = gflops(r.macs, r.ms);
        r.pctFma = pct(r.gflops);
      }
      if (r.bytes !== undefined) {
        r.gbps = r.bytes / r.ms / 1e6;
        r.pctCopy = (100 * r.gbps) / ceil.copy.rate;
      }
    }
    const slowest = passes
      .map((p, i) => ({ label: p.label, ms: p.ms, gflops: work.macs[i] ? gflops(work.macs[i]!, p.ms) : undefined }))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 10);

    // Convs by shape, against the same shapes in `bench kernels` (which runs 384 shapes).
    let convShapes: ConvShapeRow[] | null = null;
    if (size === REFERENCE_SIZE) {
      const byShape = new Map<string, { passes: number; ms: number; macs: number }>();
      passes.forEach((p, i) => {
        const s = convShape(p.label);
        if (!s) return;
        const v = byShape.get(s) ?? { passes: 0, ms: 0, macs: 0 };
        v.passes++;
        v.ms += p.ms;
        v.macs += work.macs[i]!;
        byShape.set(s, v);
      });
      convShapes = [...byShape.entries()]
        .map(([shape, v]) => {
          const g = gflops(v.macs, v.ms);
          const kb = kernelRates?.get(shape);
          return { shape, passes: v.passes, ms: v.ms, gflops: g, kernelBenchGflops: kb, ratio: kb ? g / kb : undefined };
        })
        .sort((a, b) => b.ms - a.ms);
    }

    const networkGflops = gflops(total, networkGpuMs);
    const networkMinGflops = gflops(total, networkMinMs);
    profile = {
      run: outcomes.indexOf(chosen) + 1,
      wallMs,
      hostSyncMs,
      waitMs: chosen.waitMs,
      gpuMs,
      networkGpuMs,
      networkGflops,
      networkPctFma: pct(networkGflops),
      networkMinMs,
      networkMinGflops,
      networkMinPctFma: pct(networkMinGflops),
      uploadMs,
      readbackMs,
      breakdown,
      kernels,
      slowest,
      convShapes,
      passes: passes.map((p) => ({ label: p.label, ms: p.ms })),
    };
  }
  const machine = watch();
  dispose();
  rt.destroy();

  const gflopsE2e = gflops(total, med);
  const result: SizeResult = {
    size,
    runs,
    via: opts.via,
    ms,
    medianMs: med,
    minMs: Math.min(...ms),
    waitsMs: outcomes.map((o) => o.waitMs),
    gpuPassesMs: outcomes.map((o) => (o.passes ? sumMs(o.passes) : null)),
    warmupMs,
    warmup: {
      hostSyncMs: warm.hostSyncMs,
      gpuMs: warm.passes ? sumMs(warm.passes) : null,
      passes: warm.passes ? warm.passes.map((p) => ({ label: p.label, ms: p.ms })) : null,
    },
    loadMs,
    macs: { total, encoder, decoder: total - encoder, perStage, fromDispatches, torch: null },
    gflop: (2 * total) / 1e9,
    gflopsE2e,
    pctFmaE2e: (100 * gflopsE2e) / ceil.fma.rate,
    profile,
    profileNote,
    memory,
    depthRange: [lo, hi],
    machine,
    waitedForQuietSeconds: waitedS === null ? null : waitedS + waitedRunsS,
    torch: null,
    ratio: null,
    pipelineRatio: null,
    peers: null,
    ortWebgpuRatio: null,
    ortCpuRatio: null,
  };
  ourDepth.set(result, outcomes.at(-1)?.depth ?? warm.depth);
  return result;
}

interface TunedRun {
  size: number;
  seconds: number;
  convs: TunedConv[];
  /** Wall ms of Midas.predict per pair, built-in tiles first. */
  builtinMs: number[];
  tunedMs: number[];
}

/**
 * Midas.predict on the built-in and the tuned tiles, one run of each in turn (two
 * models, two runtimes), so that the host's drift over minutes, which is larger than
 * what the tiles change, falls on both alike.
 */
async function alternate(
  gpu: GPU,
  config: MidasConfig,
  weights: Weights,
  size: number,
  tiles: ReadonlyMap<string, TileConfig>,
  pairs: number,
  quietRun: () => Promise<number | null>,
): Promise<Pick<TunedRun, 'size' | 'builtinMs' | 'tunedMs'>> {
  const image = testImage(size);
  const models: { rt: Runtime; midas: Midas }[] = [];
  for (const t of [undefined, tiles]) {
    const rt = await Runtime.create(gpu);
    if (t) useTiles(rt, t);
    const midas = new Midas(rt, weights, { size, config });
    await midas.predict(image); // compiles
    models.push({ rt, midas });
  }
  const ms: number[][] = [[], []];
  for (let i = 0; i < pairs; i++) {
    for (const [j, m] of models.entries()) {
      await quietRun();
      const t0 = now();
      await m.midas.predict(image);
      ms[j]!.push(now() - t0);
    }
    process.stderr.write(`  pair ${i + 1}/${pairs}: built-in ${fmt(ms[0]!.at(-1)!)} ms, tuned ${fmt(ms[1]!.at(-1)!)} ms\n`);
  }
  for (const m of models) {
    m.midas.dispose();
    m.rt.destroy();
  }
  return { size, builtinMs: ms[0]!, tunedMs: ms[1]! };
}

/** The tuner's choices, and predict on them against the built-in tiles, run alternately. */
function tunedText(t: TunedRun): string {
  const changed = t.convs.filter((c) => !sameTile(c.best.tile, c.builtin.tile));
  const ratios = t.tunedMs.map((v, i) => v / t.builtinMs[i]!);
  return [
    `\n== ${t.size}x${t.size}: tuned tiles against built-in ones, alternately, after the f32 runs ==`,
    `tuned ${t.convs.length} conv shapes in ${fmt(t.seconds, 1)} s; ${changed.length} changed: ` +
      (changed.map((c) => `${c.tileKey} ${tileText(c.builtin.tile)} -> ${tileText(c.best.tile)}`).join(', ') || 'none'),
    `built-in: median ${fmt(median(t.builtinMs))} ms (min ${fmt(Math.min(...t.builtinMs))}); ` +
      `tuned: median ${fmt(median(t.tunedMs))} ms (min ${fmt(Math.min(...t.tunedMs))}); ` +
      `tuned / built-in per pair: median ${median(ratios).toFixed(2)} (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`,
  ].join('\n');
}

/** An f16 run (weights, or weights and products) against the f32 one at the same size. */
function f16Text(h: SizeResult, precision: Precision, f: SizeResult | undefined): string {
  const mem = (r: SizeResult) => `${fmt(r.memory.peakLiveBytes / MiB)} MiB peak (weights ${fmt(r.memory.weightsGpuBytes / MiB)})`;
  const what = precision === 'f16' ? 'f16 weights (arithmetic f32)' : 'f16 weights and f16 products (sums f32)';
  return [
    '',
    `== ${h.size}x${h.size} with ${what}, after the f32 runs ==`,
    `median ${fmt(h.medianMs)} ms (min ${fmt(h.minMs)}), ${h.pctFmaE2e.toFixed(1)}% of the FMA ceiling; ${mem(h)}`,
    f ? `f32 in this run: median ${fmt(f.medianMs)} ms (min ${fmt(f.minMs)}); ${mem(f)}; ${precision} / f32 time = ${(h.medianMs / f.medianMs).toFixed(2)}` : `no f32 run at ${h.size} to compare with`,
  ].join('\n');
}

/** Recomputes the %FMA (and depthwise %copy) figures against other ceilings. */
function rescale(r: SizeResult, c: CeilingResult): void {
  const fmaGflops = c.fma.rate;
  r.pctFmaE2e = (100 * r.gflopsE2e) / fmaGflops;
  const p = r.profile;
  if (!p) return;
  p.networkPctFma = (100 * p.networkGflops) / fmaGflops;
  p.networkMinPctFma = (100 * p.networkMinGflops) / fmaGflops;
  for (const b of p.breakdown) {
    if (b.gflops !== undefined) b.pctFma = (100 * b.gflops) / fmaGflops;
    if (b.minGflops !== undefined) b.minPctFma = (100 * b.minGflops) / fmaGflops;
  }
  for (const k of p.kernels) {
    if (k.gflops !== undefined) k.pctFma = (100 * k.gflops) / fmaGflops;
    if (k.gbps !== undefined) k.pctCopy = (100 * k.gbps) / c.copy.rate;
  }
}

/** torch_e2e.py; `extra`: --weights, --share, --no-timing (see there). */
function runTorch(model: ModelName, sizes: number[], runsFor: (s: number) => number, extra: string[]): { result: TorchResult | null; note: string } {
  const probe = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) return { result: null, note: `${PYTHON} -c "import torch" failed: no PyTorch comparison` };
  const args = [TORCH_SCRIPT, '--model', model, '--sizes', sizes.join(','), '--runs', String(DEFAULT_RUNS), '--threads', '2', ...extra];
  for (const s of sizes) args.push('--runs-for', `${s}=${runsFor(s)}`);
  const watch = watchLoad();
  const r = spawnSync(PYTHON, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 600_000, maxBuffer: 16 * MiB });
  watch(); // (the child's CPU counts as "others" here; the script measures its own share)
  if (r.status !== 0) return { result: null, note: `torch_e2e.py failed (exit ${r.status ?? r.signal})` };
  try {
    return { result: JSON.parse(r.stdout.trim().split('\n').pop()!) as TorchResult, note: 'ok' };
  } catch (e) {
    return { result: null, note: `torch_e2e.py printed no JSON: ${(e as Error).message}` };
  }
}

// ---- the run ----------------------------------------------------------------------------

export async function runE2e(opts: E2eOptions): Promise<void> {
  const started = now();
  const config = MODELS[opts.model].config;
  /** The hub transform's size: --f16 and --tune run there. */
  const hubSize = MODELS[opts.model].size;
  const stopWatch = watchLoad();
  const { gpu, flags } = benchGpu();
  const sizes = opts.sizes;
  const runsFor = (_s: number) => opts.runs ?? (opts.quick ? 1 : DEFAULT_RUNS);
  let waitedMs = 0;
  const quiet = async (maxS = opts.waitQuietS): Promise<number | null> => {
    if (!(opts.waitQuietS > 0)) return null;
    const w = (await waitQuiet(Math.min(maxS, opts.waitQuietS) * 1000)) ?? 0;
    waitedMs += w;
    return w / 1000;
  };
  const quietRun = () => quiet(RUN_QUIET_S);

  await quiet();
  const rt0 = await Runtime.create(gpu);
  const adapter = rt0.adapterName;
  const features = rt0.features;
  const limits = rt0.limits;
  process.stderr.write(`adapter: ${adapter}\nmeasuring ceilings...\n`);
  const ceilWatch = watchLoad();
  let ceil = await measureCeilings(rt0, opts.quick, true);
  const ceilLoad = ceilWatch();
  rt0.destroy();
  /** FMA ceilings measured at the start and the end of the run; the best counts. */
  const fmaTries = [{ gflops: ceil.fma.rate, othersCpuShare: ceilLoad.othersCpuShare, when: 'start' }];
  process.stderr.write(
    `  FMA ${fmt(ceil.fma.rate)} GFLOP/s, copy ${fmt(ceil.copy.rate)} GB/s; ` +
      `timing by ${ceil.timing.useTimestamps ? 'timestamp queries' : `wall clock (${ceil.timing.note})`}\n`,
  );

  let t = now();
  const weights = randomWeights(config);
  const wsize = weightsSize(weights);
  process.stderr.write(`random weights: ${(wsize.params / 1e6).toFixed(1)} M parameters in ${fmt((now() - t) / 1000, 2)} s\n`);
  const kernelRates = kernelBenchRates(opts.kernelsJson);

  const results: SizeResult[] = [];
  for (const size of sizes) {
    const waited = await quiet();
    process.stderr.write(`${size}x${size}: ${runsFor(size)} run(s) after a warm-up\n`);
    results.push(await runSize(gpu, weights, size, runsFor(size), ceil, opts, kernelRates, waited, quietRun));
  }

  // The f16 precisions at the reference size, right after the f32 runs (same weights, same ceiling).
  const f16: { precision: Precision; result: SizeResult }[] = [];
  for (const precision of opts.f16 ? (['f16', 'f16-math'] as const) : []) {
    const waited = await quiet();
    process.stderr.write(`${hubSize}x${hubSize}, precision ${precision}: ${runsFor(hubSize)} run(s) after a warm-up\n`);
    f16.push({ precision, result: await runSize(gpu, weights, hubSize, runsFor(hubSize), ceil, opts, null, waited, quietRun, precision) });
  }

  // Tuned tiles at the reference size, after the f32 runs: the tuner's time, then
  // predict on the built-in and the tuned tiles in turn.
  let tuned: TunedRun | null = null;
  if (opts.tune) {
    await quiet();
    process.stderr.write(`tuning the convs at ${hubSize}x${hubSize}...\n`);
    const rtT = await Runtime.create(gpu);
    t = now();
    const { results: convs, tiles } = await tuneNetwork(rtT, config, hubSize, {
      onConv: (done, total, r) => process.stderr.write(`  ${done}/${total} ${r.spec.key}: ${tileText(r.best.tile)} ${fmt(r.best.ms)} ms (built-in ${tileText(r.builtin.tile)} ${fmt(r.builtin.ms)} ms)\n`),
    });
    const seconds = (now() - t) / 1000;
    rtT.destroy();
    await quiet();
    const pairs = Math.max(3, runsFor(hubSize));
    process.stderr.write(`${hubSize}x${hubSize}: built-in and tuned tiles alternately, ${pairs} pairs after a warm-up of each\n`);
    tuned = { seconds, convs, ...(await alternate(gpu, config, weights, hubSize, tiles, pairs, quietRun)) };
  }

  // The peers, on our weights: torch_e2e.py loads them (and, for ORT, runs and exports
  // the network on our network input), then ORT's EPs run the export.
  let torch: TorchResult | null = null;
  let torchNote = 'not run (--no-torch)';
  let ortNote = opts.ort ? 'ok' : 'not run (--no-ort)';
  let peers: PeerSize[] = [];
  /** The opset torch_e2e.py exported the network in (null: no export). */
  let onnxOpset: number | null = null;
  const share = opts.torch || opts.ort ? shareDir() : null;
  try {
    if (share) {
      const extra = ['--weights', path.join(share.dir, 'weights.safetensors')];
      writeWeights(weights, extra[1]!);
      if (opts.ort) {
        for (const size of sizes) await writeNetworkInput(gpu, testImage(size), size, path.join(share.dir, `input-${size}.bin`));
        extra.push('--share', share.dir);
        if (!opts.torch) extra.push('--no-timing');
      }
      await quiet();
      process.stderr.write(`PyTorch CPU (${PYTHON} ${TORCH_SCRIPT})${opts.ort ? ', and its ONNX export' : ''}, after ours...\n`);
      t = now();
      const r = runTorch(opts.model, sizes, runsFor, extra);
      torch = opts.torch ? r.result : null;
      if (opts.torch) torchNote = r.note;
      if (opts.ort && !r.result) ortNote = `no ONNX export: ${r.note}`;
      onnxOpset = r.result?.onnxOpset ?? null;
      process.stderr.write(`  ${r.result ? `done in ${fmt((now() - t) / 1000, 2)} s` : r.note}\n`);
    }
    if (opts.ort && share && ortNote === 'ok') {
      peers = await runOrtPeers({ dir: share.dir, sizes, runsFor, ours: (s) => ourDepth.get(results.find((r) => r.size === s)!), adapter, quiet });
    }
  } finally {
    share?.remove();
  }
  {
    // Always measured again at the end (the host's speed drifts even with no other
    // process on the CPU): the better of the two counts, so a slow start cannot
    // inflate the shares.
    await quiet();
    process.stderr.write(`measuring the ceilings again${(ceilLoad.othersCpuShare ?? 0) > 0.1 ? ` (the first ran on a busy CPU: others ${pct(ceilLoad.othersCpuShare, 0)}%)` : ''}...\n`);
    const rt1 = await Runtime.create(gpu);
    const w = watchLoad();
    const again = await measureCeilings(rt1, opts.quick, true);
    const l = w();
    rt1.destroy();
    fmaTries.push({ gflops: again.fma.rate, othersCpuShare: l.othersCpuShare, when: 'end' });
    process.stderr.write(`  FMA ${fmt(again.fma.rate)} GFLOP/s (others ${pct(l.othersCpuShare, 0)}%)\n`);
    if (again.fma.rate > ceil.fma.rate) {
      ceil = again;
      for (const r of results) rescale(r, ceil);
      for (const h of f16) rescale(h.result, ceil);
    }
  }
  for (const r of results) {
    const ts = torch?.sizes.find((s) => s.size === r.size) ?? null;
    r.torch = ts;
    if (ts) {
      r.macs.torch = ts.macs;
      r.ratio = r.medianMs / ts.medianMs;
      r.pipelineRatio = ts.pipelineMedianMs ? r.medianMs / ts.pipelineMedianMs : null;
    }
    r.peers = peers.find((p) => p.size === r.size) ?? null;
    r.ortWebgpuRatio = r.peers?.webgpu ? r.medianMs / r.peers.webgpu.medianMs : null;
    r.ortCpuRatio = r.peers?.cpu ? r.medianMs / r.peers.cpu.medianMs : null;
  }

  const seconds = (now() - started) / 1000;
  const load = stopWatch();
  console.log(header(adapter, features, flags, ceil, fmaTries, load, opts, waitedMs, wsize));
  console.log(table(results, SUMMARY));
  console.log(summaryNotes(results, torch, torchNote));
  console.log(peerLines(peers, ortNote).join('\n'));
  for (const r of results) console.log(breakdownText(r));
  for (const h of f16) console.log(f16Text(h.result, h.precision, results.find((r) => r.size === hubSize)));
  if (tuned) console.log(tunedText(tuned));
  console.log(markdown(results, adapter, ceil, load, torch, opts));
  console.log(`\ntotal ${seconds.toFixed(1)} s`);

  writeJson(opts.json, {
    bench: 'e2e',
    model: opts.model,
    network: MODELS[opts.model].title,
    date: new Date().toISOString(),
    command: opts.command,
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    machineLoad: load,
    waitedForQuietSeconds: opts.waitQuietS > 0 ? waitedMs / 1000 : null,
    quick: opts.quick,
    adapter,
    features,
    limits,
    dawnFlags: flags,
    timing: ceil.timing,
    ceilings: {
      fmaGflops: ceil.fma.rate,
      fmaAwaitedAtOnceGflops: ceil.fmaSpin.rate,
      fmaProbe: `${ceil.fma.chains} chains x ${ceil.fma.unroll} fmas per loop iteration`,
      fmaRolledGflops: ceil.fmaRolled.rate,
      copyGBps: ceil.copy.rate,
      fmaSamplesMs: ceil.fma.measurement.ms,
      othersCpuShare: ceilLoad.othersCpuShare,
      fmaTries,
    },
    weights: { params: wsize.params, bytes: wsize.bytes, kind: 'random (bench/random-weights.ts)' },
    torch: torch ? { version: torch.torch, threads: torch.threads, params: torch.params, buildSeconds: torch.buildSeconds } : null,
    torchNote,
    ort: {
      note: ortNote,
      version: peers.flatMap((p) => [p.webgpu, p.cpu]).find((r) => r)?.ortVersion ?? null,
      onnxOpset,
      budgetMs: ORT_BUDGET_MS,
      outputTolerance: OUTPUT_TOLERANCE,
    },
    notes: [
      opts.via === 'predict'
        ? 'ms: wall clock around Midas.predict(rgb) -> depth Float32Array, after one warm-up; median and min of the runs.'
        : "ms: wall clock around Midas.predict's steps (checkFits, preprocess, forward, bicubic back, read) -> depth Float32Array, after one warm-up; median and min of the runs.",
      'GFLOP = 2 * conv MACs counted from the architecture (bench/macs.ts); checked against the MACs the dispatches of the profiled run report and PyTorch forward hooks (macs.fromDispatches, macs.torch).',
      'profile.kernels: depthwise rows also carry bytes (input, output and weights once each: the least traffic), GB/s and pctCopy, the share of the copy ceiling (ceilings.copyGBps).',
      'gflopsE2e: network FLOP / end-to-end median. profile.networkGflops: network FLOP / the sum of the network passes\' GPU time (the run with the smallest GPU time).',
      'breakdown: the timed run with the smallest GPU time (every run carries timestamp queries); shares are of its wall time; upload and readback are measured apart on an idle GPU.',
      'memory.peakLiveBytes: Runtime.stats() on a fresh Runtime per size, weights included; peakActivationBytes excludes them.',
      'torch: PyTorch CPU, torch.set_num_threads(2), no_grad, our random weights (loaded from a safetensors file the bench writes), model(x) at S x S (median after a warm-up), run after ours.',
      'peers: ONNX Runtime node, the WebGPU EP (its own Dawn, on lavapipe as ours: sameAdapter) then the CPU EP (2 threads), each in a child process (bench/ort-run.ts), ' +
        'session.run on our network input (the hub transform read back from the GPU) of the network PyTorch exports at S (torch.onnx.export), after ours and PyTorch; ' +
        `median of the runs after a warm-up, as many of ours as fit in ${ORT_BUDGET_MS / 1000} s. Errors: max|Δ| / the reference's range, PyTorch's model(x) and our depth map on the same input.`,
      'ortWebgpuRatio, ortCpuRatio: our end-to-end median / ORT session.run median (ratio: the same against PyTorch model(x)).',
    ],
    seconds,
    sizes: results,
    /** --f16: the hub size with precision 'f16' and 'f16-math' (empty without --f16). */
    f16,
    /** --tune: the tuner's choices at the hub size and the run on them (null without --tune). */
    tuned: tuned && {
      size: tuned.size,
      seconds: tuned.seconds,
      convs: tuned.convs.map((c) => ({ key: c.spec.key, tileKey: c.tileKey, rowsCan: c.rowsCan, best: c.best, builtin: c.builtin, timed: c.timed })),
      builtinMs: tuned.builtinMs,
      tunedMs: tuned.tunedMs,
    },
  });
  process.stderr.write(`wrote ${opts.json}\n`);
}

// ---- output ---------------------------------------------------------------------------------

const mib = (b: number) => fmt(b / MiB);
const pct = (v: number | null | undefined, digits = 1) => (v === null || v === undefined || !Number.isFinite(v) ? '' : (100 * v).toFixed(digits));

const SUMMARY: Column<SizeResult>[] = [
  { title: 'input', value: (r) => `${r.size}x${r.size}`, align: 'left' },
  { title: 'runs', value: (r) => String(r.runs) },
  { title: 'med ms', value: (r) => fmt(r.medianMs) },
  { title: 'min ms', value: (r) => fmt(r.minMs) },
  { title: 'warm-up', value: (r) => fmt(r.warmupMs) },
  { title: 'GFLOP', value: (r) => fmt(r.gflop) },
  { title: 'GFLOP/s', value: (r) => fmt(r.gflopsE2e) },
  { title: '%FMA', value: (r) => r.pctFmaE2e.toFixed(1) },
  { title: 'net GPU ms', value: (r) => fmt(r.profile?.networkGpuMs) },
  { title: 'net GFLOP/s', value: (r) => fmt(r.profile?.networkGflops) },
  { title: 'net %FMA', value: (r) => (r.profile ? r.profile.networkPctFma.toFixed(1) : '') },
  { title: 'peak MiB', value: (r) => mib(r.memory.peakLiveBytes) },
  { title: 'act. MiB', value: (r) => mib(r.memory.peakActivationBytes) },
  { title: 'largest MiB', value: (r) => mib(r.memory.largestActivationBytes) },
  { title: 'torch ms', value: (r) => fmt(r.torch?.medianMs) },
  { title: 'torch min', value: (r) => fmt(r.torch?.minMs) },
  { title: 'ours/torch', value: (r) => (r.ratio !== null ? `${fmt(r.ratio)}x` : '') },
  { title: 'ORT-webgpu ms', value: (r) => fmt(r.peers?.webgpu?.medianMs) },
  { title: 'ORT-cpu ms', value: (r) => fmt(r.peers?.cpu?.medianMs) },
  { title: 'ours/ORT-webgpu', value: (r) => (r.ortWebgpuRatio !== null ? `${fmt(r.ortWebgpuRatio)}x` : '') },
  { title: 'ours/ORT-cpu', value: (r) => (r.ortCpuRatio !== null ? `${fmt(r.ortCpuRatio)}x` : '') },
  { title: 'other%', value: (r) => pct(r.machine.othersCpuShare, 0) },
];

function header(
  adapter: string,
  f: { f16: boolean; timestamps: boolean; subgroups: boolean },
  flags: string[],
  ceil: CeilingResult,
  fmaTries: { gflops: number; othersCpuShare: number | null; when: string }[],
  load: MachineLoad,
  opts: E2eOptions,
  waitedMs: number,
  w: { params: number; bytes: number },
): string {
  const feats = [f.f16 && 'shader-f16', f.timestamps && 'timestamp-query', f.subgroups && 'subgroups'].filter(Boolean).join(', ');
  return [
    `midas-webgpu end-to-end bench${opts.quick ? ' (--quick)' : ''}: S x S RGB bytes -> depth Float32Array, ${MODELS[opts.model].title} (--model ${opts.model}; random weights, f32)`,
    `pipeline: ${
      opts.via === 'predict'
        ? 'Midas.predict as is'
        : "Midas.predict's steps (transform, network, bicubic back, read), recorded by the bench"
    }`,
    `command:  ${opts.command}`,
    `adapter:  ${adapter}`,
    `features: ${feats || 'none'}${flags.length ? `; dawn flags: ${flags.join(' ')}` : ''}`,
    `ceilings: FMA ${fmt(ceil.fma.rate)} GFLOP/s (awaited at once: ${fmt(ceil.fmaSpin.rate)}; one fma per chain per loop iteration: ${fmt(ceil.fmaRolled.rate)}), copy ${fmt(ceil.copy.rate)} GB/s, measured in this run (bench/ceiling.ts)` +
      `; FMA measured at the start and the end: ${fmaTries.map((f) => `${f.when} ${fmt(f.gflops)} (others ${pct(f.othersCpuShare, 0)}%)`).join(', ')}; the best counts`,
    `timing:   wall clock per image (after one warm-up); ${ceil.timing.useTimestamps ? 'timestamp queries for the breakdown' : `no breakdown (${ceil.timing.note})`}`,
    `weights:  ${(w.params / 1e6).toFixed(1)} M parameters, ${mib(w.bytes)} MiB f32`,
    `machine:  ${load.cores} CPU cores; other processes used ${load.othersCpuShare === null ? '?' : `${(100 * load.othersCpuShare).toFixed(0)}%`} of them over the whole run` +
      (opts.waitQuietS > 0
        ? ` (waited ${(waitedMs / 1000).toFixed(1)} s in all for a quiet CPU: up to ${opts.waitQuietS} s before each phase, ${Math.min(RUN_QUIET_S, opts.waitQuietS)} s before each run)`
        : '') +
      ((load.othersCpuShare ?? 0) > 0.1 ? ' -- BUSY: timings are skewed (lavapipe computes on the same CPU)' : ''),
    '',
  ].join('\n');
}

function summaryNotes(results: SizeResult[], torch: TorchResult | null, torchNote: string): string {
  const lines = [
    '',
    'med/min ms: end to end per image (RGB bytes in, depth Float32Array out). GFLOP/s = network FLOP / median; net = the network\'s',
    'passes only (GPU time from timestamps, the least disturbed run). peak = Runtime peakLiveBytes (weights included); act. = peak - weights;',
    'largest = the biggest single activation. other% = CPU share other processes took during the size\'s runs.',
  ];
  for (const r of results) {
    const checks = [`arch ${fmt(r.macs.total / 1e9, 4)}`];
    if (r.macs.fromDispatches !== null) checks.push(`dispatches ${fmt(r.macs.fromDispatches / 1e9, 4)}`);
    if (r.macs.torch !== null) checks.push(`PyTorch hooks ${fmt(r.macs.torch / 1e9, 4)}`);
    const agree = [r.macs.fromDispatches, r.macs.torch].every((v) => v === null || v === r.macs.total);
    lines.push(
      `GMAC at ${r.size}: ${checks.join(', ')} ${agree ? '(agree)' : '(DISAGREE)'}; encoder ${fmt(r.macs.encoder / 1e9)}, decoder ${fmt(r.macs.decoder / 1e9)}; ` +
        `weights ${mib(r.memory.weightsGpuBytes)} MiB on the device, ${mib(r.memory.heldBytes)} MiB held after the runs (live + pool)`,
    );
  }
  if (torch) {
    lines.push(
      `PyTorch ${torch.torch} CPU, ${torch.threads} threads, model(x) only (no pre/post); pipeline (u8 -> normalize -> model -> bicubic -> numpy): ` +
        results.map((r) => `${r.size}: ${fmt(r.torch?.pipelineMedianMs)} ms (ours/that ${fmt(r.pipelineRatio)}x)`).join(', ') +
        `; other processes took ${results.map((r) => pct(r.torch?.othersCpuShare, 0) + '%').join(', ')} of the CPU during its runs.`,
    );
  } else lines.push(`PyTorch: ${torchNote}`);
  const busy = results.filter((r) => (r.machine.othersCpuShare ?? 0) > 0.1);
  if (busy.length) {
    lines.push(
      `BUSY: other processes took over 10% of the CPU during ${busy.map((r) => `${r.size} (${pct(r.machine.othersCpuShare, 0)}%)`).join(', ')}: ` +
        'those times (and their ratios to PyTorch, measured separately) are inflated; rerun on a quiet machine.',
    );
  }
  return lines.join('\n');
}

const BREAKDOWN: Column<BreakdownRow>[] = [
  { title: 'stage', value: (r) => r.name, align: 'left' },
  { title: 'clock', value: (r) => r.clock, align: 'left' },
  { title: 'passes', value: (r) => (r.passes !== undefined ? String(r.passes) : '') },
  { title: 'ms', value: (r) => fmt(r.ms) },
  { title: 'share %', value: (r) => pct(r.share) },
  { title: 'GFLOP', value: (r) => (r.macs !== undefined ? fmt((2 * r.macs) / 1e9) : '') },
  { title: 'GFLOP/s', value: (r) => fmt(r.gflops) },
  { title: '%FMA', value: (r) => (r.pctFma !== undefined ? r.pctFma.toFixed(1) : '') },
  { title: 'min ms', value: (r) => fmt(r.minMs) },
  { title: 'min %FMA', value: (r) => (r.minPctFma !== undefined ? r.minPctFma.toFixed(1) : '') },
];

const KINDS: Column<KernelKindRow>[] = [
  { title: 'kernel', value: (r) => r.kind, align: 'left' },
  { title: 'passes', value: (r) => String(r.passes) },
  { title: 'ms', value: (r) => fmt(r.ms) },
  { title: 'min ms', value: (r) => fmt(r.minMs) },
  { title: '% of GPU', value: (r) => pct(r.shareOfGpu) },
  { title: 'ms/pass', value: (r) => fmt(r.ms / r.passes) },
  { title: 'GFLOP/s', value: (r) => fmt(r.gflops) },
  { title: '%FMA', value: (r) => (r.pctFma !== undefined ? r.pctFma.toFixed(1) : '') },
  { title: 'GB/s', value: (r) => fmt(r.gbps) },
  { title: '% copy', value: (r) => (r.pctCopy !== undefined ? r.pctCopy.toFixed(1) : '') },
];

const SHAPES: Column<ConvShapeRow>[] = [
  { title: 'conv (k/stride groups cin->cout @out)', value: (r) => r.shape, align: 'left' },
  { title: 'passes', value: (r) => String(r.passes) },
  { title: 'ms', value: (r) => fmt(r.ms) },
  { title: 'GFLOP/s here', value: (r) => fmt(r.gflops) },
  { title: 'bench kernels', value: (r) => fmt(r.kernelBenchGflops) },
  { title: 'here/kernels', value: (r) => (r.ratio !== undefined ? fmt(r.ratio, 2) : '') },
];

function breakdownText(r: SizeResult): string {
  const lines = ['', `== ${r.size}x${r.size}: breakdown of the least disturbed run (smallest GPU time; timestamp queries on every pass) ==`];
  const p = r.profile;
  if (!p) {
    lines.push(r.profileNote);
    return lines.join('\n');
  }
  lines.push(
    `run ${p.run} of ${r.runs}: wall ${fmt(p.wallMs)} ms (median of the runs ${fmt(r.medianMs)}); ` +
      `waited ${fmt(p.waitMs)} ms from submit to data; ` +
      `synchronous part ${fmt(p.hostSyncMs)} ms`,
    `GPU passes ${fmt(p.gpuMs)} ms, of which the network ${fmt(p.networkGpuMs)} ms = ${fmt(p.networkGflops)} GFLOP/s (${p.networkPctFma.toFixed(1)}% of the FMA ceiling)`,
    `min ms: each pass at its least time over the ${r.runs} timed runs (the noise of a shared CPU taken out): the network ${fmt(p.networkMinMs)} ms = ` +
      `${fmt(p.networkMinGflops)} GFLOP/s (${p.networkMinPctFma.toFixed(1)}% of the FMA ceiling)`,
  );
  lines.push(table(p.breakdown, BREAKDOWN));
  lines.push('', 'by kernel (all passes of the run; depthwise convs are bandwidth-bound: GB/s of their least traffic against the copy ceiling):');
  lines.push(table(p.kernels, KINDS));
  lines.push('', 'slowest passes:');
  for (const s of p.slowest) lines.push(`  ${fmt(s.ms).padStart(8)} ms  ${s.gflops !== undefined ? `${fmt(s.gflops).padStart(5)} GFLOP/s` : '             '}  ${s.label}`);
  if (p.convShapes) {
    lines.push('', `convs by shape, against the same shapes in bench kernels (${p.convShapes.some((c) => c.kernelBenchGflops !== undefined) ? 'bench/results-kernels.json' : 'no kernel-bench JSON found'}):`);
    lines.push(table(p.convShapes, SHAPES));
  }
  return lines.join('\n');
}

/** The largest of a size's output errors (every pair checked), and whether it agreed. */
function maxError(p: PeerSize | null): string {
  if (!p) return '';
  const e = [p.oursVsTorch, p.webgpu?.errorVsTorch, p.webgpu?.errorVsOurs, p.cpu?.errorVsTorch, p.cpu?.errorVsOurs].filter((v): v is number => typeof v === 'number');
  return e.length ? `${Math.max(...e).toExponential(1)}${p.agree ? '' : ' (DISAGREE)'}` : '';
}

function markdown(results: SizeResult[], adapter: string, ceil: CeilingResult, load: MachineLoad, torch: TorchResult | null, opts: E2eOptions): string {
  const ort = results.some((r) => r.peers?.webgpu || r.peers?.cpu);
  const ortVersion = results.flatMap((r) => [r.peers?.webgpu, r.peers?.cpu]).find((p) => p)?.ortVersion;
  const peerMs = (p: { medianMs: number; minMs: number; runs: number } | null | undefined, runs: number) =>
    p ? `${fmt(p.medianMs)} (${fmt(p.minMs)})${p.runs !== runs ? ` [${p.runs} run${p.runs > 1 ? 's' : ''}]` : ''}` : '';
  const x = (v: number | null) => (v !== null ? `${fmt(v)}x` : '');
  const lines = [
    '',
    '---- markdown (README) ----',
    '',
    `\`${opts.command}\` on ${adapter.split(' / ').pop()} (${load.cores} CPU cores; FMA ceiling measured in the same run: ${fmt(ceil.fma.rate)} GFLOP/s${
      load.othersCpuShare !== null ? `; other processes took ${(100 * load.othersCpuShare).toFixed(0)}% of the CPU` : ''
    }). End to end = ${
      opts.via === 'predict' ? '`Midas.predict`' : "`Midas.predict`'s steps"
    } on an S x S RGB image: upload, hub transform, network, bicubic back, readback; median (min) of ${[...new Set(results.map((r) => r.runs))].join('/')} runs after a warm-up. ` +
      (torch ? `PyTorch ${torch.torch} CPU with ${torch.threads} threads runs \`model(x)\` alone (no pre/post), after ours, at least ${DEFAULT_RUNS} runs and 3 s per size.` : 'No PyTorch comparison in this run.') +
      (ort
        ? ` ONNX Runtime node ${ortVersion} runs \`session.run\` on the same network exported by PyTorch (the network alone, on our network input), WebGPU EP on the same adapter, then CPU EP with 2 threads, each in its own process after ours and PyTorch;` +
          ` all on the same random weights, outputs checked to agree within ${OUTPUT_TOLERANCE.toExponential(0)} of the range.`
        : ' No ONNX Runtime comparison in this run.'),
    '',
    '| input | ms / image (median, min) | GFLOP | GFLOP/s | % of FMA ceiling | network GPU GFLOP/s | peak GPU memory (weights) | PyTorch CPU ms (median, min) |' +
      (ort ? ' ORT WebGPU ms | ORT CPU ms |' : '') +
      ' ours / PyTorch |' +
      (ort ? ' ours / ORT WebGPU | ours / ORT CPU | max output error (of range) |' : ''),
    '|---|---:|---:|---:|---:|---:|---:|---:|' + (ort ? '---:|---:|' : '') + '---:|' + (ort ? '---:|---:|---:|' : ''),
  ];
  for (const r of results) {
    lines.push(
      `| ${r.size}x${r.size} | ${fmt(r.medianMs, 4)} (${fmt(r.minMs, 4)}) | ${fmt(r.gflop)} | ${fmt(r.gflopsE2e)} | ${r.pctFmaE2e.toFixed(1)}% | ` +
        `${r.profile ? fmt(r.profile.networkGflops) : ''} | ${fmt(r.memory.peakLiveBytes / MiB, 4)} MiB (${fmt(r.memory.weightsGpuBytes / MiB, 3)}) | ` +
        `${r.torch ? `${fmt(r.torch.medianMs)} (${fmt(r.torch.minMs)})` : ''} |` +
        (ort ? ` ${peerMs(r.peers?.webgpu, r.runs)} | ${peerMs(r.peers?.cpu, r.runs)} |` : '') +
        ` ${x(r.ratio)} |` +
        (ort ? ` ${x(r.ortWebgpuRatio)} | ${x(r.ortCpuRatio)} | ${maxError(r.peers)} |` : ''),
    );
  }
  const busy = results.filter((r) => (r.machine.othersCpuShare ?? 0) > 0.1);
  if (busy.length) {
    lines.push('', `Other processes took ${busy.map((r) => `${pct(r.machine.othersCpuShare, 0)}% of the CPU during the ${r.size}x${r.size} runs`).join(', ')}: those rows are slower than on a quiet machine.`);
  }
  // The breakdown at the model's hub size (v2: 384, small: 256) when it ran.
  const hub = MODELS[opts.model].size;
  const ref = results.find((r) => r.size === hub && r.profile) ?? [...results].reverse().find((r) => r.profile);
  if (ref?.profile) {
    lines.push(
      '',
      `Where the time goes at ${ref.size}x${ref.size} (run ${ref.profile.run} of ${ref.runs}, the one with the smallest GPU time: ${fmt(ref.profile.wallMs, 4)} ms wall; GPU stages from timestamp queries):`,
      '',
      '| stage | ms | share | GFLOP/s | % of FMA | least ms over the runs (% of FMA) |',
      '|---|---:|---:|---:|---:|---:|',
    );
    for (const b of ref.profile.breakdown) {
      const least = b.minMs !== undefined ? `${fmt(b.minMs)}${b.minPctFma !== undefined ? ` (${b.minPctFma.toFixed(1)}%)` : ''}` : '';
      lines.push(`| ${b.name} | ${fmt(b.ms)} | ${pct(b.share)}% | ${b.gflops !== undefined ? fmt(b.gflops) : ''} | ${b.pctFma !== undefined ? `${b.pctFma.toFixed(1)}%` : ''} | ${least} |`);
    }
  }
  return lines.join('\n');
}
