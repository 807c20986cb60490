// Alignment to metric depth (src/midas/align.ts, src/cli/align.ts) against NumPy's
// solution of the same least-squares problem (test/fixtures/align/generate.py).
//
// Tolerances, against NumPy (np.linalg.lstsq on [p, 1], float64), and against the
// exact solution of the same float64 problem (rational arithmetic in generate.py):
//   scale, shift   1e-9 relative to both. Measured: at most 2e-15 (scale) and 4e-14
//                  (shift) relative, except the ill-conditioned `offset` case
//                  (cond([p, 1]) = 9e7): 4e-13 from NumPy, 8e-15 from exact. Where
//                  the exact scale is 0 (a flat target) the scale is compared as
//                  |Δs|·max|p| over the aligned disparity's size instead.
//   absRel         1e-9 relative plus 1e-13 absolute (an exact fit's absRel is
//                  rounding noise near 1e-15 on both sides); 1e-8 for `offset`,
//                  whose aligned disparity s·p + t ≈ 0.03 is the difference of two
//                  terms ≈ 2e4, so float64 rounding alone moves it by ~1e-10 and the
//                  last bits of s by ~1e-9 (measured 4e-10; elsewhere ≤ 2e-13).
//   delta1         exactly (the generator keeps every ratio at least 1e-6 away
//                  from 1.25, so rounding cannot move a pixel across it).
//   depth          NaN in the same places; elsewhere within 2^-23 of NumPy's
//                  float32 value, relatively (one float32 step). Measured: identical.
//   valid, clamped pixel counts and the default max depth: exactly.
// MIDAS_REPORT_ERRORS=1 prints the measured errors.

import { existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AlignError, alignToDepth, DEFAULT_MAX_DEPTH_FACTOR, type AlignErrorCode } from '../src/midas/align.js';
import { alignCommand, readMapFile } from '../src/cli/align.js';
import { main, register } from '../src/cli/main.js';
import { readPfm, writePfm, writePng16 } from '../src/node/outputs.js';
import { readNpy } from './npy.js';
import { runNode } from './spawn.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FIXTURES = path.join(ROOT, 'test/fixtures/align');

interface Expect {
  valid_count: number;
  rank: number;
  error?: AlignErrorCode;
  scale?: number;
  shift?: number;
  scale_exact?: number;
  shift_exact?: number;
  absRel?: number;
  absRel_exact?: number;
  delta1?: number;
  max_depth_used?: number;
  clamped_count?: number;
  condition?: number;
}

interface Case {
  name: string;
  note: string;
  width: number;
  height: number;
  target_kind: 'depth' | 'disparity';
  max_depth: number | null;
  target_scale: number | null;
  mask: boolean;
  expect: Expect;
  files?: { prediction: string; target: string; mask: string };
}

const manifest = JSON.parse(readFileSync(path.join(FIXTURES, 'manifest.json'), 'utf8')) as {
  numpy: string;
  default_max_depth_factor: number;
  cases: Case[];
};
const byName = (name: string): Case => manifest.cases.find((c) => c.name === name)!;

function load(c: Case) {
  const dir = path.join(FIXTURES, c.name);
  const pred = readNpy(path.join(dir, 'pred.npy')).data;
  const rawTarget = readNpy(path.join(dir, 'target.npy')).data;
  let target: Float32Array | Float64Array = rawTarget;
  if (c.target_scale !== null) target = Float64Array.from(rawTarget, (v) => v / c.target_scale!);
  const mask = c.mask ? readNpy(path.join(dir, 'mask.npy')).data : undefined;
  const depth = existsSync(path.join(dir, 'depth.npy')) ? readNpy(path.join(dir, 'depth.npy')).data : undefined;
  return { pred, rawTarget, target, mask, depth };
}

function optionsFor(c: Case, mask: Float32Array | undefined) {
  return {
    targetKind: c.target_kind,
    ...(mask ? { mask } : {}),
    ...(c.max_depth !== null ? { maxDepth: c.max_depth } : {}),
  };
}

