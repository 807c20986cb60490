// The browser entry's in-memory PFM and PNG writers give the files the Node entry
// writes: PFM byte for byte, PNGs pixel for pixel (read back with pngjs).
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { encodeColorPng, encodePfm, encodePng16, colorizeRGBA } from '../src/browser/outputs.js';
import { colorize } from '../src/midas/colormap.js';
import { depthTo16, writePfm } from '../src/node/outputs.js';

function map(width: number, height: number): Float32Array {
  const d = new Float32Array(width * height);
  for (let i = 0; i < d.length; i++) d[i] = Math.sin(i * 0.37) * 40 + (i % width) * 0.5;
  d[3] = NaN;
  d[5] = Infinity;
  return d;
}

describe('browser outputs', () => {
  const [w, h] = [37, 23];
  const depth = map(w, h);

  it('PFM bytes equal writePfm', () => {
    const dir = mkdtempSync(join(tmpdir(), 'midas-pfm-'));
    try {
      writePfm(join(dir, 'a.pfm'), depth, w, h);
      expect(Buffer.from(encodePfm(depth, w, h)).equals(readFileSync(join(dir, 'a.pfm')))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('16-bit PNG: the values of depthTo16, big-endian gray', async () => {
    const png = PNG.sync.read(Buffer.from(await encodePng16(depth, w, h)), { skipRescale: true } as never);
    expect([png.width, png.height]).toEqual([w, h]);
    const expected = depthTo16(depth);
    // pngjs expands gray to RGBA, 16-bit samples as 2-byte values per channel when not rescaled.
    const got = new Uint16Array(w * h);
    const data = png.data as unknown as Uint16Array | Buffer;
    for (let i = 0; i < w * h; i++) got[i] = data instanceof Uint16Array ? data[4 * i]! : (data as Buffer).readUInt16LE(8 * i);
    expect(Array.from(got)).toEqual(Array.from(expected));
  });

  it('colour PNG and RGBA pixels: the colour map of colorize', async () => {
    const png = PNG.sync.read(Buffer.from(await encodeColorPng(depth, w, h, 'turbo')));
    const rgb = colorize(depth, 'turbo');
    const rgba = colorizeRGBA(depth, w, h, 'turbo');
    for (let i = 0; i < w * h; i++) {
      for (let c = 0; c < 3; c++) {
        expect(png.data[4 * i + c]).toBe(rgb[3 * i + c]);
        expect(rgba[4 * i + c]).toBe(rgb[3 * i + c]);
      }
      expect(rgba[4 * i + 3]).toBe(255);
    }
  });

  it('refuses a map of the wrong length', () => {
    expect(() => encodePfm(new Float32Array(5), 2, 2)).toThrow(/needs 4 values, got 5/);
  });
});
