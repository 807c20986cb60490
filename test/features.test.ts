// `midas features`: the channel-grid builder on synthetic activations, the --layer
// resolution (stages, keys, fused modules, unknown names), and the command end to
// end on the reduced network of test/fixtures/midas (MIDAS_ARCH).

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { featureLabel, featuresCommand, LayerIndex, MAX_CHANNELS, stageKey } from '../src/cli/features.js';
import { UsageError } from '../src/cli/command.js';
import { colorMapTable } from '../src/midas/colormap.js';
import { MIDAS_V2, type MidasConfig } from '../src/midas/config.js';
import { ADVANCE, glyph, GLYPH_HEIGHT, GLYPH_WIDTH, textWidth } from '../src/midas/font5x7.js';
import { channelGrid, FLAT_LEVEL, GAP_COLOR, gridColumns, gridLayout, LABEL_BACKGROUND, LABEL_INK, type ChannelGrid } from '../src/midas/grid.js';
import { STAGES } from '../src/midas/network.js';
import { summarize } from '../src/midas/summary.js';
import { loadMidas } from '../src/node/load.js';
import { REDUCED, REDUCED_SMALL, REDUCED_WEIGHTS } from './reduced.js';
import { run, runNode } from './spawn.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WEIGHTS = REDUCED_WEIGHTS;

/** An HWC activation whose value at (y, x, c) is f(y, x, c). */
function activation(h: number, w: number, c: number, f: (y: number, x: number, ch: number) => number): Float32Array {
  const out = new Float32Array(h * w * c);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let ch = 0; ch < c; ch++) out[(y * w + x) * c + ch] = f(y, x, ch);
  return out;
}

function pixel(g: { data: Uint8Array; width: number }, x: number, y: number): number[] {
  const o = 3 * (y * g.width + x);
  return [g.data[o]!, g.data[o + 1]!, g.data[o + 2]!];
}

/** Tile `i`'s pixel (tx, ty). */
function tilePixel(g: ChannelGrid, i: number, tx: number, ty: number): number[] {
  const [x, y] = g.tileOrigin(i);
  return pixel(g, x + tx, y + ty);
}

const gray = (v: number) => [v, v, v];

