// `midas predict clip.mp4`: one video in, its depth out as a colour-mapped MP4 and/or
// a folder of per-frame PNG/PFM files. Frames stream through ffmpeg one at a time
// (src/node/video.ts) and through the network two at a time (predictFrames).
//
// Nothing partial is left as if it were finished: the MP4 is encoded under a temporary
// name and renamed when complete; frames go to `DIR/.<stem>.partial/`, renamed to
// `DIR/<stem>/` after the last one. A killed run's partial folder stays, and the next
// run resumes at its first missing frame; a failure (a corrupt file, …) removes it.
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { colorize, finiteRange, type ColorMapName, type ValueRange } from '../midas/colormap.js';
import { TemporalNormalizer } from '../midas/temporal.js';
import type { DepthResult } from '../midas/model.js';
import type { MidasModel } from '../node/load.js';
import { readPng16, writePfm, writePng16 } from '../node/outputs.js';
import { probeVideo, readVideoFrames, VideoError, VideoWriter, type VideoFrame, type VideoInfo } from '../node/video.js';
import { ProgressBar } from './progress.js';

export type Format = 'pfm' | 'png' | 'color';

/** How the png and color pictures are scaled (--normalize). */
export type Normalize = { kind: 'image' } | { kind: 'video' } | { kind: 'batch' } | { kind: 'fixed'; range: ValueRange };

/** A video's outputs: `color` is `DIR/<stem>-color.mp4`; `png` and `pfm` share the frame folder `DIR/<stem>`. */
export function videoOutputName(stem: string, format: Format): string {
  return format === 'color' ? `${stem}-color.mp4` : stem;
}

export interface VideoJob {
  input: string;
  outputs: { format: Format; file: string }[];
}

export interface VideoRunOptions {
  overwrite: boolean;
  quiet: boolean;
  colormap: ColorMapName;
  normalize: Normalize;
}

export interface VideoRunResult {
  info: VideoInfo;
  /** Frames the network ran on (a resumed run skips those already written). */
  predicted: number;
  seconds: number;
}

const frameName = (index: number, ext: 'png' | 'pfm') => `${String(index + 1).padStart(6, '0')}.${ext}`;

/** Why a finished frame folder cannot be taken as done for these formats, or null. */
export function frameFolderProblem(folder: string, formats: readonly Format[]): string | null {
  if (!existsSync(folder)) return null;
  const missing = formats.filter((f): f is 'png' | 'pfm' => f !== 'color').find((f) => !existsSync(path.join(folder, frameName(0, f))));
  return missing ? `${folder} holds this video's frames but no .${missing} files: add --overwrite to redo them` : null;
}