const rel = (a: number, b: number) => (a === b ? 0 : Math.abs(a - b) / Math.abs(b));

/** The AlignError `fn` throws. */
function alignError(fn: () => unknown): AlignError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AlignError);
    expect((e as Error).message).not.toContain('\n');
    return e as AlignError;
  }
  throw new Error('expected an AlignError');
}

const measured: string[] = [];
afterAll(() => {
  if (process.env['MIDAS_REPORT_ERRORS']) console.log(`alignment vs NumPy ${manifest.numpy}:\n  ${measured.join('\n  ')}`);
});

describe('alignToDepth against NumPy', () => {
  it('the fixtures and the library agree on the default max depth factor', () => {
    expect(manifest.default_max_depth_factor).toBe(DEFAULT_MAX_DEPTH_FACTOR);
  });

  for (const c of manifest.cases.filter((k) => !k.expect.error)) {
    it(`${c.name}: ${c.note}`, () => {
      const { pred, target, mask, depth: want } = load(c);
      const e = c.expect;
      const r = alignToDepth(pred, target, optionsFor(c, mask));

      expect(r.validCount).toBe(e.valid_count);
      expect(r.maxDepth).toBe(e.max_depth_used);
      expect(r.clampedCount).toBe(e.clamped_count);

      // Scale and shift, each relative where the exact value is not 0, and together as
      // their largest effect on the aligned disparity over the valid pixels.
      let maxP = 0;
      let maxA = 0;
      for (let i = 0; i < pred.length; i++) {
        if (Number.isFinite(pred[i]!)) maxP = Math.max(maxP, Math.abs(pred[i]!));
        const a = e.scale! * pred[i]! + e.shift!;
        if (Number.isFinite(a)) maxA = Math.max(maxA, Math.abs(a));
      }
      const effect = (Math.abs(r.scale - e.scale!) * maxP + Math.abs(r.shift - e.shift!)) / maxA;
      expect(effect).toBeLessThan(1e-9);
      const sRel = e.scale_exact === 0 ? Math.abs(r.scale - e.scale!) * maxP / maxA : rel(r.scale, e.scale!);
      const tRel = rel(r.shift, e.shift!);
      expect(sRel).toBeLessThan(1e-9);
      expect(tRel).toBeLessThan(1e-9);
      const sExact = e.scale_exact === 0 ? Math.abs(r.scale) * maxP / maxA : rel(r.scale, e.scale_exact!);
      const tExact = rel(r.shift, e.shift_exact!);
      expect(sExact).toBeLessThan(1e-9);
      expect(tExact).toBeLessThan(1e-9);

      // absRel near 0 (exact fits) is rounding noise of ~1e-15 on both sides.
      const absRelErr = Math.abs(r.absRel - e.absRel!);
      const absRelTol = e.condition! < 1e6 ? 1e-9 : 1e-8;
      expect(absRelErr).toBeLessThan(absRelTol * e.absRel! + 1e-13);
      const absRelExactErr = Math.abs(r.absRel - e.absRel_exact!);
      expect(absRelExactErr).toBeLessThan(absRelTol * e.absRel_exact! + 1e-13);
      expect(r.delta1).toBe(e.delta1);

      // Depth, pixel by pixel.
      expect(r.depth.length).toBe(want!.length);
      let worst = 0;
      let nanMismatch = 0;
      for (let i = 0; i < want!.length; i++) {
        const a = r.depth[i]!;
        const b = want![i]!;
        if (Number.isNaN(a) || Number.isNaN(b)) {
          if (Number.isNaN(a) !== Number.isNaN(b)) nanMismatch++;
          continue;
        }
        worst = Math.max(worst, rel(a, b));
      }
      expect(nanMismatch).toBe(0);
      expect(worst).toBeLessThanOrEqual(2 ** -23);
      measured.push(
        `${c.name.padEnd(16)} scale ${sRel.toExponential(1)} (exact ${sExact.toExponential(1)}), ` +
          `shift ${tRel.toExponential(1)} (exact ${tExact.toExponential(1)}), absRel ${(absRelErr / e.absRel!).toExponential(1)} (exact ${(absRelExactErr / (e.absRel_exact! || 1)).toExponential(1)}; abs ${absRelErr.toExponential(1)}), ` +
          `depth ${worst.toExponential(1)} [cond ${e.condition!.toExponential(1)}]`,
      );
    });
  }
});

