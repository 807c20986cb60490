// `midas predict` on videos, through the command line as a user runs it, with the
// reduced network (MIDAS_ARCH) and tiny clips that ffmpeg makes here: the outputs,
// a frame's depth against the same frame as an image, temporal normalization's
// flicker, resuming, --shard, and bad input.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeImage } from '../src/node/image.js';
import { readPfm, readPng16 } from '../src/node/outputs.js';
import { readVideoFrames } from '../src/node/video.js';
import { REDUCED, REDUCED_WEIGHTS } from './reduced.js';
import { run, runNode } from './spawn.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
let dir: string;
let env: NodeJS.ProcessEnv;

async function midas(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<{ status: number | null; stderr: string }> {
  const r = await runNode([path.join(ROOT, 'bin/midas.js'), ...args], { env: { ...env, ...extraEnv }, timeout: 300_000 });
  return { status: r.status, stderr: r.stderr.split('\n').filter((l) => !l.startsWith('Warning: maxDynamic')).join('\n') };
}

const predict = (inputs: string[], out: string, ...more: string[]) =>
  midas(['predict', ...inputs, '-o', out, '--weights', REDUCED_WEIGHTS, '--size', '64', ...more]);

async function ffmpeg(...args: string[]): Promise<void> {
  const r = await run('ffmpeg', ['-nostdin', '-v', 'error', '-y', ...args], { timeout: 60_000 });
  expect(r.status, r.stderr).toBe(0);
}

async function probe(file: string): Promise<Record<string, string | number>> {
  const r = await run('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-count_frames', '-show_entries',
    'stream=codec_name,pix_fmt,width,height,avg_frame_rate,nb_read_frames', '-of', 'json', file]);
  expect(r.status, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { streams: Record<string, string | number>[] }).streams[0]!;
}

/** A test-pattern clip: `frames` frames of WxH at `rate`. */
const testsrc = (file: string, w: number, h: number, frames: number, rate = 10, ...codec: string[]) =>
  ffmpeg('-f', 'lavfi', '-i', `testsrc=size=${w}x${h}:rate=${rate}`, '-frames:v', String(frames), ...(codec.length ? codec : ['-c:v', 'libx264', '-pix_fmt', 'yuv420p']), file);

const files = (d: string) => readdirSync(d).sort();
const hidden = (d: string) => readdirSync(d).filter((f) => f.startsWith('.'));

/** Mean absolute change from each picture to the next, 0..1: the flicker of a sequence of 16-bit frames. */
function flicker(folder: string): number {
  const maps = files(folder).filter((f) => f.endsWith('.png')).map((f) => readPng16(path.join(folder, f)).values);
  let sum = 0;
  for (let k = 1; k < maps.length; k++) {
    let s = 0;
    for (let i = 0; i < maps[k]!.length; i++) s += Math.abs(maps[k]![i]! - maps[k - 1]![i]!);
    sum += s / maps[k]!.length;
  }
  return sum / (maps.length - 1);
}

const expect16 = (d: Float32Array, min: number, max: number) =>
  Float32Array.from(d, (v) => Math.min(65535, Math.max(0, Math.round(((v - min) / (max - min)) * 65535))) / 65535);

