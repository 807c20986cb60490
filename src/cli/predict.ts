// `midas predict`: images, videos or folders in, depth maps out, one bad input never stops the rest.
import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { COLOR_MAPS, finiteRange, type ColorMapName, type ValueRange } from '../midas/colormap.js';
import type { Timing } from '../nn/profiler.js';
import type { DispatchRecord } from '../nn/runtime.js';
import type { Precision } from '../midas/network.js';
import { writeColorPng, writePfm, writePng16 } from '../node/outputs.js';
import { UsageError, type Command } from './command.js';
import { ADAPTER_OPTION, ADAPTER_USAGE, cliAdapter } from './adapter.js';
import { cliModel, MODEL_OPTION, MODEL_USAGE } from './arch.js';
import { loadWithProgress, resolveModel } from './load.js';
import { parseOptions, parseSize } from './main.js';
import { ProgressBar } from './progress.js';
import { checkFfmpeg, isVideoFile } from '../node/video.js';
import { predictVideo, videoOutputName, type Normalize } from './predict-video.js';
import { parseShard, takeShard } from './shard.js';

const FORMATS = ['pfm', 'png', 'color'] as const;
type Format = (typeof FORMATS)[number];
const IMAGE_EXT = /\.(jpe?g|png)$/i;

const USAGE = `Usage: midas predict <images, videos or folders...> [options]

Writes relative inverse depth (larger = nearer) for each JPEG or PNG, and for each
video (.mp4 .mov .mkv .webm .avi .m4v, decoded by the system's ffmpeg) frame by frame.

Options:
  -o, --output DIR       output folder (default: ./output)
  -f, --format LIST      comma-separated: pfm, png, color (default: png,color)
                           pfm    DIR/<stem>.pfm        float32, as MiDaS's run.py writes it
                           png    DIR/<stem>.png        16-bit gray, min-max scaled
                           color  DIR/<stem>-color.png  colour map, min-max scaled
                         for a video: color is DIR/<stem>-color.mp4 (H.264, the source's
                         frame rate and size, an odd side padded by one pixel; no audio),
                         png and pfm are DIR/<stem>/000001.png, 000002.png, ...
      --colormap NAME    inferno or turbo (default: inferno)
${MODEL_USAGE}
  -w, --weights FILE     converted .safetensors or a PyTorch .pt checkpoint (converted
                         once and cached). Default: the model's official checkpoint,
                         downloaded to $MIDAS_HOME (~/.cache/midas-webgpu) on first use.
  -s, --size N           network input side, a positive multiple of 32 (default: the
                         model's, 384 or 256)
      --precision P      f32, f16 (half-precision weights on the GPU) or f16-math (also
                         multiplies in f16, sums in f32) (default: f32)
${ADAPTER_USAGE}
      --overwrite        replace existing outputs (default: images whose outputs all
                         exist are skipped)
      --normalize MODE   how png and color pictures are scaled: image (each image's own
                         min..max, the default for images), video (each frame fitted to
                         the previous ones by least-squares scale and shift, so a steady
                         scene stays steady: the default for videos; images as image),
                         batch (one range over all images of the run, or over all frames
                         of a video: two passes over it; redoes every image), or
                         fixed:MIN,MAX (a set range, values outside clip; reproducible)
      --shard K/N        only every N-th input of the sorted list, from the K-th (0-based):
                         N jobs given 0/N .. N-1/N split the inputs with no coordinator
      --profile          print each image's GPU time, then every layer in forward order
                         with its GPU time, share and GFLOP/s
      --trace            print every dispatch as it is recorded, then its GPU time
                         (also MIDAS_DEBUG=1)
  -q, --quiet            no progress bar

Videos need ffmpeg and ffprobe on PATH (Debian: apt-get install ffmpeg). Their audio
is not carried over. Frames are written to DIR/.<stem>.partial/ and renamed when the
last is done; a killed run resumes at its first missing frame.

Exit status: 0 when every input was written, 1 when any failed, 2 on bad arguments.`;

interface Job {
  input: string;
  outputs: { format: Format; file: string }[];
}

function parseFormats(text: string): Format[] {
  const list = text.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = list.filter((f) => !(FORMATS as readonly string[]).includes(f));
  if (bad.length || !list.length) {
    throw new UsageError(`unknown --format '${bad.join(',') || text}' (choose from ${FORMATS.join(', ')})`);
  }
  return [...new Set(list)] as Format[];
}