describe('channelGrid', () => {
  it('places channel c as tile c, left to right then top to bottom, with 1-pixel gaps around every tile', () => {
    // Channel c is 0 except one pixel at (c % h, c % w): that pixel must be white in tile c.
    const [h, w, c] = [4, 6, 5];
    const g = channelGrid(activation(h, w, c, (y, x, ch) => (y === ch % h && x === ch % w ? 7 : -3)), h, w, c, { minTile: 1 });
    expect([g.cols, g.rows, g.tileWidth, g.tileHeight, g.upscale, g.downscale, g.labelHeight]).toEqual([2, 3, 6, 4, 1, 1, 0]);
    expect([g.width, g.height]).toEqual([2 * 7 + 1, 3 * 5 + 1]);
    for (let ch = 0; ch < c; ch++) {
      expect(g.tileOrigin(ch)).toEqual([1 + (ch % 2) * 7, 1 + Math.floor(ch / 2) * 5]);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) expect(tilePixel(g, ch, x, y)).toEqual(gray(y === ch % h && x === ch % w ? 255 : 0));
      }
    }
    // Gaps: the outer frame, the column between tiles, the row between tiles, and the empty sixth slot.
    for (const [x, y] of [[0, 0], [7, 2], [3, 5], [15 - 1, 16 - 1], [10, 13]] as const) expect(pixel(g, x, y)).toEqual([...GAP_COLOR]);
  });

  it('scales every channel to its own min..max; an all-equal channel is mid gray; NaN is black, infinities clip', () => {
    const [h, w] = [2, 3];
    // ch0: 0..5, ch1: 1000..1010 (same ramp, other range), ch2: constant, ch3: 0..5 with NaN and +-Infinity.
    const values = activation(h, w, 4, (y, x, ch) => {
      const i = y * w + x;
      if (ch === 0) return i;
      if (ch === 1) return 1000 + 2 * i;
      if (ch === 2) return 3.25;
      return i === 1 ? NaN : i === 2 ? Infinity : i === 3 ? -Infinity : i;
    });
    const g = channelGrid(values, h, w, 4, { minTile: 1 });
    const ramp = [0, 1, 2, 3, 4, 5].map((i) => Math.round((i / 5) * 255));
    for (const ch of [0, 1]) {
      for (let i = 0; i < 6; i++) expect(tilePixel(g, ch, i % w, Math.floor(i / w))).toEqual(gray(ramp[i]!));
    }
    for (let i = 0; i < 6; i++) expect(tilePixel(g, 2, i % w, Math.floor(i / w))).toEqual(gray(Math.round(FLAT_LEVEL * 255)));
    // ch3: finite range 0..5 (from values 0, 4, 5); NaN -> 0; +Inf -> 255; -Inf -> 0.
    expect([0, 1, 2, 3, 4, 5].map((i) => tilePixel(g, 3, i % w, Math.floor(i / w))[0])).toEqual([0, 0, 255, 0, ramp[4], 255]);
    expect(g.ranges).toEqual([{ min: 0, max: 5 }, { min: 1000, max: 1010 }, { min: 3.25, max: 3.25 }, { min: 0, max: 5 }]);
  });

  it('enlarges a 12x12 map x3 by nearest neighbour (tiles of at least 32 px) and shrinks big ones by box average to fit', () => {
    const small = channelGrid(activation(12, 12, 4, (y, x) => y * 12 + x), 12, 12, 4);
    expect([small.upscale, small.tileWidth, small.tileHeight]).toEqual([3, 36, 36]);
    // Source pixel (y=5, x=7) covers tile pixels 21..23 x 15..17.
    const want = tilePixel(small, 1, 21, 15);
    for (let ty = 15; ty < 18; ty++) for (let tx = 21; tx < 24; tx++) expect(tilePixel(small, 1, tx, ty)).toEqual(want);
    expect(want).toEqual(gray(Math.round(((5 * 12 + 7) / 143) * 255)));

    // 8x8 maps, tile area capped at 2 x (4 + 1) + 1 = 11 px: shrunk 1/2, each tile pixel the mean of a 2x2 block.
    const big = channelGrid(activation(8, 8, 4, (y, x) => (x % 2) * 10 + (y % 2) * 10), 8, 8, 4, { maxSide: 11 });
    expect([big.upscale, big.downscale, big.tileWidth, big.width]).toEqual([1, 2, 4, 11]);
    expect(tilePixel(big, 0, 1, 1)).toEqual(gray(128)); // mean of 0, 0.5, 0.5, 1
  });

  it('picks near-square grids without a nearly empty last row', () => {
    expect(gridColumns(256, 12, 12)).toBe(16);
    expect(gridColumns(256, 9, 12)).toBe(16); // 16 x 16, not 14 columns and a last row of 4
    expect(gridColumns(64, 144, 192)).toBe(8); // 8 x 8, not 7 columns and a last row of 1
    expect(gridColumns(1, 96, 128)).toBe(1);
  });

  it('draws at most maxChannels tiles (256 by default)', () => {
    const g = channelGrid(new Float32Array(2 * 2 * 300), 2, 2, 300);
    expect([g.channels, g.shown, g.cols, g.rows]).toEqual([300, 256, 16, 16]);
    expect(channelGrid(new Float32Array(2 * 2 * 300), 2, 2, 300, { maxChannels: 10 }).shown).toBe(10);
  });

  it('uses the colour map when asked (entry floor(v * 256), as the depth pictures)', () => {
    const g = channelGrid(activation(1, 4, 1, (_y, x) => x), 1, 4, 1, { minTile: 1, colors: 'inferno' });
    const t = colorMapTable('inferno');
    for (const [x, k] of [[0, 0], [1, 85], [2, 170], [3, 255]] as const) expect(tilePixel(g, 0, x, 0)).toEqual([t[3 * k], t[3 * k + 1], t[3 * k + 2]]);
  });

  it('puts a label band on top: the lines in the 5x7 font, tiles pushed down, image widened when the text is longer', () => {
    const lines = ['pretrained.layer1 (layer1)', '[1, 2, 2, 3] NHWC   min -1.5  max 2'];
    const g = channelGrid(activation(2, 2, 3, (y, x, c) => y + x + c), 2, 2, 3, { minTile: 1, label: lines, fontScale: 1 });
    expect(g.labelHeight).toBe(2 * 4 + 2 * 10 - 2);
    expect(g.width).toBe(2 * 4 + textWidth(lines[1]!));
    expect(g.tileOrigin(0)).toEqual([1, g.labelHeight + 1]);
    expect(pixel(g, 0, 0)).toEqual([...LABEL_BACKGROUND]);
    expect(pixel(g, 0, g.labelHeight)).toEqual([...GAP_COLOR]);
    // The first character 'p' drawn at (4, 4): compare its cells with the glyph.
    const p = glyph('p');
    for (let y = 0; y < GLYPH_HEIGHT; y++) {
      for (let x = 0; x < GLYPH_WIDTH; x++) {
        expect(pixel(g, 4 + x, 4 + y)).toEqual(p[y * GLYPH_WIDTH + x] ? [...LABEL_INK] : [...LABEL_BACKGROUND]);
      }
    }
    // Second line, first character '[' one line (10 rows) lower.
    expect(pixel(g, 4 + 1, 14)).toEqual([...LABEL_INK]);
  });

  it('the font draws every character a label uses, and an unknown one as a box', () => {
    const used = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-[],:x=()/ +';
    const box = glyph('\u00b5');
    for (const ch of used.replace(' ', '')) expect(glyph(ch), ch).not.toEqual(box);
    expect(glyph(' ').every((v) => v === 0)).toBe(true);
    expect(textWidth('ab')).toBe(ADVANCE * 2 - 1);
  });

  it('lays out the full-size network at 384x384 within 2048 px: layer4 shows 256 of 2048 channels x3, path1 is shrunk 1/2', () => {
    const rows = summarize(MIDAS_V2, 384, 384).rows;
    const idx = new LayerIndex(MIDAS_V2);
    const shapeOf = (key: string) => rows.filter((r) => r.key === key || r.key.startsWith(`${key}.`)).at(-1)!.output;
    for (const stage of STAGES) {
      const [, h, w, c] = shapeOf(idx.resolve(stage)[0]!.key) as [number, number, number, number];
      const l = gridLayout(h, w, c, { maxChannels: MAX_CHANNELS });
      const side = Math.max(l.cols * (l.tileWidth + 1) + 1, l.rows * (l.tileHeight + 1) + 1);
      expect(side, stage).toBeLessThanOrEqual(2048);
      expect(Math.min(l.tileWidth, l.tileHeight), stage).toBeGreaterThanOrEqual(32);
      expect(l.shown, stage).toBe(Math.min(c, 256));
    }
    expect(gridLayout(12, 12, 2048)).toMatchObject({ shown: 256, cols: 16, rows: 16, upscale: 3 });
    expect(gridLayout(192, 192, 256)).toMatchObject({ downscale: 2, tileWidth: 96 });
  });
});