describe('degenerate cases: a clear AlignError', () => {
  for (const c of manifest.cases.filter((k) => k.expect.error)) {
    it(`${c.name}: ${c.note} (NumPy: rank ${c.expect.rank}, ${c.expect.valid_count} valid)`, () => {
      const { pred, target, mask } = load(c);
      const err = alignError(() => alignToDepth(pred, target, optionsFor(c, mask)));
      expect(err.code).toBe(c.expect.error);
      if (c.expect.error === 'too-few-points') {
        const n = c.expect.valid_count;
        expect(err.message).toMatch(new RegExp(`^only ${n} valid pixels? of 1200; fitting scale and shift needs at least 2 \\(`));
      } else {
        expect(err.message).toMatch(new RegExp(`the prediction is constant \\([-0-9.e]+\\) on all ${c.expect.valid_count} valid pixels`));
        expect(err.message).toContain('singular');
      }
    });
  }

  it('says why pixels were left out', () => {
    const pred = new Float32Array([1, 2, NaN, 4, 5, 6]);
    const target = new Float32Array([1, 0, 3, NaN, -1, 2]);
    const mask = new Uint8Array([1, 1, 1, 1, 1, 0]);
    expect(alignError(() => alignToDepth(pred, target, { mask })).message).toBe(
      'only 1 valid pixel of 6; fitting scale and shift needs at least 2 ' +
        '(1 masked out, 3 with a target that is not finite and > 0, 1 with a non-finite prediction)',
    );
  });

  it('exactly 2 points with different predictions fit exactly', () => {
    const r = alignToDepth(new Float32Array([10, 20, 30]), new Float32Array([0.5, 0.25, 0]));
    // 1/D = 2 at p = 10 and 4 at p = 20: s = 0.2, t = 0
    expect(r.scale).toBeCloseTo(0.2, 15);
    expect(r.shift).toBeCloseTo(0, 14);
    expect(r.validCount).toBe(2);
    expect(r.absRel).toBeLessThan(1e-15);
    expect(r.delta1).toBe(1);
    expect(r.maxDepth).toBe(5);
    expect(Array.from(r.depth)).toEqual([Math.fround(0.5), Math.fround(0.25), Math.fround(1 / 6)]);
  });
});