/** The images named on the command line, folders expanded (sorted, not recursive). Problems go to `errors`. */
function collectInputs(args: string[], errors: string[]): string[] {
  const out: string[] = [];
  for (const arg of args) {
    let st;
    try {
      st = statSync(arg);
    } catch {
      errors.push(`${arg}: no such file or folder`);
      continue;
    }
    if (st.isDirectory()) {
      const found = readdirSync(arg)
        .filter((n) => IMAGE_EXT.test(n) || isVideoFile(n))
        .sort()
        .map((n) => path.join(arg, n))
        .filter((p) => statSync(p).isFile());
      if (!found.length) errors.push(`${arg}: folder has no .jpg, .jpeg or .png images and no videos`);
      out.push(...found);
    } else {
      out.push(arg);
    }
  }
  return out;
}

function parseNormalize(text: string): Normalize {
  if (text === 'image' || text === 'video' || text === 'batch') return { kind: text };
  const m = /^fixed:([^,]+),([^,]+)$/.exec(text);
  const min = m ? Number(m[1]) : NaN;
  const max = m ? Number(m[2]) : NaN;
  if (!Number.isFinite(min) || !Number.isFinite(max) || !(max > min)) {
    throw new UsageError(`--normalize must be image, video, batch or fixed:MIN,MAX with MIN < MAX (got '${text}')`);
  }
  return { kind: 'fixed', range: { min, max } };
}

/**
 * --profile / --trace: each image's GPU time, then every layer in forward order with
 * its time, share and GFLOP/s (profile), or every dispatch with its time (trace).
 */
function reportTimes(input: string, timings: Timing[], records: readonly DispatchRecord[], wallMs: number, all: boolean): void {
  const total = timings.reduce((a, t) => a + t.ms, 0);
  console.error(`${input}: ${wallMs.toFixed(0)} ms, ${total.toFixed(0)} ms on the GPU in ${timings.length} dispatches`);
  if (all) {
    for (const t of timings) console.error(`  ${t.ms.toFixed(3).padStart(9)} ms  ${t.label}`);
    return;
  }
  // One row per module key (a conv with its fused work, a fusion block's add, …), in order.
  const rows = new Map<string, { ms: number; macs: number }>();
  timings.forEach((t, i) => {
    const key = t.label.includes(': ') ? t.label.slice(0, t.label.indexOf(': ')) : `(${t.label.split(' ')[0]})`;
    const row = rows.get(key) ?? { ms: 0, macs: 0 };
    row.ms += t.ms;
    row.macs += records[i]?.macs ?? 0;
    rows.set(key, row);
  });
  const width = Math.max(...[...rows.keys()].map((k) => k.length));
  console.error(`  ${'layer'.padEnd(width)}        ms  share  GFLOP/s`);
  for (const [key, r] of rows) {
    const rate = r.macs ? ((2 * r.macs) / r.ms / 1e6).toFixed(1) : '';
    console.error(`  ${key.padEnd(width)} ${r.ms.toFixed(2).padStart(9)} ${((100 * r.ms) / total).toFixed(1).padStart(5)}%  ${rate.padStart(7)}`);
  }
}

function outputName(input: string, stem: string, format: Format): string {
  if (isVideoFile(input)) return videoOutputName(stem, format);
  return format === 'pfm' ? `${stem}.pfm` : format === 'png' ? `${stem}.png` : `${stem}-color.png`;
}

function planJobs(inputs: string[], outDir: string, formats: Format[], errors: string[]): Job[] {
  const jobs: Job[] = [];
  const claimed = new Map<string, string>();
  const inputSet = new Set(inputs.map((p) => path.resolve(p)));
  for (const input of inputs) {
    const stem = path.basename(input).replace(/\.[^.]*$/, '');
    const outputs = formats.map((format) => ({ format, file: path.join(outDir, outputName(input, stem, format)) }));
    const clash = outputs.find((o) => claimed.has(path.resolve(o.file)) || inputSet.has(path.resolve(o.file)));
    if (clash) {
      const other = claimed.get(path.resolve(clash.file));
      errors.push(
        other
          ? `${input}: its output ${clash.file} is also ${other}'s; rename one or predict them separately`
          : `${input}: its output ${clash.file} would overwrite an input; choose another -o folder`,
      );
      continue;
    }
    for (const o of outputs) claimed.set(path.resolve(o.file), input);
    jobs.push({ input, outputs });
  }
  return jobs;
}

