// MiDaS v2.1 small at full size: a random MidasNet_small checkpoint written by PyTorch
// in both torch.save formats (official keys and shapes), photos through the CLI with
// --model small, compared with the PyTorch hub pipeline (cv2.imread, small_transform
// at the size, the network, bicubic back to the image's size). Both sides are made at
// test time by test/fixtures/small/fullsize.py (Debian python3-torch, python3-opencv).
// Tolerance: max|Δ| ≤ 1e-4 of the reference's range in f32, 1e-2 with f16 weights.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODELS } from '../src/midas/models.js';
import { readPfm } from '../src/node/outputs.js';
import { runMidas } from './midas-cli.js';
import { run } from './spawn.js';
import { readNpy } from './npy.js';
import { maxAbsDiff } from './reference.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DOG = path.resolve(ROOT, '../shared/images/dog.jpg'); // 1546x1213: 192x256 at 256, 288x384 at 384

let dir: string;
/** A square picture (256x256 at --size 256), lossless so both sides see the same pixels. */
let square: string;

const cli = (args: string[]) => runMidas(args, path.join(dir, 'home'));

/** Runs fullsize.py at `size` on `images`: writes both checkpoints and each image's reference. */
async function references(size: number, images: string[]): Promise<void> {
  const out = path.join(dir, `ref-${size}`);
  rmSync(out, { recursive: true, force: true });
  const py = await run('/usr/bin/python3', [path.join(ROOT, 'test/fixtures/small/fullsize.py'), out, String(size), ...images], { timeout: 600_000 });
  expect(py.status, `fullsize.py failed (needs Debian python3-torch and python3-opencv):\n${py.stderr}`).toBe(0);
}

function reference(size: number, image: string): { data: Float32Array; range: number } {
  const data = readNpy(path.join(dir, `ref-${size}`, `${path.basename(image).replace(/\.[^.]*$/, '')}.npy`)).data;
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of data) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  return { data, range: hi - lo };
}

/** `midas predict` to PFM; the map's max|Δ| against the reference, over its range. */
async function predictError(size: number, image: string, checkpoint: string, extra: string[] = []): Promise<number> {
  const out = path.join(dir, `out-${size}-${checkpoint}-${extra.join('')}`);
  const r = await cli(['predict', image, '--model', 'small', '--weights', path.join(dir, `ref-${size}`, checkpoint), '--size', String(size), '--format', 'pfm', '-o', out, '-q', ...extra]);
  expect(r.status, r.stderr).toBe(0);
  const pfm = readPfm(path.join(out, `${path.basename(image).replace(/\.[^.]*$/, '')}.pfm`));
  const ref = reference(size, image);
  expect(pfm.data.length).toBe(ref.data.length);
  expect(ref.range).toBeGreaterThan(0);
  return maxAbsDiff(pfm.data, ref.data) / ref.range;
}

