// `bench e2e --video`: a video through the model, the way `midas predict clip.mp4` runs
// it, with each part timed on its own. Per model (random weights, as the rest of the
// e2e bench) and size S: ffmpeg makes an S x S H.264 clip of a moving test pattern;
// then, one after another,
//   decode     readVideoFrames over the whole clip (ffmpeg into a rawvideo pipe)
//   loop       `Midas.predict` on each decoded frame in turn
//   pipelined  `Midas.predictFrames` on the same frames (the next frame recorded and
//              submitted while the current one computes)
//   colour     the colour map of each depth (CPU)
//   encode     VideoWriter: the colour frames to H.264 through ffmpeg
//   streamed   file to file in one pass (decode -> predictFrames -> colour -> encode),
//              as the CLI does, where ffmpeg's work overlaps the GPU's
// The decode and encode shares are of the sequential sum (decode + pipelined + colour
// + encode). Loop and pipelined run alternately for --runs rounds (the host's speed
// drifts: alternating keeps the comparison fair); the medians count.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { colorize, finiteRange } from '../src/midas/colormap.js';
import { Midas, type DepthResult } from '../src/midas/model.js';
import { MODELS, type ModelName } from '../src/midas/models.js';
import type { RgbImage } from '../src/midas/transform.js';
import { runTool } from '../src/node/ffmpeg.js';
import { probeVideo, readVideoFrames, VideoWriter } from '../src/node/video.js';
import { Runtime } from '../src/nn/runtime.js';
import { benchGpu } from './gpu.js';
import { waitQuiet, watchLoad, type MachineLoad } from './machine.js';
import { randomWeights } from './random-weights.js';
import { fmt, writeJson } from './report.js';
import { median } from './timing.js';

export interface VideoBenchOptions {
  models: ModelName[];
  sizes: number[];
  /** Frames in the clip. */
  frames: number;
  /** Alternating rounds of loop and pipelined. */
  runs: number;
  json: string;
  /** Before each model, wait up to this many seconds for a quiet CPU (0: don't). */
  waitQuietS: number;
  command: string;
}

export const DEFAULT_VIDEO_FRAMES = 8;
export const DEFAULT_VIDEO_SIZES = [256];

export interface VideoResult {
  model: ModelName;
  size: number;
  frames: number;
  /** Milliseconds for the whole clip (loop and pipelined: the median over the rounds). */
  ms: { decode: number; loop: number; pipelined: number; colour: number; encode: number; streamed: number; warmup: number };
  loopRuns: number[];
  pipelinedRuns: number[];
  fps: { loop: number; pipelined: number; streamed: number };
  /** pipelined frames/s over loop frames/s. */
  gain: number;
  /** Of decode + pipelined + colour + encode. */
  share: { decode: number; colour: number; encode: number };
  load: MachineLoad;
}

const now = () => performance.now();

async function ffmpeg(args: string[]): Promise<void> {
  const r = await runTool('ffmpeg', ['-nostdin', '-v', 'error', ...args]);
  if (r.code !== 0) throw new Error(`ffmpeg ${args.join(' ')}: ${r.stderr.trim()}`);
}

async function decodeAll(file: string): Promise<RgbImage[]> {
  const info = await probeVideo(file);
  const frames: RgbImage[] = [];
  for await (const f of readVideoFrames(file, { info })) frames.push({ data: f.data, width: f.width, height: f.height });
  return frames;
}

async function predictLoop(midas: Midas, frames: RgbImage[]): Promise<DepthResult[]> {
  const out: DepthResult[] = [];
  for (const f of frames) out.push(await midas.predict(f));
  return out;
}

async function predictPipelined(midas: Midas, frames: RgbImage[]): Promise<DepthResult[]> {
  const out: DepthResult[] = [];
  for await (const r of midas.predictFrames(frames)) out.push(r);
  return out;
}

