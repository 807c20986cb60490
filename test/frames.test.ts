// MidasModel.predictFrames: a sequence of raw frames through the network with two
// frames in flight, each result equal to `predict` on that frame; and the video
// helpers of the Node entry feeding it.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMidas, probeVideo, readVideoFrames, type MidasModel, type RawFrame } from '../src/node/index.js';
import { REDUCED, REDUCED_WEIGHTS } from './reduced.js';
import { run } from './spawn.js';

let model: MidasModel;
let dir: string;

function frame(width: number, height: number, seed: number, channels: 3 | 4 = 3): RawFrame {
  const data = new Uint8Array(width * height * channels);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + seed * 57 + ((i / width) | 0) * seed) % 256;
  return { data, width, height };
}

async function* slowly<T>(items: T[]): AsyncGenerator<T> {
  for (const x of items) {
    await new Promise((r) => setTimeout(r, 1));
    yield x;
  }
}

beforeAll(async () => {
  model = await loadMidas({ weights: REDUCED_WEIGHTS, config: REDUCED, size: 64 });
  dir = mkdtempSync(path.join(os.tmpdir(), 'midas-frames-'));
});
afterAll(() => {
  model?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('predictFrames', () => {
  it('yields one depth map per frame, in order, each equal to predict on it (RGB and RGBA, sizes changing)', async () => {
    const frames = [frame(96, 64, 1), frame(96, 64, 2), frame(50, 70, 3, 4), frame(96, 64, 4), frame(33, 17, 5)];
    const got = [];
    for await (const d of model.predictFrames(slowly(frames))) got.push(d);
    expect(got).toHaveLength(frames.length);
    for (let k = 0; k < frames.length; k++) {
      const f = frames[k]!;
      const one = await model.predict({ ...f, channels: f.data.length === f.width * f.height * 4 ? 4 : 3 });
      expect([got[k]!.width, got[k]!.height]).toEqual([f.width, f.height]);
      expect(got[k]!.depth).toEqual(one.depth);
    }
  });

  it('a bad frame fails by name after the frames before it; stopping early leaves the model usable', async () => {
    const frames = [frame(40, 30, 1), frame(40, 30, 2), { data: new Uint8Array(10), width: 40, height: 30 }];
    const got: number[] = [];
    await expect(async () => {
      for await (const d of model.predictFrames(frames)) got.push(d.width);
    }).rejects.toThrow(/^<frame 2>: a 40x30 frame needs 3600 \(RGB\) or 4800 \(RGBA\) bytes, got 10$/);
    expect(got.length).toBeLessThanOrEqual(2);
    for await (const d of model.predictFrames([frame(40, 30, 1), frame(40, 30, 2), frame(40, 30, 3)])) {
      expect(d.width).toBe(40);
      break;
    }
    const again = await model.predict({ ...frame(40, 30, 9), channels: 3 });
    expect(again.depth).toHaveLength(1200);
  });

  it('from readVideoFrames: the same maps as predict frame by frame; frames/s against a loop of predict', async () => {
    const clip = path.join(dir, 'clip.mkv');
    const made = await run('ffmpeg', ['-nostdin', '-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25', '-frames:v', '16', '-c:v', 'ffv1', clip]);
    expect(made.status, made.stderr).toBe(0);
    const info = await probeVideo(clip);
    expect(info).toMatchObject({ width: 160, height: 120, frames: 16, fps: 25 });

    const decoded: Uint8Array[] = [];
    for await (const f of readVideoFrames(clip, { info })) decoded.push(f.data);
    expect(decoded).toHaveLength(16);
    // Warm both paths once (shaders, buffers at this size), then time each.
    await model.predict({ data: decoded[0]!, width: 160, height: 120, channels: 3 });
    let t0 = performance.now();
    const looped = [];
    for (const data of decoded) looped.push((await model.predict({ data, width: 160, height: 120, channels: 3 })).depth);
    const loopMs = performance.now() - t0;
    t0 = performance.now();
    const piped = [];
    for await (const d of model.predictFrames(decoded.map((data) => ({ data, width: 160, height: 120 })))) piped.push(d.depth);
    const pipeMs = performance.now() - t0;
    expect(piped).toEqual(looped);
    console.log(`16 frames 160x120 at size 64 (reduced network): predict loop ${((16 * 1000) / loopMs).toFixed(1)} frames/s, predictFrames ${((16 * 1000) / pipeMs).toFixed(1)} frames/s`);

    // Straight from the decoder, as the CLI does.
    let k = 0;
    for await (const d of model.predictFrames(readVideoFrames(clip, { info }))) expect(d.depth).toEqual(looped[k++]);
    expect(k).toBe(16);
  });
});