beforeAll(async () => {
  expect(existsSync(path.join(ROOT, 'dist/src/cli/main.js')), 'run `npm run build` first (npm test does)').toBe(true);
  dir = mkdtempSync(path.join(os.tmpdir(), 'midas-video-'));
  writeFileSync(path.join(dir, 'arch.json'), JSON.stringify(REDUCED));
  env = { ...process.env, MIDAS_ARCH: path.join(dir, 'arch.json'), MIDAS_HOME: path.join(dir, 'home') };
  await testsrc(path.join(dir, 'clip.mp4'), 64, 48, 6);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a video in, its depth out', () => {
  it('color: an H.264 yuv420p MP4 at the source rate and size; png and pfm: DIR/<stem>/000001.* from 1', async () => {
    const out = path.join(dir, 'o-all');
    const r = await predict([path.join(dir, 'clip.mp4')], out, '--format', 'pfm,png,color');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/clip\.mp4: 64x48 at 10 fps, 6 frames predicted in [\d.]+ s \([\d.]+ frames\/s\)/);
    expect(files(out)).toEqual(['clip', 'clip-color.mp4']);
    const frames = ['000001', '000002', '000003', '000004', '000005', '000006'];
    expect(files(path.join(out, 'clip'))).toEqual(frames.flatMap((f) => [`${f}.pfm`, `${f}.png`]));
    const v = await probe(path.join(out, 'clip-color.mp4'));
    expect(v).toMatchObject({ codec_name: 'h264', pix_fmt: 'yuv420p', width: 64, height: 48, avg_frame_rate: '10/1', nb_read_frames: '6' });
    const png = PNG.sync.read(readFileSync(path.join(out, 'clip', '000001.png')), { skipRescale: true } as never) as unknown as { width: number; height: number; depth: number };
    expect([png.width, png.height, png.depth]).toEqual([64, 48, 16]);
    expect(hidden(out)).toEqual([]);
    // Run again: everything is there, nothing is redone.
    const again = await predict([path.join(dir, 'clip.mp4')], out, '--format', 'pfm,png,color');
    expect(again.stderr).toMatch(/skipping 1 input\(s\) whose outputs exist/);
  });

  it("a frame's depth equals predict on that same decoded frame given as an image", async () => {
    const still = path.join(dir, 'frame3.png');
    await ffmpeg('-i', path.join(dir, 'clip.mp4'), '-vf', 'select=eq(n\\,2)', '-fps_mode', 'passthrough', '-frames:v', '1', '-pix_fmt', 'rgb24', still);
    let third: Uint8Array | undefined;
    for await (const f of readVideoFrames(path.join(dir, 'clip.mp4'))) if (f.index === 2) third = f.data;
    expect(Buffer.from(third!).equals(Buffer.from(decodeImage(still).data))).toBe(true);
    const out = path.join(dir, 'o-still');
    const r = await predict([still], out, '--format', 'pfm', '-q');
    expect(r.status, r.stderr).toBe(0);
    const asImage = readPfm(path.join(out, 'frame3.pfm'));
    const asFrame = readPfm(path.join(dir, 'o-all', 'clip', '000003.pfm'));
    expect(asFrame.data).toEqual(asImage.data);
  });

  it('flicker on a still scene with changing exposure and noise: --normalize video lowers it', async () => {
    const clip = path.join(dir, 'still.mp4');
    await ffmpeg('-f', 'lavfi', '-i',
      "testsrc=size=96x64:rate=10,trim=end_frame=1,loop=loop=15:size=1:start=0,eq=brightness='0.12*sin(n*2)':contrast='1+0.25*sin(n*3)':eval=frame,noise=alls=4:allf=t",
      '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-crf', '10', clip);
    const figures: Record<string, number> = {};
    for (const mode of ['image', 'video']) {
      const out = path.join(dir, `o-flicker-${mode}`);
      const r = await predict([clip], out, '--format', 'png', '--normalize', mode, '-q');
      expect(r.status, r.stderr).toBe(0);
      expect(files(path.join(out, 'still'))).toHaveLength(16);
      figures[mode] = flicker(path.join(out, 'still'));
    }
    console.log(`flicker (mean |frame-to-frame change| of the 0..1 map, 16 frames 96x64): image ${figures['image']!.toFixed(5)}, video ${figures['video']!.toFixed(5)}`);
    expect(figures['video']!).toBeLessThan(figures['image']! * 0.9);
  });

  it('--normalize batch: one range over all frames (two passes); fixed:MIN,MAX: that range; the PFMs stay raw', async () => {
    const clip = path.join(dir, 'clip.mp4');
    const raw = path.join(dir, 'o-all', 'clip');
    const pfms = files(raw).filter((f) => f.endsWith('.pfm')).map((f) => readPfm(path.join(raw, f)).data);
    let lo = Infinity;
    let hi = -Infinity;
    for (const d of pfms) for (const v of d) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
    const batch = path.join(dir, 'o-batch');
    const r = await predict([clip], batch, '--format', 'pfm,png', '--normalize', 'batch', '-q');
    expect(r.status, r.stderr).toBe(0);
    pfms.forEach((d, k) => {
      const name = String(k + 1).padStart(6, '0');
      expect(readPfm(path.join(batch, 'clip', `${name}.pfm`)).data).toEqual(d);
      expect(readPng16(path.join(batch, 'clip', `${name}.png`)).values).toEqual(expect16(d, lo, hi));
    });
    const mid = (lo + hi) / 2;
    const fixed = path.join(dir, 'o-fixed');
    const f = await predict([clip], fixed, '--format', 'png', '--normalize', `fixed:${lo},${mid}`, '-q');
    expect(f.status, f.stderr).toBe(0);
    expect(readPng16(path.join(fixed, 'clip', '000004.png')).values).toEqual(expect16(pfms[3]!, lo, mid));
  });

  it('killed part way: the next run resumes at the first missing frame and finishes the folder', async () => {
    const clip = path.join(dir, 'clip.mp4');
    const whole = path.join(dir, 'o-whole');
    expect((await predict([clip], whole, '--format', 'pfm,png', '-q')).status).toBe(0);
    // What a run killed after frame 3 leaves: the partial folder with frames 1-3.
    const out = path.join(dir, 'o-resume');
    mkdirSync(out);
    const partial = path.join(out, '.clip.partial');
    mkdirSync(partial);
    for (const f of files(path.join(whole, 'clip')).slice(0, 6)) writeFileSync(path.join(partial, f), readFileSync(path.join(whole, 'clip', f)));
    const r = await predict([clip], out, '--format', 'pfm,png');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/clip\.mp4: .* 3 frames predicted/);
    expect(files(out)).toEqual(['clip']);
    expect(files(path.join(out, 'clip'))).toEqual(files(path.join(whole, 'clip')));
    for (const f of files(whole + '/clip').filter((x) => x.endsWith('.pfm'))) {
      expect(readPfm(path.join(out, 'clip', f)).data).toEqual(readPfm(path.join(whole, 'clip', f)).data);
    }
    // The reference continues from frame 3's picture, where the uninterrupted run's is a
    // moving average of frames 1-3: the pictures after it differ, by less than one step
    // of the 8-bit colour map.
    const a = readPng16(path.join(out, 'clip', '000006.png')).values;
    const b = readPng16(path.join(whole, 'clip', '000006.png')).values;
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    expect(worst).toBeLessThan(1 / 256);
  });
});