describe('alignToDepth: inputs and options', () => {
  const p = new Float32Array([1, 2, 3, 4]);
  const d = new Float32Array([4, 2, 1, 0.5]);

  it('lengths that differ are an error naming both', () => {
    const e = alignError(() => alignToDepth(p, new Float32Array(5)));
    expect(e.code).toBe('size');
    expect(e.message).toBe('the prediction has 4 values but the target has 5');
    expect(alignError(() => alignToDepth(p, d, { mask: new Uint8Array(3) })).message).toBe('the prediction has 4 values but the mask has 3');
  });

  it('maxDepth must be finite and > 0; targetKind depth or disparity', () => {
    for (const maxDepth of [0, -1, NaN, Infinity]) {
      expect(alignError(() => alignToDepth(p, d, { maxDepth })).code).toBe('option');
    }
    expect(alignError(() => alignToDepth(p, d, { targetKind: 'metres' as 'depth' })).message).toBe(
      "targetKind must be 'depth' or 'disparity', not 'metres'",
    );
  });

  it('recovers the scale and shift of a noise-free prediction, and the depth', () => {
    const n = 500;
    const depth = Float64Array.from({ length: n }, (_, i) => 1 + (i * 37) % 97 / 3);
    const pred = Float64Array.from(depth, (z) => 1234.5 / z + 87.25);
    const r = alignToDepth(pred, depth);
    expect(rel(r.scale, 1 / 1234.5)).toBeLessThan(1e-13);
    expect(rel(r.shift, -87.25 / 1234.5)).toBeLessThan(1e-12);
    expect(r.absRel).toBeLessThan(1e-12);
    expect(r.delta1).toBe(1);
    expect(r.clampedCount).toBe(0);
    for (let i = 0; i < n; i++) expect(rel(r.depth[i]!, depth[i]!)).toBeLessThan(1e-6);
  });

  it('a disparity target gives the same fit as the depth it is the inverse of', () => {
    const depth = new Float64Array([4, 2, 1, 0.5, 3]);
    const disp = Float64Array.from(depth, (z) => 1 / z);
    const pred = new Float32Array([1.1, 1.9, 3.2, 3.9, 1.3]);
    const a = alignToDepth(pred, depth);
    const b = alignToDepth(pred, disp, { targetKind: 'disparity' });
    expect(rel(b.scale, a.scale)).toBeLessThan(1e-14);
    expect(rel(b.shift, a.shift)).toBeLessThan(1e-13);
    expect(rel(b.absRel, a.absRel)).toBeLessThan(1e-12);
    expect(b.maxDepth).toBeCloseTo(a.maxDepth, 12);
  });

  it('clamps aligned disparities at or below 1/maxDepth (zero and negative ones) to maxDepth', () => {
    // 1/D = p - 1 on the valid pixels: p = 1 gives 0, p = 0.5 gives -0.5.
    const pred = new Float32Array([2, 3, 5, 1, 0.5, 1.05]);
    const target = new Float32Array([1, 0.5, 0.25, 0, 0, 0]);
    const r = alignToDepth(pred, target, { maxDepth: 10 });
    expect(r.scale).toBeCloseTo(1, 14);
    expect(r.shift).toBeCloseTo(-1, 14);
    expect(r.clampedCount).toBe(3);
    expect(Array.from(r.depth.subarray(3))).toEqual([10, 10, 10]);
    // Default: 10 x the largest valid target depth (1) = 10 as well.
    expect(alignToDepth(pred, target).maxDepth).toBe(10);
  });

  it('masks: Uint8Array and Float32Array, non-zero and not NaN is valid', () => {
    const pred = new Float32Array([1, 2, 3, 4, 100]);
    const target = new Float64Array([1, 1 / 2, 1 / 3, 1 / 4, 1]);
    const a = alignToDepth(pred, target, { mask: new Uint8Array([1, 1, 1, 1, 0]) });
    const b = alignToDepth(pred, target, { mask: new Float32Array([1, -2, 0.5, 7, NaN]) });
    expect(a.validCount).toBe(4);
    expect(b.validCount).toBe(4);
    expect(a.scale).toBeCloseTo(1, 13);
    expect(b.scale).toBe(a.scale);
    expect(b.shift).toBe(a.shift);
  });
});

// ---- the command ------------------------------------------------------------------