describe('--layer', () => {
  const idx = new LayerIndex(REDUCED);

  it('takes the 12 stage names as aliases of their module keys, and all = the 12 stages', () => {
    expect(idx.resolve('layer1')).toEqual([{ name: 'layer1', key: 'pretrained.layer1', stage: 'layer1' }]);
    expect(idx.resolve('layer3_rn')[0]!.key).toBe('scratch.layer3_rn');
    expect(idx.resolve('path4')[0]!.key).toBe('scratch.refinenet4');
    const all = idx.resolve('all');
    expect(all.map((l) => l.name)).toEqual([...STAGES]);
    expect(all.map((l) => l.key)).toEqual(STAGES.map(stageKey));
    for (const l of all) expect(idx.runs(l.key)).toBe(true);
  });

  it('takes any module key with kernels under it, with or without its pretrained./scratch. prefix, comma-separated', () => {
    expect(idx.resolve('pretrained.layer3.0.conv2,refinenet2,output_conv.0').map((l) => l.key)).toEqual([
      'pretrained.layer3.0.conv2', 'scratch.refinenet2', 'scratch.output_conv.0',
    ]);
    expect(idx.resolve('pretrained.layer1.3')[0]!.key).toBe('pretrained.layer1.3'); // the maxpool
  });

  const refused: [string, RegExp][] = [
    ['pretrained.layer1.1', /^--layer pretrained\.layer1\.1: a BatchNorm2d that runs no kernel \(folded into pretrained\.layer1\.0 at load time\); use --layer pretrained\.layer1\.0/],
    ['pretrained.layer1.2', /a ReLU that runs no kernel \(it runs in pretrained\.layer1\.0's write\); use --layer pretrained\.layer1\.0/],
    ['pretrained.layer2.0.bn3', /folded into pretrained\.layer2\.0\.conv3/],
    ['scratch.output_conv.5', /use --layer scratch\.output_conv\.4/],
    ['scratch.refinenet4.resConfUnit1', /never runs \(refinenet4 has one input/],
    ['pretrained.layer1.0.weight', /a parameter, not a module output; use --layer pretrained\.layer1\.0$/],
    ['layer9', /^unknown --layer 'layer9' \(use a stage: layer1, layer2, .*path1; all; or a module key such as pretrained\.\S+, /],
  ];
  for (const [spec, msg] of refused) {
    it(`refuses ${spec} in one line that says what to use`, () => {
      let err: unknown;
      try {
        idx.resolve(spec);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UsageError);
      expect((err as Error).message).toMatch(msg);
      expect((err as Error).message).not.toContain('\n');
    });
  }
});

describe('midas features on the reduced network', () => {
  let dir: string;
  let img: string;
  const savedArch = process.env['MIDAS_ARCH'];
  let logs: string[];

  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'midas-features-'));
    writeFileSync(path.join(dir, 'arch.json'), JSON.stringify(REDUCED));
    process.env['MIDAS_ARCH'] = path.join(dir, 'arch.json');
    // A 100 x 75 picture with structure: a bright disc on a horizontal ramp.
    const p = new PNG({ width: 100, height: 75 });
    for (let y = 0; y < 75; y++) {
      for (let x = 0; x < 100; x++) {
        const o = 4 * (y * 100 + x);
        const disc = (x - 60) ** 2 + (y - 30) ** 2 < 300;
        p.data[o] = disc ? 250 : x * 2;
        p.data[o + 1] = disc ? 200 : 80;
        p.data[o + 2] = disc ? 40 : 255 - y * 3;
        p.data[o + 3] = 255;
      }
    }
    img = path.join(dir, 'scene.png');
    writeFileSync(img, PNG.sync.write(p));
  });
  afterAll(() => {
    if (savedArch === undefined) delete process.env['MIDAS_ARCH'];
    else process.env['MIDAS_ARCH'] = savedArch;
    rmSync(dir, { recursive: true, force: true });
  });

  async function run(args: string[]): Promise<number> {
    logs = [];
    const spy = vi.spyOn(console, 'log').mockImplementation((line: string) => void logs.push(line));
    try {
      return await featuresCommand.run(args);
    } finally {
      spy.mockRestore();
    }
  }

  it('writes DIR/<stem>-layer1.png: the grid of the activation the library computes, with its label', async () => {
    const out = path.join(dir, 'one');
    expect(await run([img, '--layer', 'layer1', '-o', out, '--weights', WEIGHTS, '--size', '128', '-q'])).toBe(0);
    const file = path.join(out, 'scene-layer1.png');
    expect(logs).toEqual([file]);
    const png = PNG.sync.read(readFileSync(file));

    // The same activation through the library, gridded here.
    const model = await loadMidas({ weights: WEIGHTS, size: 128, config: REDUCED });
    model.runtime.capture(['pretrained.layer1']);
    await model.predict(img);
    const t = model.runtime.takeCaptured().get('pretrained.layer1')!;
    expect(t.shape).toEqual([1, 24, 32, 4 * REDUCED.planes[0]]);
    const data = await t.read();
    t.dispose();
    model.dispose();
    let min = Infinity;
    let max = -Infinity;
    for (const v of data) [min, max] = [Math.min(min, v), Math.max(max, v)];
    const layout = gridLayout(24, 32, 32);
    expect(layout.upscale).toBe(2);
    const label = featureLabel({ name: 'layer1', key: 'pretrained.layer1', stage: 'layer1' }, t.shape, { min, max }, 32, 'tiles enlarged x2', 'gray');
    expect(label[0]).toBe('pretrained.layer1 (layer1)');
    expect(label[1]).toMatch(/^\[1, 24, 32, 32\] NHWC {3}min \S+ {2}max \S+$/);
    expect(label[2]).toBe('32 channels, each min..max = black..white; tiles enlarged x2');
    const want = channelGrid(data, 24, 32, 32, { label });

    expect([png.width, png.height]).toEqual([want.width, want.height]);
    const rgb = new Uint8Array(png.width * png.height * 3);
    for (let i = 0; i < png.width * png.height; i++) rgb.set(png.data.subarray(4 * i, 4 * i + 3), 3 * i);
    expect(Buffer.from(rgb).equals(Buffer.from(want.data))).toBe(true);
    expect(want.labelHeight).toBeGreaterThan(0);
  });

  it('--layer all writes one file per stage (12), named by stage', async () => {
    const out = path.join(dir, 'all');
    expect(await run([img, '--layer', 'all', '-o', out, '--weights', WEIGHTS, '--size', '128', '-q'])).toBe(0);
    const want = STAGES.map((s) => `scene-${s}.png`);
    expect(readdirSync(out).sort()).toEqual([...want].sort());
    expect(logs).toEqual(want.map((f) => path.join(out, f)));
    // Every grid decodes and has a label band of the background colour on top.
    for (const f of want) {
      const png = PNG.sync.read(readFileSync(path.join(out, f)));
      expect(png.width, f).toBeGreaterThanOrEqual(32);
      expect([...png.data.subarray(0, 3)], f).toEqual([...LABEL_BACKGROUND]);
    }
  });

  it('an existing output is an error without --overwrite and replaced with it', async () => {
    const out = path.join(dir, 'again');
    const args = [img, '--layer', 'path2', '-o', out, '--weights', WEIGHTS, '--size', '128', '-q'];
    expect(await run(args)).toBe(0);
    await expect(run(args)).rejects.toThrow(/scene-path2\.png already exist\(s\); use --overwrite to replace/);
    expect(await run([...args, '--overwrite', '--colormap', 'turbo'])).toBe(0);
    expect(readdirSync(out)).toEqual(['scene-path2.png']);
  });

  it('an unknown key, a missing --layer or a bad --colormap is a usage error before any work', async () => {
    await expect(run([img, '--layer', 'layer7', '-o', dir])).rejects.toThrow(UsageError);
    await expect(run([img, '--layer', 'layer7', '-o', dir])).rejects.toThrow(/^unknown --layer 'layer7' \(use a stage: layer1/);
    await expect(run([img, '-o', dir])).rejects.toThrow(/--layer is required/);
    await expect(run([img, '--layer', 'layer1', '--colormap', 'jet'])).rejects.toThrow(/unknown --colormap 'jet'/);
    await expect(run([])).rejects.toThrow(/no image given/);
  });

  it('MiDaS_small (reduced): a block of the EfficientNet encoder by its checkpoint key; a block the config lacks is a usage error', async () => {
    const saved = process.env['MIDAS_ARCH'];
    writeFileSync(path.join(dir, 'arch-small.json'), JSON.stringify(REDUCED_SMALL.config));
    process.env['MIDAS_ARCH'] = path.join(dir, 'arch-small.json');
    try {
      const out = path.join(dir, 'small');
      const args = [img, '--layer', 'pretrained.layer3.1.0.conv_pwl,path1', '-o', out, '--weights', REDUCED_SMALL.weights, '--size', '128', '-q'];
      expect(await run(args)).toBe(0);
      expect(readdirSync(out).sort()).toEqual(['scene-path1.png', 'scene-pretrained.layer3.1.0.conv_pwl.png']);
      await expect(run([img, '--layer', 'pretrained.layer3.1.1.conv_pwl', '-o', out, '--weights', REDUCED_SMALL.weights, '--size', '128', '-q'])).rejects.toThrow(UsageError);
    } finally {
      process.env['MIDAS_ARCH'] = saved;
    }
  });

  it('as a command: node bin/midas.js features ... writes the file; an unknown key is one line, exit 2', async () => {
    expect(existsSync(path.join(ROOT, 'dist/src/cli/main.js')), 'run `npm run build` first (npm test does)').toBe(true);
    const env = { ...process.env, MIDAS_ARCH: path.join(dir, 'arch.json') };
    const out = path.join(dir, 'spawned');
    const cli = (args: string[]) => runNode([path.join(ROOT, 'bin/midas.js'), 'features', ...args], { env, timeout: 300_000 });
    const ok = await cli([img, '--layer', 'refinenet1', '-o', out, '--weights', WEIGHTS, '--size', '128', '-q']);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout.trim()).toBe(path.join(out, 'scene-refinenet1.png'));
    const bad = await cli([img, '--layer', 'nope', '-o', out, '--weights', WEIGHTS]);
    expect(bad.status).toBe(2);
    const lines = bad.stderr.split('\n').filter((l) => l && !l.startsWith('Warning: maxDynamic'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^midas features: unknown --layer 'nope'/);
  });
});