beforeAll(async () => {
  expect(existsSync(DOG), `${DOG} is missing: the tests expect ../shared beside the checkout`).toBe(true);
  expect(existsSync(path.join(ROOT, 'dist/src/cli/main.js')), 'run `npm run build` first (npm test does)').toBe(true);
  dir = mkdtempSync(path.join(os.tmpdir(), 'midas-small-e2e-'));
  square = path.join(dir, 'square.png');
  const p = new PNG({ width: 300, height: 300 });
  for (let y = 0; y < 300; y++) {
    for (let x = 0; x < 300; x++) {
      const i = 4 * (y * 300 + x);
      p.data[i] = (x * 255) / 299;
      p.data[i + 1] = (y * 255) / 299;
      p.data[i + 2] = 128 + 100 * Math.sin(x / 9) * Math.cos(y / 13);
      p.data[i + 3] = 255;
    }
  }
  writeFileSync(square, PNG.sync.write(p));
  await references(256, [DOG, square]);
  await references(384, [DOG]);
}, 900_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('full-size MiDaS v2.1 small through the CLI against the PyTorch hub pipeline', () => {
  it('f32, zip checkpoint: dog.jpg at --size 256 (a 192x256 input) matches within 1e-4 of the range', async () => {
    const rel = await predictError(256, DOG, 'model-small-random.pt');
    console.log(`small, dog.jpg at 256, f32: max|Δ| / range = ${rel.toExponential(2)}`);
    expect(rel).toBeLessThanOrEqual(1e-4);
  }, 900_000);

  it('f32, zip checkpoint: a square picture at --size 256 (a 256x256 input) matches within 1e-4 of the range', async () => {
    const rel = await predictError(256, square, 'model-small-random.pt');
    console.log(`small, square at 256, f32: max|Δ| / range = ${rel.toExponential(2)}`);
    expect(rel).toBeLessThanOrEqual(1e-4);
  }, 900_000);

  it('f32, legacy checkpoint: dog.jpg at --size 384 (a 288x384 input) matches within 1e-4 of the range', async () => {
    const rel = await predictError(384, DOG, 'model-small-random-legacy.pt');
    console.log(`small, dog.jpg at 384, f32 (legacy .pt): max|Δ| / range = ${rel.toExponential(2)}`);
    expect(rel).toBeLessThanOrEqual(1e-4);
  }, 900_000);

  it('f16 weights: dog.jpg at --size 256 within 1e-2 of the range (shader-f16; refused by name without)', async () => {
    if (!JSON.parse((await cli(['info', '--json'])).stdout).features.f16) {
      // The CLI's adapter lacks shader-f16 (SwiftShader): one line naming it, no output.
      const out = path.join(dir, 'out-f16-refused');
      const r = await cli(['predict', DOG, '--model', 'small', '--weights', path.join(dir, 'ref-256', 'model-small-random.pt'), '--size', '256', '-o', out, '-q', '--precision', 'f16']);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/precision 'f16' needs the adapter's shader-f16 feature, which .* lacks: use precision 'f32'/);
      expect(existsSync(path.join(out, 'dog.pfm'))).toBe(false);
      return;
    }
    const rel = await predictError(256, DOG, 'model-small-random.pt', ['--precision', 'f16']);
    console.log(`small, dog.jpg at 256, f16 weights: max|Δ| / range = ${rel.toExponential(2)}`);
    expect(rel).toBeGreaterThan(0);
    expect(rel).toBeLessThanOrEqual(1e-2);
  }, 900_000);

  it('without --size, --model small runs at 256 (the small transform) and gives the same map', async () => {
    const out = path.join(dir, 'out-default-size');
    const r = await cli(['predict', DOG, '--model', 'small', '--weights', path.join(dir, 'ref-256', 'model-small-random.pt'), '--format', 'pfm', '-o', out, '-q']);
    expect(r.status, r.stderr).toBe(0);
    const rel = maxAbsDiff(readPfm(path.join(out, 'dog.pfm')).data, reference(256, DOG).data) / reference(256, DOG).range;
    expect(rel).toBeLessThanOrEqual(1e-4);
  }, 900_000);

  it('without --weights, --model small refuses a checkpoint in $MIDAS_HOME whose sha256 is not the official one, and takes a converted one', async () => {
    const home = path.join(dir, 'home');
    mkdirSync(home, { recursive: true });
    const official = path.join(home, MODELS.small.checkpoint.file);
    // A random checkpoint under the official name: the hash in the name catches it, as torch.hub would.
    copyFileSync(path.join(dir, 'ref-256', 'model-small-random.pt'), official);
    const out = path.join(dir, 'out-cached');
    const bad = await cli(['predict', DOG, '--model', 'small', '--format', 'pfm', '-o', out, '-q']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/model-small-70d6b9c8\.pt: sha256 is [0-9a-f]{64}, but the file name says it starts with 70d6b9c8/);
    expect(existsSync(path.join(home, 'model-small-70d6b9c8.safetensors'))).toBe(false);
    rmSync(official);
    // `midas convert --model small` checks the architecture and names it; the converted
    // file under the official name is what a first run leaves in the cache.
    const conv = await cli(['convert', path.join(dir, 'ref-256', 'model-small-random.pt'), '--model', 'small', '-o', path.join(home, 'model-small-70d6b9c8.safetensors')]);
    expect(conv.status, conv.stderr).toBe(0);
    expect(conv.stdout).toMatch(/ zip checkpoint of MiDaS v2\.1 small \(EfficientNet-Lite3\) → /);
    const r = await cli(['predict', DOG, '--model', 'small', '--format', 'pfm', '-o', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/downloading|converting/);
    const rel = maxAbsDiff(readPfm(path.join(out, 'dog.pfm')).data, reference(256, DOG).data) / reference(256, DOG).range;
    expect(rel).toBeLessThanOrEqual(1e-4);
  }, 900_000);

  it('midas convert --model v2 refuses a small checkpoint and leaves no output', async () => {
    const target = path.join(dir, 'wrong.safetensors');
    const conv = await cli(['convert', path.join(dir, 'ref-256', 'model-small-random.pt'), '--model', 'v2', '-o', target, '-q']);
    expect(conv.status).toBe(1);
    expect(conv.stderr.trim().split('\n')).toHaveLength(1);
    expect(conv.stderr).toMatch(/holds a MiDaS v2\.1 small \(EfficientNet-Lite3\) checkpoint, but model 'v2'/);
    expect(existsSync(target)).toBe(false);
  }, 900_000);

  it('--model v2 with a small checkpoint is a one-line error naming both, and writes nothing', async () => {
    const out = path.join(dir, 'out-mismatch');
    const weights = path.join(dir, 'ref-256', 'model-small-random.pt');
    const r = await cli(['predict', DOG, '--model', 'v2', '--weights', weights, '-o', out, '-q']);
    expect(r.status).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/model-small-random\.pt holds a MiDaS v2\.1 small \(EfficientNet-Lite3\) checkpoint, but model 'v2' is MiDaS v2 \/ v2\.1 large \(ResNeXt-101\)/);
    expect(existsSync(path.join(out, 'dog.png'))).toBe(false);
  }, 900_000);
});