describe('a run killed for real', () => {
  it('SIGKILL part way through a clip: the next run resumes from the partial folder and leaves no temporaries', async () => {
    const clip = path.join(dir, 'long-clip.mp4');
    await testsrc(clip, 64, 48, 40);
    const out = path.join(dir, 'o-killed');
    const partial = path.join(out, '.long-clip.partial');
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/midas.js'), 'predict', clip, '-o', out, '--weights', REDUCED_WEIGHTS, '--size', '64', '--format', 'pfm,png,color', '-q'], { env, stdio: 'ignore' });
    const exited = new Promise((r) => child.on('exit', r));
    await new Promise<void>((resolve) => {
      const t = setInterval(() => {
        if (existsSync(partial) && readdirSync(partial).filter((f) => f.endsWith('.png')).length >= 5) {
          clearInterval(t);
          child.kill('SIGKILL');
          resolve();
        }
      }, 5);
    });
    await exited;
    const left = readdirSync(partial).filter((f) => f.endsWith('.pfm')).length;
    expect(left).toBeLessThan(40);
    expect(existsSync(path.join(out, 'long-clip-color.mp4'))).toBe(false);
    const r = await predict([clip], out, '--format', 'pfm,png,color');
    expect(r.status, r.stderr).toBe(0);
    expect(files(out)).toEqual(['long-clip', 'long-clip-color.mp4']);
    expect(files(path.join(out, 'long-clip'))).toHaveLength(80);
    expect(await probe(path.join(out, 'long-clip-color.mp4'))).toMatchObject({ nb_read_frames: '40' });
    // Without the colour video to make, a killed run only adds the missing frames.
    renameSync(path.join(out, 'long-clip'), partial);
    for (const f of files(partial).slice(50)) rmSync(path.join(partial, f));
    const again = await predict([clip], out, '--format', 'pfm,png');
    expect(again.stderr).toMatch(/long-clip\.mp4: .* 15 frames predicted/);
    expect(files(path.join(out, 'long-clip'))).toHaveLength(80);
    expect(hidden(out)).toEqual([]);
  });
});