/**
 * Temporary files (`.<name>.tmp-<pid>-<hex>`, see writeFileAtomic) left by a run that
 * was killed: removed when their process is gone.
 */
function removeStaleTemporaries(dir: string): void {
  for (const name of readdirSync(dir)) {
    const m = /^\..+\.tmp-(\d+)-[0-9a-f]+$/.exec(name);
    if (!m) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') rmSync(path.join(dir, name), { force: true });
    }
  }
}

export const predictCommand: Command = {
  name: 'predict',
  summary: 'depth maps for images or folders of images',
  usage: USAGE,
  async run(argv) {
    const { values, positionals } = parseOptions(argv, {
      output: { type: 'string', short: 'o' },
      format: { type: 'string', short: 'f' },
      colormap: { type: 'string' },
      ...MODEL_OPTION,
      weights: { type: 'string', short: 'w' },
      size: { type: 'string', short: 's' },
      precision: { type: 'string' },
      ...ADAPTER_OPTION,
      overwrite: { type: 'boolean' },
      normalize: { type: 'string' },
      shard: { type: 'string' },
      trace: { type: 'boolean' },
      profile: { type: 'boolean' },
      quiet: { type: 'boolean', short: 'q' },
    });
    if (!positionals.length) throw new UsageError('no images given (see midas predict --help)');
    const formats = parseFormats((values['format'] as string | undefined) ?? 'png,color');
    const size = parseSize(values['size'] as string | undefined);
    const modelChoice = cliModel(values);
    const precision = ((values['precision'] as string | undefined) ?? 'f32') as Precision;
    if (precision !== 'f32' && precision !== 'f16' && precision !== 'f16-math') {
      throw new UsageError(`--precision must be f32, f16 or f16-math (got '${precision}')`);
    }
    const colormap = ((values['colormap'] as string | undefined) ?? 'inferno') as ColorMapName;
    if (!COLOR_MAPS.includes(colormap)) throw new UsageError(`unknown --colormap '${colormap}' (choose from ${COLOR_MAPS.join(', ')})`);
    const overwrite = !!values['overwrite'];
    const quiet = !!values['quiet'];
    const normalizeOption = values['normalize'] === undefined ? undefined : parseNormalize(values['normalize'] as string);
    // Images have no sequence to be steady over: `video` scales them as `image` does.
    const normalize: Normalize = normalizeOption?.kind === 'video' ? { kind: 'image' } : normalizeOption ?? { kind: 'image' };
    const videoNormalize: Normalize = normalizeOption ?? { kind: 'video' };
    const shard = values['shard'] === undefined ? undefined : parseShard(values['shard'] as string);
    const trace = !!values['trace'] || !!process.env['MIDAS_DEBUG'];
    const profile = !!values['profile'];
    const writePictures = (job: Job, depth: Float32Array, width: number, height: number, range?: ValueRange) => {
      for (const o of job.outputs) {
        if (o.format === 'png') writePng16(o.file, depth, width, height, { overwrite, range });
        else if (o.format === 'color') writeColorPng(o.file, depth, width, height, colormap, { overwrite, range });
      }
    };
    const outDir = (values['output'] as string | undefined) ?? 'output';

    try {
      mkdirSync(outDir, { recursive: true });
      accessSync(outDir, constants.W_OK);
    } catch (e) {
      throw new Error(`${outDir}: cannot write to the output folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }

    removeStaleTemporaries(outDir);
    const errors: string[] = [];
    let failed = 0;
    const inputs = collectInputs(positionals, errors);
    const jobs = planJobs(shard ? takeShard(inputs, shard) : inputs, outDir, formats, errors);
    if (normalizeOption?.kind === 'batch' && !overwrite) {
      const existing = jobs.flatMap((j) => j.outputs.filter((o) => o.format !== 'pfm' && existsSync(o.file)));
      if (existing.length) {
        throw new UsageError(`--normalize batch redoes every picture of the run, and ${existing[0]!.file} exists: add --overwrite`);
      }
    }
    const todo = overwrite || normalize.kind === 'batch' ? jobs : jobs.filter((j) => !j.outputs.every((o) => existsSync(o.file)));
    const skipped = jobs.length - todo.length;
    if (skipped && !quiet) console.error(`skipping ${skipped} input(s) whose outputs exist (use --overwrite to redo them)`);
    if (shard && !quiet) console.error(`shard ${shard.index}/${shard.count}: ${jobs.length} of ${inputs.length} inputs`);
    // Before the model loads: without ffmpeg no video can be read.
    if (todo.some((j) => isVideoFile(j.input))) await checkFfmpeg();

    if (todo.length) {
      // The adapter first: a name that matches none fails before any download.
      const adapter = await cliAdapter(values);
      const model = await loadWithProgress(await resolveModel(values['weights'] as string | undefined, modelChoice, quiet), { size, precision, adapter });
      const rt = model.runtime;
      rt.trace = trace;
      const timed = (trace || profile) && rt.features.timestamps;
      if ((trace || profile) && !rt.features.timestamps) console.error('this adapter has no timestamp-query feature: times are CPU-side, per image');
      const bar = new ProgressBar({ label: 'predict', total: todo.length, unit: 'items' });
      // --normalize batch: depth maps wait in temporary files until the range over all is known.
      const pending: { job: Job; file: string; width: number; height: number }[] = [];
      let batchRange = { min: Infinity, max: -Infinity };
      try {
        for (let i = 0; i < todo.length; i++) {
          const job = todo[i]!;
          if (isVideoFile(job.input)) {
            bar.clear();
            try {
              const r = await predictVideo(model, job, { overwrite, quiet: quiet || trace || profile, colormap, normalize: videoNormalize });
              if (!quiet) {
                const { width, height, fps } = r.info;
                const rate = r.seconds > 0 ? (r.predicted / r.seconds).toFixed(2) : '-';
                console.error(`${job.input}: ${width}x${height} at ${+fps.toFixed(3)} fps, ${r.predicted} frames predicted in ${r.seconds.toFixed(1)} s (${rate} frames/s) -> ${job.outputs.map((o) => o.file).filter((f, k, all) => all.indexOf(f) === k).join(', ')}`);
              }
            } catch (e) {
              const msg = (e as Error).message;
              errors.push(msg.includes(job.input) ? msg : `${job.input}: ${msg}`);
              failed++;
            }
            continue;
          }
          if (!quiet && !trace && !profile) bar.update(i, path.basename(job.input));
          try {
            if (timed) {
              rt.startProfile();
              rt.records = [];
            }
            const t0 = performance.now();
            const { depth, width, height } = await model.predict(job.input);
            const ms = performance.now() - t0;
            if (timed) {
              const records = rt.records ?? [];
              rt.records = null;
              reportTimes(job.input, await rt.stopProfile(), records, ms, trace);
            }
            else if (trace || profile) console.error(`${job.input}: ${ms.toFixed(0)} ms`);
            for (const o of job.outputs) {
              if (o.format === 'pfm') writePfm(o.file, depth, width, height, { overwrite });
            }
            const pictures = job.outputs.filter((o) => o.format !== 'pfm');
            if (normalize.kind === 'batch' && pictures.length) {
              const r = finiteRange(depth);
              batchRange = { min: Math.min(batchRange.min, r.min), max: Math.max(batchRange.max, r.max) };
              const file = path.join(outDir, `.${path.basename(pictures[0]!.file)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
              writeFileSync(file, depth);
              pending.push({ job, file, width, height });
            } else {
              writePictures(job, depth, width, height, normalize.kind === 'fixed' ? normalize.range : undefined);
            }
          } catch (e) {
            const msg = (e as Error).message;
            errors.push(msg.includes(job.input) ? msg : `${job.input}: ${msg}`);
            failed++;
          }
        }
        for (const p of pending) {
          try {
            const bytes = readFileSync(p.file);
            const depth = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
            writePictures(p.job, depth, p.width, p.height, batchRange);
          } catch (e) {
            errors.push(`${p.job.input}: ${(e as Error).message}`);
            failed++;
          }
        }
        if (normalize.kind === 'batch' && !quiet && pending.length) {
          console.error(`--normalize batch: one range for all pictures, ${batchRange.min} .. ${batchRange.max}`);
        }
        if (!quiet) bar.update(todo.length);
      } finally {
        for (const p of pending) rmSync(p.file, { force: true });
        bar.clear();
        model.dispose();
      }
    }
    if (!quiet) console.error(`${todo.length - failed} written, ${skipped} skipped, ${errors.length} failed -> ${outDir}`);
    for (const e of errors) console.error(`error: ${e}`);
    return errors.length ? 1 : 0;
  },
};