export async function predictVideo(model: MidasModel, job: VideoJob, o: VideoRunOptions): Promise<VideoRunResult> {
  const started = performance.now();
  const info = await probeVideo(job.input);
  const color = job.outputs.find((x) => x.format === 'color');
  const frameFormats = job.outputs.map((x) => x.format).filter((f): f is 'png' | 'pfm' => f !== 'color');
  const folder = frameFormats.length ? job.outputs.find((x) => x.format !== 'color')!.file : null;
  const partial = folder ? path.join(path.dirname(folder), `.${path.basename(folder)}.partial`) : null;
  const needColor = !!color && (o.overwrite || !existsSync(color.file));
  const needFrames = !!folder && (o.overwrite || !existsSync(folder));
  if (folder && !needFrames) {
    const problem = frameFolderProblem(folder, frameFormats);
    if (problem) throw new Error(problem);
  }
  const pictures = needColor || (needFrames && frameFormats.includes('png'));

  if (partial && needFrames) {
    if (o.overwrite) rmSync(partial, { recursive: true, force: true });
    mkdirSync(partial, { recursive: true });
  }
  const frameFile = (index: number, ext: 'png' | 'pfm') => path.join(partial!, frameName(index, ext));
  const missing = (index: number, ext: 'png' | 'pfm') => needFrames && frameFormats.includes(ext) && !existsSync(frameFile(index, ext));

  // Without a colour video to make, a resumed run starts at the first missing frame;
  // batch needs every frame for its range first, whatever was written.
  let startAt = 0;
  if (!needColor && o.normalize.kind !== 'batch' && needFrames) {
    while (frameFormats.every((f) => existsSync(frameFile(startAt, f)))) startAt++;
  }
  const bar = new ProgressBar({ label: path.basename(job.input), total: info.frames ?? 0, unit: 'items', noun: 'frames' });
  const progress = (done: number, note = '') => {
    if (!o.quiet) bar.update(done, note, Math.max(info.frames ?? 0, done));
  };
  let writer: VideoWriter | null = null;
  let predicted = 0;
  try {
    let batchRange: ValueRange | undefined;
    if (o.normalize.kind === 'batch' && pictures) {
      // Pass 1 of 2: the range over every frame (and the PFMs, which do not depend on it).
      let lo = Infinity;
      let hi = -Infinity;
      let n = 0;
      for await (const d of model.predictFrames(readVideoFrames(job.input, { info }))) {
        if (missing(n, 'pfm')) writePfm(frameFile(n, 'pfm'), d.depth, d.width, d.height);
        const r = finiteRange(d.depth);
        [lo, hi] = [Math.min(lo, r.min), Math.max(hi, r.max)];
        progress(++n, '(pass 1 of 2)');
      }
      predicted += n;
      batchRange = lo <= hi ? { min: lo, max: hi } : { min: 0, max: 0 };
    }

    const temporal = o.normalize.kind === 'video' && pictures ? new TemporalNormalizer() : null;
    if (temporal && startAt > 0 && frameFormats.includes('png')) {
      // Continue from the last picture written, in its 0..1 units. An uninterrupted run's
      // reference is a moving average of the frames before, so the pictures from here on
      // can differ from its by a fraction of a colour step.
      const last = readPng16(frameFile(startAt - 1, 'png'));
      if (last.width === info.width && last.height === info.height) temporal.seed(last.values);
    }
    const picture = (d: DepthResult): { values: Float32Array; range?: ValueRange } => {
      if (o.normalize.kind === 'fixed') return { values: d.depth, range: o.normalize.range };
      if (batchRange) return { values: d.depth, range: batchRange };
      if (temporal) {
        const t = temporal.next(d.depth);
        return { values: t.aligned, range: t.range };
      }
      return { values: d.depth };
    };
    const pass2 = o.normalize.kind === 'batch' && pictures;

    if (needColor) writer = new VideoWriter(color!.file, { width: info.width, height: info.height, frameRate: info.frameRate, overwrite: o.overwrite });
    let index = startAt;
    for await (const d of model.predictFrames(framesFrom(readVideoFrames(job.input, { info }), startAt))) {
      if (!pass2 && missing(index, 'pfm')) writePfm(frameFile(index, 'pfm'), d.depth, d.width, d.height);
      if (pictures) {
        const { values, range } = picture(d);
        if (missing(index, 'png')) writePng16(frameFile(index, 'png'), values, d.width, d.height, { range });
        if (writer) await writer.write(colorize(values, o.colormap, range));
      }
      index++;
      predicted++;
      progress(index, pass2 ? '(pass 2 of 2)' : '');
    }
    await writer?.close();
    writer = null;
    if (folder && partial && needFrames) {
      if (o.overwrite) rmSync(folder, { recursive: true, force: true });
      renameSync(partial, folder);
    }
  } catch (e) {
    await writer?.abort();
    if (partial && needFrames) rmSync(partial, { recursive: true, force: true });
    if (e instanceof VideoError || (e as Error).message.includes(job.input)) throw e;
    throw new VideoError(job.input, (e as Error).message);
  } finally {
    bar.clear();
  }
  return { info, predicted, seconds: (performance.now() - started) / 1000 };
}

/** The frames from `start` on (the earlier ones are decoded and dropped: exact, where seeking is not). */
async function* framesFrom(frames: AsyncIterable<VideoFrame>, start: number): AsyncGenerator<VideoFrame> {
  for await (const f of frames) if (f.index >= start) yield f;
}
