// Video in and out through the system's ffmpeg: probe a file, stream its frames as raw
// RGB from a pipe one frame at a time, and encode RGB frames to an H.264 MP4 that
// appears only when complete. Node-only.
import { statSync, unlinkSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { commitTemporary, temporaryName } from './outputs.js';
import { FfmpegMissingError, runTool, spawnTool, StderrTail, VideoError, firstMessage } from './ffmpeg.js';

export { VideoError, FfmpegMissingError, checkFfmpeg } from './ffmpeg.js';

/** The file name endings `midas predict` reads as video. */
export const VIDEO_EXTENSIONS = ['.mp4', '.mov', '.mkv', '.webm', '.avi', '.m4v'] as const;

export function isVideoFile(file: string): boolean {
  const lower = file.toLowerCase();
  return VIDEO_EXTENSIONS.some((e) => lower.endsWith(e));
}

export interface VideoInfo {
  file: string;
  /** The frames' size as decoded and shown: a phone video's rotation is applied (90 or 270 swaps the sides). */
  width: number;
  height: number;
  /** Degrees the stored picture is turned for display (its display matrix, or a `rotate` tag); 0 when none. */
  rotation: number;
  /** Frames per second to write the depth video at: the average rate (a variable-rate clip is evened out). */
  fps: number;
  /** The same as ffmpeg takes it (`30000/1001`, or a decimal). */
  frameRate: string;
  /** Frames the container declares (or its packets, counted); null when unknown. Decoding may still give fewer. */
  frames: number | null;
  /** Seconds, when known. */
  duration: number | null;
  codec: string;
  /** The stream decoded: the file's first video stream that is not cover art. */
  streamIndex: number;
}

interface ProbeStream {
  index: number;
  codec_type?: string;
  codec_name?: string;
  width?: number;
  height?: number;
  avg_frame_rate?: string;
  r_frame_rate?: string;
  nb_frames?: string;
  nb_read_packets?: string;
  duration?: string;
  disposition?: { attached_pic?: number };
  side_data_list?: { rotation?: number | string }[];
  tags?: { rotate?: string };
}

function rational(text: string | undefined): { num: number; den: number } | null {
  const m = /^(\d+)\/(\d+)$/.exec(text ?? '');
  if (!m) return null;
  const num = Number(m[1]);
  const den = Number(m[2]);
  return num > 0 && den > 0 ? { num, den } : null;
}

function positive(text: string | undefined): number | null {
  const n = Number(text);
  return text !== undefined && Number.isFinite(n) && n > 0 ? n : null;
}

/** Reads a file's size, frame rate, frame count and rotation with ffprobe. */
export async function probeVideo(file: string): Promise<VideoInfo> {
  let size: number;
  try {
    const st = statSync(file);
    if (st.isDirectory()) throw new VideoError(file, 'is a directory, not a video file');
    size = st.size;
  } catch (e) {
    if (e instanceof VideoError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new VideoError(file, code === 'ENOENT' ? 'no such file' : `cannot read (${code ?? (e as Error).message})`);
  }
  if (size === 0) throw new VideoError(file, 'empty file (0 bytes)');
  const entries =
    'stream=index,codec_type,codec_name,width,height,avg_frame_rate,r_frame_rate,nb_frames,duration' +
    ':stream_disposition=attached_pic:stream_side_data=rotation:stream_tags=rotate:format=duration';
  const r = await runTool('ffprobe', ['-v', 'error', '-show_entries', entries, '-of', 'json', inputUrl(file)]);
  if (r.code !== 0) {
    throw new VideoError(file, `not a video ffmpeg can read (${withoutName(firstMessage(r.stderr), file) || `ffprobe exit ${r.code}`})`);
  }
  const json = JSON.parse(r.stdout) as { streams?: ProbeStream[]; format?: { duration?: string } };
  const streams = json.streams ?? [];
  // Cover art in an audio file is a one-picture "video" stream: not a video.
  const video = streams.find((s) => s.codec_type === 'video' && !s.disposition?.attached_pic);
  if (!video) {
    const audio = streams.some((s) => s.codec_type === 'audio');
    throw new VideoError(file, audio ? 'has no video stream (audio only)' : 'has no video stream');
  }
  const codedWidth = video.width ?? 0;
  const codedHeight = video.height ?? 0;
  if (!(codedWidth > 0 && codedHeight > 0)) throw new VideoError(file, `its video stream has no picture size (${codedWidth}x${codedHeight})`);
  const rotation = rotationOf(video);
  // ffmpeg turns the picture as it decodes (autorotate, as players do), so the frames have these sides.
  const quarter = Math.abs(rotation) % 180 === 90;
  const duration = positive(video.duration) ?? positive(json.format?.duration);
  let frames = positive(video.nb_frames);
  if (frames === null) frames = await countPackets(file, video.index);
  const avg = rational(video.avg_frame_rate);
  const base = rational(video.r_frame_rate);
  let frameRate: string;
  let fps: number;
  if (avg) {
    frameRate = `${avg.num}/${avg.den}`;
    fps = avg.num / avg.den;
  } else if (frames && duration) {
    fps = frames / duration;
    frameRate = fps.toFixed(6);
  } else if (base) {
    frameRate = `${base.num}/${base.den}`;
    fps = base.num / base.den;
  } else {
    fps = 25;
    frameRate = '25';
  }
  return {
    file,
    width: quarter ? codedHeight : codedWidth,
    height: quarter ? codedWidth : codedHeight,
    rotation,
    fps,
    frameRate,
    frames,
    duration,
    codec: video.codec_name ?? 'unknown',
    streamIndex: video.index,
  };
}

/** ffmpeg reads `a:b.mp4` as protocol `a`: the file: protocol keeps every name a plain path. */
function inputUrl(file: string): string {
  return `file:${file}`;
}

/** ffmpeg's message without the file name it starts with (the error line names the file already). */
function withoutName(message: string, file: string): string {
  for (const prefix of [`file:${file}: `, `${file}: `]) if (message.startsWith(prefix)) return message.slice(prefix.length);
  return message;
}

function rotationOf(s: ProbeStream): number {
  for (const d of s.side_data_list ?? []) {
    const r = Number(d.rotation);
    if (d.rotation !== undefined && Number.isFinite(r)) return r;
  }
  const tag = Number(s.tags?.rotate);
  return s.tags?.rotate !== undefined && Number.isFinite(tag) ? tag : 0;
}

/** Containers such as Matroska do not store a frame count: count the stream's packets (reads the file, decodes nothing). */
async function countPackets(file: string, stream: number): Promise<number | null> {
  const r = await runTool('ffprobe', ['-v', 'error', '-select_streams', String(stream), '-count_packets', '-show_entries', 'stream=nb_read_packets', '-of', 'csv=p=0', inputUrl(file)]);
  return r.code === 0 ? positive(r.stdout.trim()) : null;
}

/** One decoded frame: RGB, 3 bytes a pixel, row-major. */
export interface VideoFrame {
  data: Uint8Array;
  width: number;
  height: number;
  /** 0-based, in decoding order (every frame the file holds, none repeated or dropped). */
  index: number;
}

export interface ReadVideoOptions {
  /** What probeVideo said about the file, if the caller has it already. */
  info?: VideoInfo;
}

/**
 * The frames of a video as raw RGB, decoded by ffmpeg into a pipe. One frame is held
 * at a time: the pipe is read only as frames are taken, so ffmpeg waits while the
 * caller works. Throws VideoError (after the frames it could decode) when ffmpeg
 * reports the file truncated or corrupt, or decodes no frame at all; stopping early
 * ends ffmpeg.
 */
export async function* readVideoFrames(file: string, options: ReadVideoOptions = {}): AsyncGenerator<VideoFrame> {
  const info = options.info ?? (await probeVideo(file));
  const { width, height } = info;
  const frameBytes = width * height * 3;
  const args = [
    '-nostdin', '-v', 'error', '-i', inputUrl(file), '-map', `0:${info.streamIndex}`,
    // Every decoded frame once: no frames repeated or dropped to a constant rate.
    '-fps_mode', 'passthrough', '-an', '-sn', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1',
  ];
  const { child, exited } = spawnTool('ffmpeg', args, ['ignore', 'pipe', 'pipe']);
  const stderr = new StderrTail();
  stderr.attach(child);
  let frame = new Uint8Array(frameBytes);
  let filled = 0;
  let index = 0;
  let finished = false;
  try {
    for await (const chunk of child.stdout! as AsyncIterable<Buffer>) {
      let off = 0;
      while (off < chunk.length) {
        const n = Math.min(frameBytes - filled, chunk.length - off);
        frame.set(chunk.subarray(off, off + n), filled);
        filled += n;
        off += n;
        if (filled === frameBytes) {
          const full = frame;
          frame = new Uint8Array(frameBytes);
          filled = 0;
          yield { data: full, width, height, index: index++ };
        }
      }
    }
    const { code, signal } = await exited;
    finished = true;
    const message = withoutName(stderr.firstMessage(), file);
    if (code !== 0) throw new VideoError(file, `ffmpeg could not decode it (${message || (signal ? `killed by ${signal}` : `exit ${code}`)})`);
    if (message) throw new VideoError(file, `corrupt or truncated video: ffmpeg reports '${message}' after ${index} frame(s)`);
    if (filled) throw new VideoError(file, `the decoded frames are not ${width}x${height} (${index} frames and ${filled} bytes more)`);
    if (index === 0) throw new VideoError(file, 'has no video frames (ffmpeg decoded none)');
  } catch (e) {
    if (e instanceof FfmpegMissingError || e instanceof VideoError) throw e;
    throw new VideoError(file, `reading frames failed (${(e as Error).message})`);
  } finally {
    if (!finished) {
      child.kill('SIGKILL');
      await exited.catch(() => {});
    }
  }
}

export interface VideoWriterOptions {
  width: number;
  height: number;
  /** Frames per second: a number or what ffmpeg takes (`30000/1001`). */
  frameRate: number | string;
  /** Replace an existing file (default false: an existing file is an error, checked again when it is moved into place). */
  overwrite?: boolean;
}

/**
 * Encodes RGB frames to an H.264 MP4 (yuv420p, BT.709, faststart: it plays in every
 * browser and player) through ffmpeg on a pipe. The file is written under a temporary
 * name and renamed into place by `close`; `abort` leaves nothing. yuv420p needs even
 * sides, so an odd width or height is padded by one pixel, repeating the last column
 * or row (641x479 gives 642x480).
 */
export class VideoWriter {
  /** The encoded size: the frames' size rounded up to even sides. */
  readonly width: number;
  readonly height: number;
  private readonly tmp: string;
  private readonly stdin: Writable;
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly stderr = new StderrTail();
  private readonly padded: Uint8Array | null;
  private done = false;

  constructor(
    readonly file: string,
    private readonly options: VideoWriterOptions,
  ) {
    const { width, height } = options;
    this.width = width + (width % 2);
    this.height = height + (height % 2);
    this.padded = this.width !== width || this.height !== height ? new Uint8Array(this.width * this.height * 3) : null;
    this.tmp = temporaryName(file);
    const args = [
      '-nostdin', '-v', 'error',
      '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${this.width}x${this.height}`, '-framerate', String(options.frameRate), '-i', 'pipe:0',
      '-an', '-c:v', 'libx264', '-crf', '18', '-pix_fmt', 'yuv420p',
      // Tagged BT.709, so players convert back with the matrix it was converted with.
      '-vf', 'scale=out_color_matrix=bt709:out_range=tv',
      '-colorspace', 'bt709', '-color_primaries', 'bt709', '-color_trc', 'bt709', '-color_range', 'tv',
      '-movflags', '+faststart', '-f', 'mp4', '-y', `file:${this.tmp}`,
    ];
    const { child, exited } = spawnTool('ffmpeg', args, ['pipe', 'ignore', 'pipe']);
    this.exited = exited;
    this.stderr.attach(child);
    this.stdin = child.stdin!;
    // A write to a dead ffmpeg fails in its callback (EPIPE); the stream's own error event is that same failure.
    this.stdin.on('error', () => {});
  }

  /** Appends one frame (RGB, the size given to the constructor); resolves once the pipe has taken it. */
  async write(rgb: Uint8Array): Promise<void> {
    const { width, height } = this.options;
    if (rgb.length !== width * height * 3) {
      throw new VideoError(this.file, `a ${width}x${height} frame needs ${width * height * 3} bytes, got ${rgb.length}`);
    }
    const frame = this.padded ? padEven(rgb, width, height, this.padded) : rgb;
    try {
      await new Promise<void>((resolve, reject) => this.stdin.write(frame, (e) => (e ? reject(e) : resolve())));
    } catch (e) {
      const { code } = await this.exited.catch((x: unknown) => {
        throw x instanceof FfmpegMissingError ? x : e;
      });
      throw new VideoError(this.file, `ffmpeg stopped encoding (${this.stderr.firstMessage() || `exit ${code}`})`);
    }
  }

  /** Finishes the file and moves it into place. */
  async close(): Promise<void> {
    if (this.done) return;
    this.done = true;
    this.stdin.end();
    try {
      const { code, signal } = await this.exited;
      if (code !== 0) throw new VideoError(this.file, `ffmpeg could not encode it (${this.stderr.firstMessage() || (signal ? `killed by ${signal}` : `exit ${code}`)})`);
    } catch (e) {
      removeQuietly(this.tmp);
      throw e;
    }
    commitTemporary(this.tmp, this.file, { overwrite: this.options.overwrite });
  }

  /** Stops ffmpeg and removes the partial file. */
  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    this.stdin.destroy();
    await this.exited.catch(() => {});
    removeQuietly(this.tmp);
  }
}

function removeQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    /* never created, or gone */
  }
}

/** Copies a frame into `out` (even sides), repeating the last column and row into the padding. */
export function padEven(rgb: Uint8Array, width: number, height: number, out: Uint8Array): Uint8Array {
  const w2 = width + (width % 2);
  const h2 = height + (height % 2);
  for (let y = 0; y < h2; y++) {
    const src = Math.min(y, height - 1) * width * 3;
    const dst = y * w2 * 3;
    out.set(rgb.subarray(src, src + width * 3), dst);
    if (w2 !== width) out.copyWithin(dst + width * 3, dst + (width - 1) * 3, dst + width * 3);
  }
  return out;
}