async function videoCase(gpu: GPU, model: ModelName, size: number, opts: VideoBenchOptions, dir: string): Promise<VideoResult> {
  const log = (s: string) => process.stderr.write(`  [${model} ${size}] ${s}\n`);
  const watch = watchLoad();
  const clip = join(dir, `${model}-${size}.mp4`);
  const encoded = join(dir, `${model}-${size}-color.mp4`);
  const streamedFile = join(dir, `${model}-${size}-streamed.mp4`);
  // A moving pattern at 30 frames/s, H.264 as a camera or phone would give it.
  await ffmpeg(['-f', 'lavfi', '-i', `testsrc2=size=${size}x${size}:rate=30`, '-frames:v', String(opts.frames), '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-y', clip]);

  let t = now();
  const frames = await decodeAll(clip);
  const decode = now() - t;
  if (frames.length !== opts.frames) throw new Error(`${clip}: decoded ${frames.length} frames, made ${opts.frames}`);
  log(`decoded ${frames.length} frames in ${fmt(decode)} ms`);

  const rt = await Runtime.create(gpu);
  const midas = new Midas(rt, randomWeights(MODELS[model].config), { size, config: MODELS[model].config });
  try {
    t = now();
    await midas.predict(frames[0]!); // compiles the pipelines
    const warmup = now() - t;
    log(`warm-up predict ${fmt(warmup)} ms`);

    const loopRuns: number[] = [];
    const pipelinedRuns: number[] = [];
    let depths: DepthResult[] = [];
    for (let round = 0; round < opts.runs; round++) {
      t = now();
      await predictLoop(midas, frames);
      loopRuns.push(now() - t);
      t = now();
      depths = await predictPipelined(midas, frames);
      pipelinedRuns.push(now() - t);
      log(`round ${round + 1}: loop of predict ${fmt(loopRuns.at(-1)!)} ms, predictFrames ${fmt(pipelinedRuns.at(-1)!)} ms`);
    }

    // One range for the clip, as --normalize batch: the colour frames are comparable.
    let lo = Infinity;
    let hi = -Infinity;
    for (const d of depths) {
      const r = finiteRange(d.depth);
      lo = Math.min(lo, r.min);
      hi = Math.max(hi, r.max);
    }
    t = now();
    const colours = depths.map((d) => colorize(d.depth, 'inferno', { min: lo, max: hi }));
    const colour = now() - t;

    t = now();
    const writer = new VideoWriter(encoded, { width: size, height: size, frameRate: 30 });
    for (const c of colours) await writer.write(c);
    await writer.close();
    const encode = now() - t;
    log(`colour map ${fmt(colour)} ms, encode ${fmt(encode)} ms`);

    t = now();
    const info = await probeVideo(clip);
    const out = new VideoWriter(streamedFile, { width: info.width, height: info.height, frameRate: info.frameRate });
    let n = 0;
    for await (const d of midas.predictFrames(readVideoFrames(clip, { info }))) {
      await out.write(colorize(d.depth, 'inferno', { min: lo, max: hi }));
      n++;
    }
    await out.close();
    const streamed = now() - t;
    if (n !== opts.frames) throw new Error(`streamed ${n} frames of ${opts.frames}`);
    log(`streamed file to file ${fmt(streamed)} ms`);

    const loop = median(loopRuns);
    const pipelined = median(pipelinedRuns);
    const fps = (ms: number) => (1000 * opts.frames) / ms;
    const sequential = decode + pipelined + colour + encode;
    return {
      model,
      size,
      frames: opts.frames,
      ms: { decode, loop, pipelined, colour, encode, streamed, warmup },
      loopRuns,
      pipelinedRuns,
      fps: { loop: fps(loop), pipelined: fps(pipelined), streamed: fps(streamed) },
      gain: loop / pipelined,
      share: { decode: decode / sequential, colour: colour / sequential, encode: encode / sequential },
      load: watch(),
    };
  } finally {
    midas.dispose();
    rt.destroy();
  }
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export function videoTable(results: VideoResult[]): string {
  const head = [
    "| model | clip | loop of `predict` | `predictFrames` | gain | decode | colour map | encode | streamed file to file | others' CPU |",
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const rows = results.map((r) => {
    const per = (ms: number) => `${fmt(ms / r.frames)} ms/frame`;
    return (
      `| ${MODELS[r.model].title.replace(/ \(.*/, '')} at ${r.size} | ${r.frames} frames ${r.size}×${r.size} ` +
      `| ${r.fps.loop.toFixed(2)} frames/s | ${r.fps.pipelined.toFixed(2)} frames/s | ${r.gain.toFixed(2)}× ` +
      `| ${per(r.ms.decode)} (${pct(r.share.decode)}) | ${per(r.ms.colour)} (${pct(r.share.colour)}) | ${per(r.ms.encode)} (${pct(r.share.encode)}) ` +
      `| ${r.fps.streamed.toFixed(2)} frames/s | ${r.load.othersCpuShare === null ? '?' : pct(r.load.othersCpuShare)} |`
    );
  });
  return [...head, ...rows].join('\n');
}

export async function runVideoBench(opts: VideoBenchOptions): Promise<VideoResult[]> {
  const started = now();
  const { gpu } = benchGpu();
  const dir = mkdtempSync(join(tmpdir(), 'midas-bench-video-'));
  const results: VideoResult[] = [];
  let adapter = '';
  try {
    for (const model of opts.models) {
      for (const size of opts.sizes) {
        if (opts.waitQuietS > 0) await waitQuiet(opts.waitQuietS * 1000);
        process.stderr.write(`${model} at ${size}x${size}: a ${opts.frames}-frame clip, ${opts.runs} round(s) of loop and predictFrames\n`);
        results.push(await videoCase(gpu, model, size, opts, dir));
      }
    }
    const rt = await Runtime.create(gpu);
    adapter = rt.adapterName;
    rt.destroy();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const seconds = (now() - started) / 1000;
  console.log(`\`${opts.command}\` (adapter ${adapter}; random weights; ${opts.frames} frames; ${fmt(seconds, 1)} s)\n`);
  console.log(videoTable(results));
  console.log(
    '\nloop / predictFrames: the median over the rounds; decode, colour map and encode: their share of decode + predictFrames + colour map + encode, run one after another;' +
      ' streamed: decode -> predictFrames -> colour map -> encode in one pass, as `midas predict clip.mp4` runs;' +
      " others' CPU: the share of the machine's CPU time other processes took meanwhile (lavapipe computes on the CPU).",
  );
  writeJson(opts.json, { command: opts.command, date: new Date().toISOString(), adapter, seconds, frames: opts.frames, runs: opts.runs, results });
  return results;
}