describe('awkward videos that work', () => {
  it('a rotated phone video: frames as players show them; a variable frame rate: every frame once; odd sides: padded by one', async () => {
    const rotated = path.join(dir, 'phone.mp4');
    await ffmpeg('-i', path.join(dir, 'clip.mp4'), '-c', 'copy', '-metadata:s:v:0', 'rotate=90', rotated);
    const vfr = path.join(dir, 'vfr.mkv');
    await ffmpeg('-f', 'lavfi', '-i', 'testsrc=size=64x48:rate=10:duration=0.6', '-f', 'lavfi', '-i', 'testsrc=size=64x48:rate=5:duration=1.2',
      '-filter_complex', '[0][1]concat=n=2:v=1[v]', '-map', '[v]', '-fps_mode', 'vfr', '-enc_time_base', '1/1000', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', vfr);
    const odd = path.join(dir, 'odd.mkv');
    await testsrc(odd, 641, 479, 2, 10, '-c:v', 'ffv1');
    const out = path.join(dir, 'o-awkward');
    const r = await predict([rotated, vfr, odd], out, '--format', 'png,color');
    expect(r.status, r.stderr).toBe(0);

    // Rotation 90 turns the picture a quarter anticlockwise: frame (x, y) is the stored (W-1-y, x).
    let upright: Uint8Array | undefined;
    for await (const f of readVideoFrames(path.join(dir, 'clip.mp4'))) upright ??= f.data;
    for await (const f of readVideoFrames(rotated)) {
      expect([f.width, f.height]).toEqual([48, 64]);
      const turned = new Uint8Array(f.data.length);
      for (let y = 0; y < 64; y++) for (let x = 0; x < 48; x++) turned.set(upright!.subarray(((x * 64) + 63 - y) * 3, ((x * 64) + 63 - y) * 3 + 3), (y * 48 + x) * 3);
      expect(Buffer.from(f.data).equals(Buffer.from(turned))).toBe(true);
      break;
    }
    expect(readPng16(path.join(out, 'phone', '000001.png'))).toMatchObject({ width: 48, height: 64 });
    expect(await probe(path.join(out, 'phone-color.mp4'))).toMatchObject({ width: 48, height: 64 });

    // 6 frames at 10 fps then 6 at 5: 12 frames, none repeated to a constant rate.
    expect(files(path.join(out, 'vfr')).filter((f) => f.endsWith('.png'))).toHaveLength(12);
    expect(await probe(path.join(out, 'vfr-color.mp4'))).toMatchObject({ nb_read_frames: '12' });

    expect(readPng16(path.join(out, 'odd', '000002.png'))).toMatchObject({ width: 641, height: 479 });
    expect(await probe(path.join(out, 'odd-color.mp4'))).toMatchObject({ width: 642, height: 480, pix_fmt: 'yuv420p', nb_read_frames: '2' });
  });
});

describe('bad videos', () => {
  it('truncated, corrupt, audio only, no frames: one line each naming the file, exit 1, nothing partial left', async () => {
    const bad = path.join(dir, 'bad');
    mkdirSync(bad);
    const long = path.join(dir, 'long.mkv');
    await testsrc(long, 64, 48, 30);
    const cut = (from: string, to: string) => {
      const bytes = readFileSync(from);
      writeFileSync(to, bytes.subarray(0, bytes.length >> 1));
    };
    cut(long, path.join(bad, 'cut.mkv'));
    const faststart = path.join(dir, 'faststart.mp4');
    await ffmpeg('-i', long, '-c', 'copy', '-movflags', '+faststart', faststart);
    cut(faststart, path.join(bad, 'cut-faststart.mp4'));
    writeFileSync(path.join(bad, 'garbage.mov'), Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) % 251)));
    await ffmpeg('-f', 'lavfi', '-i', 'sine=duration=0.3', '-c:a', 'aac', path.join(bad, 'sound.m4v'));
    await ffmpeg('-ss', '5', '-i', path.join(dir, 'clip.mp4'), '-c', 'copy', path.join(bad, 'empty.mp4'));
    const out = path.join(dir, 'o-bad');
    const r = await predict([bad], out, '--format', 'pfm,png,color');
    expect(r.status).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines.slice(-6)).toEqual([
      expect.stringMatching(/0 written, 0 skipped, 5 failed/),
      expect.stringMatching(/^error: .*bad\/cut-faststart\.mp4: ffmpeg could not decode it \(.+\)$/),
      expect.stringMatching(/^error: .*bad\/cut\.mkv: corrupt or truncated video: ffmpeg reports 'File ended prematurely' after \d+ frame\(s\)$/),
      expect.stringMatching(/^error: .*bad\/empty\.mp4: has no video frames \(ffmpeg decoded none\)$/),
      expect.stringMatching(/^error: .*bad\/garbage\.mov: not a video ffmpeg can read \(.+\)$/),
      expect.stringMatching(/^error: .*bad\/sound\.m4v: has no video stream \(audio only\)$/),
    ]);
    expect(readdirSync(out)).toEqual([]);
  });

  it('without ffmpeg on PATH: one line naming the Debian package, exit 1, before the model loads', async () => {
    const empty = path.join(dir, 'empty-path');
    mkdirSync(empty);
    const r = await predict([path.join(dir, 'clip.mp4')], path.join(dir, 'o-noffmpeg'), '-q');
    expect(r.status).toBe(0);
    const n = await midas(['predict', path.join(dir, 'clip.mp4'), '-o', path.join(dir, 'o-noffmpeg2'), '--weights', REDUCED_WEIGHTS], { PATH: empty });
    expect(n.status).toBe(1);
    expect(n.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^midas predict: video needs ffprobe \(from ffmpeg\), which is not on PATH: install the Debian package ffmpeg/)]);
  });
});

