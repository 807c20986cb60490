// The pieces of video support that need no GPU and no ffmpeg: the temporal
// normalizer, the scale-and-shift fit it shares with `midas align`, --shard's split,
// odd-size padding and the progress bar's ETA.
import { describe, expect, it } from 'vitest';
import { fitScaleShift } from '../src/midas/align.js';
import { TemporalNormalizer } from '../src/midas/temporal.js';
import { padEven } from '../src/node/video.js';
import { parseShard, takeShard } from '../src/cli/shard.js';
import { eta, ProgressBar } from '../src/cli/progress.js';

/** A fixed pseudo-random map (a depth-like ramp plus texture). */
function scene(n: number, seed = 1): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, (_, i) => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return i / n + 0.2 * (s / 2 ** 31);
  });
}

const affine = (m: Float32Array, s: number, t: number) => Float32Array.from(m, (v) => s * v + t);

describe('fitScaleShift', () => {
  it('recovers an exact affine map, with correlation 1', () => {
    const p = scene(500);
    const f = fitScaleShift(p, affine(p, 2.5, -0.75));
    expect(f.scale).toBeCloseTo(2.5, 5);
    expect(f.shift).toBeCloseTo(-0.75, 5);
    expect(f.correlation).toBeCloseTo(1, 6);
    expect(f.count).toBe(500);
  });

  it('uses only the valid pixels; a constant prediction gives NaN', () => {
    const p = scene(10);
    const d = affine(p, 3, 1);
    d[4] = 1e6;
    const valid = Uint8Array.from({ length: 10 }, (_, i) => (i === 4 ? 0 : 1));
    expect(fitScaleShift(p, d, valid).scale).toBeCloseTo(3, 5);
    expect(fitScaleShift(new Float32Array(10).fill(2), d).scale).toBeNaN();
  });
});

describe('TemporalNormalizer', () => {
  it('frames that differ only in scale and shift come out the same, against the first frame\'s range', () => {
    const base = scene(400);
    const t = new TemporalNormalizer();
    const first = t.next(base);
    expect(first.restarted).toBe(true);
    expect(first.range.min).toBeCloseTo(Math.min(...base), 6);
    for (const [s, sh] of [[2, 5], [0.3, -1], [10, 0.5]] as const) {
      const r = t.next(affine(base, s, sh));
      expect(r.restarted).toBe(false);
      for (let i = 0; i < base.length; i += 37) expect(r.aligned[i]).toBeCloseTo(base[i]!, 4);
      expect(r.range.min).toBeCloseTo(first.range.min, 4);
      expect(r.range.max).toBeCloseTo(first.range.max, 4);
    }
  });

  it('a cut (an unrelated frame) restarts the reference within the current range; so does an inverted one', () => {
    const t = new TemporalNormalizer();
    const a = scene(300, 1);
    const first = t.next(a);
    const b = scene(300, 99).reverse();
    const cut = t.next(b);
    expect(cut.restarted).toBe(true);
    expect(Math.min(...cut.aligned)).toBeCloseTo(first.range.min, 5);
    expect(Math.max(...cut.aligned)).toBeCloseTo(first.range.max, 5);
    // Near would become far: never fitted with a negative scale.
    const inverted = t.next(affine(b, -1, 0));
    expect(inverted.restarted).toBe(true);
    expect(inverted.scale).toBeGreaterThan(0);
  });

  it('seeded from a picture (0..1), it continues in those units', () => {
    const base = scene(200);
    const t = new TemporalNormalizer();
    const lo = Math.min(...base);
    const hi = Math.max(...base);
    t.seed(Float32Array.from(base, (v) => (v - lo) / (hi - lo)));
    const r = t.next(affine(base, 4, 2));
    expect(r.range).toEqual({ min: expect.closeTo(0, 5), max: expect.closeTo(1, 5) });
    expect(r.aligned[17]).toBeCloseTo((base[17]! - lo) / (hi - lo), 4);
  });

  it('NaN pixels stay NaN and do not disturb the fit', () => {
    const base = scene(100);
    const t = new TemporalNormalizer();
    t.next(base);
    const next = affine(base, 2, 1);
    next[3] = NaN;
    const r = t.next(next);
    expect(r.aligned[3]).toBeNaN();
    expect(r.aligned[50]).toBeCloseTo(base[50]!, 4);
  });
});

describe('--shard', () => {
  it('N shards together hold every input exactly once, whatever order the inputs came in', () => {
    const inputs = Array.from({ length: 23 }, (_, i) => `dir/img${String((i * 7) % 23).padStart(2, '0')}.png`);
    for (const n of [1, 2, 3, 5, 23, 30]) {
      const all = Array.from({ length: n }, (_, k) => takeShard(inputs, { index: k, count: n })).flat();
      expect(all.sort()).toEqual([...inputs].sort());
      expect(takeShard([...inputs].reverse(), { index: 0, count: n })).toEqual(takeShard(inputs, { index: 0, count: n }));
    }
    expect(takeShard(['b', 'a', 'c', 'd'], parseShard('1/2'))).toEqual(['b', 'd']);
  });

  for (const bad of ['2/2', '-1/3', '1/0', '1', 'a/b', '1/2/3', '0.5/2']) {
    it(`'${bad}' is a usage error`, () => {
      expect(() => parseShard(bad)).toThrow(/--shard must be K\/N with 0 <= K < N/);
    });
  }
});

describe('odd sizes for yuv420p', () => {
  it('pads by one pixel, repeating the last column and row', () => {
    const w = 3;
    const h = 3;
    const rgb = Uint8Array.from({ length: w * h * 3 }, (_, i) => i);
    const out = padEven(rgb, w, h, new Uint8Array(4 * 4 * 3));
    const px = (x: number, y: number) => Array.from(out.subarray((y * 4 + x) * 3, (y * 4 + x) * 3 + 3));
    const src = (x: number, y: number) => Array.from(rgb.subarray((y * w + x) * 3, (y * w + x) * 3 + 3));
    expect(px(1, 1)).toEqual(src(1, 1));
    expect(px(3, 0)).toEqual(src(2, 0));
    expect(px(0, 3)).toEqual(src(0, 2));
    expect(px(3, 3)).toEqual(src(2, 2));
  });
});

describe('progress', () => {
  it('shows frames done / total, the rate and the time left', () => {
    let text = '';
    const stream = { isTTY: true, columns: 200, write: (s: string) => ((text += s), true) } as unknown as NodeJS.WriteStream;
    const bar = new ProgressBar({ label: 'clip.mp4', total: 300, unit: 'items', noun: 'frames', stream });
    bar.update(300, '', 300);
    expect(text).toMatch(/clip\.mp4 \[#+\] 100% 300\/300 frames \d+\.\d\d\/s/);
    expect(eta(100, 300, 50)).toBe(' ETA 1:40');
    expect(eta(1, 7201, 1)).toBe(' ETA 2:00:00');
    expect(eta(0, 10, 1)).toBe('');
  });
});