let tmp: string;
let n = 0;
/** A fresh empty folder for one test. */
const folder = () => {
  const d = path.join(tmp, `t${n++}`);
  mkdirSync(d);
  return d;
};

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'midas-align-test-'));
  register(alignCommand); // main() then loads nothing else (and no GPU code)
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** `midas align ...` in this process: exit code, stdout and stderr. */
async function align(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  const error = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')));
  try {
    const code = await main(['align', ...args]);
    return { code, stdout: out.join('\n'), stderr: err.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

const PNG_MM = byName('png_mm');
const mmFile = (f: 'prediction' | 'target' | 'mask') => path.join(FIXTURES, 'png_mm', PNG_MM.files![f]);

function png(file: string, width: number, height: number, values: ArrayLike<number>, bitDepth: 8 | 16, colorType: 0 | 2 = 0): void {
  const p = new PNG({ width, height, bitDepth, colorType, inputColorType: colorType, inputHasAlpha: false });
  const ch = colorType === 2 ? 3 : 1;
  if (bitDepth === 16) {
    const v = new Uint16Array(width * height * ch);
    for (let i = 0; i < v.length; i++) v[i] = values[Math.floor(i / ch)]!;
    p.data = Buffer.from(v.buffer);
  } else {
    p.data = Buffer.from(Uint8Array.from({ length: width * height * ch }, (_, i) => values[Math.floor(i / ch)]!));
  }
  writeFileSync(file, PNG.sync.write(p, { bitDepth, colorType, inputColorType: colorType, inputHasAlpha: false }));
}

describe('midas align (in process)', () => {
  it('the files generate.py wrote by hand (PFM, 16-bit PNG in mm, 8-bit PNG mask): one block, then the output', async () => {
    const out = path.join(folder(), 'metric.pfm');
    const r = await align([mmFile('prediction'), mmFile('target'), '--mask', mmFile('mask'), '--target-scale', '1000', '-o', out]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const e = PNG_MM.expect;
    const lines = r.stdout.split('\n');
    expect(lines).toEqual([
      `prediction  ${mmFile('prediction')} (40x30, PFM)`,
      `target      ${mmFile('target')} (16-bit PNG / 1000, depth)`,
      `mask        ${mmFile('mask')} (8-bit PNG, 300 of 1200 set)`,
      `scale       ${Number(e.scale!.toPrecision(7))}`,
      `shift       ${Number(e.shift!.toPrecision(7))}`,
      'valid       300 of 1200 pixels (25.00%)',
      `max depth   ${e.max_depth_used} (10 x the largest valid target depth); ${e.clamped_count} pixels clamped to it`,
      `AbsRel      ${e.absRel!.toFixed(4)}`,
      `δ<1.25      ${e.delta1!.toFixed(4)} (${(100 * e.delta1!).toFixed(2)}%)`,
      `wrote       ${out}`,
    ]);
    const written = readPfm(out);
    expect([written.width, written.height, written.channels]).toEqual([40, 30, 1]);
    const want = load(PNG_MM).depth!;
    for (let i = 0; i < want.length; i++) expect(rel(written.data[i]!, want[i]!)).toBeLessThanOrEqual(2 ** -23);
  });

  it('--json: one object with the numbers NumPy gives', async () => {
    const r = await align([mmFile('prediction'), mmFile('target'), '-m', mmFile('mask'), '--target-scale', '1000', '--json']);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toHaveLength(1);
    const j = JSON.parse(r.stdout);
    const e = PNG_MM.expect;
    expect(rel(j.scale, e.scale!)).toBeLessThan(1e-9);
    expect(rel(j.shift, e.shift!)).toBeLessThan(1e-9);
    expect(rel(j.absRel, e.absRel!)).toBeLessThan(1e-9);
    expect(j).toMatchObject({
      width: 40, height: 30, targetKind: 'depth', targetScale: 1000, validPixels: 300, maskPixels: 300, totalPixels: 1200,
      maxDepth: e.max_depth_used, maxDepthDefault: true, clampedPixels: e.clamped_count, delta1: e.delta1, output: null, warnings: [],
    });
  });

  it('PFM target and PFM mask, --target-kind disparity and --max-depth', async () => {
    const dir = folder();
    for (const name of ['disparity', 'float_mask']) {
      const c = byName(name);
      const { pred, rawTarget, mask } = load(c);
      writePfm(path.join(dir, `${name}-pred.pfm`), pred, 40, 30);
      writePfm(path.join(dir, `${name}-target.pfm`), rawTarget, 40, 30);
      if (mask) writePfm(path.join(dir, `${name}-mask.pfm`), mask, 40, 30);
    }
    const d = await align([path.join(dir, 'disparity-pred.pfm'), path.join(dir, 'disparity-target.pfm'), '--target-kind', 'disparity', '--json']);
    expect(d.code).toBe(0);
    const dj = JSON.parse(d.stdout);
    expect(rel(dj.scale, byName('disparity').expect.scale!)).toBeLessThan(1e-9);
    expect(dj.delta1).toBe(byName('disparity').expect.delta1);

    const f = await align([
      path.join(dir, 'float_mask-pred.pfm'), path.join(dir, 'float_mask-target.pfm'), '--mask', path.join(dir, 'float_mask-mask.pfm'),
      '--max-depth', '20', '--json',
    ]);
    expect(f.code).toBe(0);
    const fj = JSON.parse(f.stdout);
    const want = alignToDepth(load(byName('float_mask')).pred, load(byName('float_mask')).target, { mask: load(byName('float_mask')).mask!, maxDepth: 20 });
    expect(fj).toMatchObject({ scale: want.scale, shift: want.shift, validPixels: 696, maxDepth: 20, maxDepthDefault: false, absRel: want.absRel });
    expect(rel(fj.scale, byName('float_mask').expect.scale!)).toBeLessThan(1e-9);
  });

  it('8-bit PNG target values as stored; an RGB PNG target is refused', async () => {
    const dir = folder();
    const pred = new Float32Array([10, 20, 30, 40, 50, 60]);
    writePfm(path.join(dir, 'p.pfm'), pred, 3, 2);
    const stored = [50, 25, 0, 12, 10, 0]; // 1/D = 0.002 p on the valid pixels but for the noise in 12
    png(path.join(dir, 'gray8.png'), 3, 2, stored, 8);
    png(path.join(dir, 'rgb.png'), 3, 2, stored, 8, 2);
    const r = await align([path.join(dir, 'p.pfm'), path.join(dir, 'gray8.png'), '--json']);
    expect(r.code).toBe(0);
    const want = alignToDepth(pred, Float32Array.from(stored));
    expect(JSON.parse(r.stdout)).toMatchObject({ scale: want.scale, shift: want.shift, validPixels: 4 });
    expect(readMapFile(path.join(dir, 'gray8.png')).format).toBe('8-bit PNG');

    const bad = await align([path.join(dir, 'p.pfm'), path.join(dir, 'rgb.png')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe(`midas align: ${path.join(dir, 'rgb.png')}: is a RGB PNG; a grayscale PNG (one value a pixel) is needed`);
  });

  it('16-bit PNG values above 255 are kept (no rescaling)', () => {
    const dir = folder();
    png(path.join(dir, 'g16.png'), 2, 2, [0, 1, 40000, 65535], 16);
    const m = readMapFile(path.join(dir, 'g16.png'));
    expect(Array.from(m.data)).toEqual([0, 1, 40000, 65535]);
    expect(m.format).toBe('16-bit PNG');
  });

  it("predict's 16-bit PNG (min-max scaled) aligns like its PFM, to its quantization", async () => {
    const dir = folder();
    const { pred } = load(PNG_MM);
    writePng16(path.join(dir, 'pred.png'), pred, 40, 30);
    const args = [mmFile('target'), '-m', mmFile('mask'), '--target-scale', '1000', '--json'];
    const a = JSON.parse((await align([path.join(dir, 'pred.png'), ...args])).stdout);
    const b = JSON.parse((await align([mmFile('prediction'), ...args])).stdout);
    expect(Math.abs(a.absRel - b.absRel)).toBeLessThan(1e-4);
    expect(a.delta1).toBe(b.delta1);
    // The PNG is (p - min) / (max - min) * 65535: its scale is the PFM's times (max - min) / 65535.
    let min = Infinity;
    let max = -Infinity;
    for (const v of pred) {
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    expect(rel(a.scale, (b.scale * (max - min)) / 65535)).toBeLessThan(1e-4);
  });

  it('an existing output is kept without --overwrite, replaced with it', async () => {
    const out = path.join(folder(), 'metric.pfm');
    writeFileSync(out, 'keep me');
    const args = [mmFile('prediction'), mmFile('target'), '-m', mmFile('mask'), '--target-scale', '1000', '-o', out];
    const r = await align(args);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`midas align: ${out}: already exists (pass --overwrite to replace it)`);
    expect(readFileSync(out, 'utf8')).toBe('keep me');
    const o = await align([...args, '--overwrite']);
    expect(o.code).toBe(0);
    expect(readPfm(out).width).toBe(40);
  });

  it('refuses an output that is one of the inputs, even with --overwrite, under another name or a hard link', async () => {
    const dir = folder();
    const { pred, rawTarget } = load(PNG_MM);
    const p = path.join(dir, 'p.pfm');
    const t = path.join(dir, 't.pfm');
    writePfm(p, pred, 40, 30);
    writePfm(t, Float32Array.from(rawTarget, (v) => v / 1000), 40, 30);
    const link = path.join(dir, 'link.pfm');
    linkSync(t, link);
    const before = readFileSync(t);
    for (const [o, what] of [[p, 'prediction'], [path.join(dir, 'sub', '..', 't.pfm'), 'target'], [link, 'target']] as const) {
      const r = await align([p, t, '-o', o, '--overwrite']);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`midas align: the output ${o} is the ${what} file; choose another -o`);
    }
    const m = await align([p, t, '-m', mmFile('mask'), '-o', mmFile('mask'), '--overwrite']);
    expect(m.code).toBe(2);
    expect(m.stderr).toMatch(/is the mask file; choose another -o$/);
    expect(readFileSync(t).equals(before)).toBe(true);
  });

  it('sizes that differ: an error naming both, exit 1', async () => {
    const dir = folder();
    writePfm(path.join(dir, 'small.pfm'), new Float32Array(20 * 15).fill(1), 20, 15);
    const t = await align([mmFile('prediction'), path.join(dir, 'small.pfm')]);
    expect(t.code).toBe(1);
    expect(t.stderr).toBe(
      `midas align: the target ${path.join(dir, 'small.pfm')} is 20x15 but the prediction ${mmFile('prediction')} is 40x30; they must be the same size`,
    );
    const m = await align([mmFile('prediction'), mmFile('target'), '--mask', path.join(dir, 'small.pfm')]);
    expect(m.code).toBe(1);
    expect(m.stderr).toMatch(/the mask .*small\.pfm is 20x15 but the prediction .* is 40x30; they must be the same size$/);
  });

  it('degenerate inputs: the AlignError on one line, exit 1, nothing written', async () => {
    const dir = folder();
    const one = byName('one_point');
    const { pred, rawTarget, mask } = load(one);
    writePfm(path.join(dir, 'p.pfm'), pred, 40, 30);
    writePfm(path.join(dir, 't.pfm'), rawTarget, 40, 30);
    writePfm(path.join(dir, 'm.pfm'), mask!, 40, 30);
    const out = path.join(dir, 'out.pfm');
    const r = await align([path.join(dir, 'p.pfm'), path.join(dir, 't.pfm'), '--mask', path.join(dir, 'm.pfm'), '-o', out]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^midas align: only 1 valid pixel of 1200; fitting scale and shift needs at least 2 \(1199 masked out, /);
    expect(existsSync(out)).toBe(false);

    const c = load(byName('constant_pred'));
    writePfm(path.join(dir, 'cp.pfm'), c.pred, 40, 30);
    writePfm(path.join(dir, 'ct.pfm'), c.rawTarget, 40, 30);
    writePfm(path.join(dir, 'cm.pfm'), c.mask!, 40, 30);
    const k = await align([path.join(dir, 'cp.pfm'), path.join(dir, 'ct.pfm'), '--mask', path.join(dir, 'cm.pfm'), '-o', out]);
    expect(k.code).toBe(1);
    expect(k.stderr).toMatch(/^midas align: the prediction is constant \(412\.5\) on all 86 valid pixels/);
    expect(existsSync(out)).toBe(false);
  });

  it('a negative scale is a warning on stderr (a depth map given as the prediction)', async () => {
    const dir = folder();
    const { rawTarget } = load(PNG_MM);
    const depthAsPred = Float32Array.from(rawTarget, (v) => (v > 0 ? v / 1000 : 1));
    writePfm(path.join(dir, 'p.pfm'), depthAsPred, 40, 30);
    const r = await align([path.join(dir, 'p.pfm'), mmFile('target'), '--target-scale', '1000', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).scale).toBeLessThan(0);
    expect(r.stderr).toMatch(/^midas align: warning: the scale is negative/);
  });

  const bad: [string, string[], RegExp][] = [
    ['no target', ['p.pfm'], /needs a prediction and a target .*; got 1 file$/],
    ['three files', ['a', 'b', 'c'], /one prediction and one target \(got 3 files: a b c\)$/],
    ['a bad --target-kind', ['a', 'b', '--target-kind', 'metres'], /--target-kind must be depth or disparity, not 'metres'$/],
    ['--target-scale 0', ['a', 'b', '--target-scale', '0'], /--target-scale must be a number > 0 \(got '0'\)$/],
    ['--max-depth not a number', ['a', 'b', '--max-depth', 'far'], /--max-depth must be a number > 0 \(got 'far'\)$/],
    ['an unknown flag', ['a', 'b', '--bogus'], /Unknown option '--bogus'/],
  ];
  for (const [what, args, msg] of bad) {
    it(`${what}: one line, exit 2`, async () => {
      const r = await align(args);
      expect(r.code).toBe(2);
      expect(r.stderr.split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(msg);
    });
  }

  it('unreadable inputs: one line naming the file, exit 1', async () => {
    const dir = folder();
    writeFileSync(path.join(dir, 'x.txt'), 'hello world');
    const missing = await align([path.join(dir, 'nope.pfm'), mmFile('target')]);
    expect([missing.code, missing.stderr]).toEqual([1, `midas align: ${path.join(dir, 'nope.pfm')}: no such file`]);
    const text = await align([mmFile('prediction'), path.join(dir, 'x.txt')]);
    expect([text.code, text.stderr]).toEqual([1, `midas align: ${path.join(dir, 'x.txt')}: not a PFM or PNG file (starts with "hello wo")`]);
  });

  it('--help prints the usage, which names every option', async () => {
    const r = await align(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(alignCommand.usage);
    for (const opt of ['-o, --output', '-m, --mask', '--target-kind', '--target-scale', '--max-depth', '--overwrite', '--json']) {
      expect(alignCommand.usage).toContain(opt);
    }
  });
});

// Runs once src/cli/main.ts registers the command (loadCommands) and dist/ is built.

describe('node bin/midas.js align (a child process on dist/)', () => {
  const midas = (args: string[]) => runNode([path.join(ROOT, 'bin/midas.js'), ...args], { timeout: 60_000 });

  it('is listed and built (run `npx tsc -p tsconfig.json` first)', async () => {
    expect(existsSync(path.join(ROOT, 'dist/src/cli/align.js')), 'dist/src/cli/align.js is missing: run `npx tsc -p tsconfig.json`').toBe(true);
    expect((await midas(['--help'])).stdout).toMatch(/\n {2}align +fit a prediction to known depths/);
  });

  it('aligns the hand-written files, and exits 1 on a degenerate fit', async () => {
    const out = path.join(folder(), 'metric.pfm');
    const r = await midas(['align', mmFile('prediction'), mmFile('target'), '--mask', mmFile('mask'), '--target-scale', '1000', '-o', out, '--json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(rel(j.scale, PNG_MM.expect.scale!)).toBeLessThan(1e-9);
    expect(rel(j.shift, PNG_MM.expect.shift!)).toBeLessThan(1e-9);
    expect(j.delta1).toBe(PNG_MM.expect.delta1);
    expect(statSync(out).size).toBe('Pf\n40 30\n-1.000000\n'.length + 40 * 30 * 4);

    const dir = folder();
    writePfm(path.join(dir, 'flat.pfm'), new Float32Array(1200).fill(3), 40, 30);
    const d = await midas(['align', path.join(dir, 'flat.pfm'), mmFile('target'), '--target-scale', '1000']);
    expect(d.status).toBe(1);
    expect(d.stderr.trim()).toMatch(/^midas align: the prediction is constant \(3\) on all \d+ valid pixels/);
  });
});