describe('--shard K/N', () => {
  it('N shards of a folder of images and videos write every input exactly once', async () => {
    const corpus = path.join(dir, 'corpus');
    mkdirSync(corpus);
    for (let i = 0; i < 5; i++) {
      const p = new PNG({ width: 20 + i, height: 14 });
      for (let k = 0; k < p.data.length; k++) p.data[k] = (k * 13 + i * 29) % 256;
      writeFileSync(path.join(corpus, `img${i}.png`), PNG.sync.write(p));
    }
    renameSync(path.join(dir, 'clip.mp4'), path.join(corpus, 'clip.mp4'));
    const seen: string[] = [];
    for (let k = 0; k < 3; k++) {
      const out = path.join(dir, `o-shard${k}`);
      const r = await predict([corpus], out, '--format', 'pfm', '--shard', `${k}/3`);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toMatch(new RegExp(`shard ${k}/3: 2 of 6 inputs`));
      seen.push(...files(out));
    }
    expect(seen.sort()).toEqual(['clip', 'img0.pfm', 'img1.pfm', 'img2.pfm', 'img3.pfm', 'img4.pfm']);
    const bad = await predict([corpus], path.join(dir, 'o-shard-bad'), '--shard', '3/3');
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toEqual([expect.stringMatching(/--shard must be K\/N with 0 <= K < N, e\.g\. 0\/4 \(got '3\/3'\)/)]);
  });
});
