// The `midas` command as a user runs it (a child process on dist/), with the reduced
// network of test/fixtures/midas (MIDAS_ARCH) so a folder of 50 images takes seconds.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMidas } from '../src/node/load.js';
import { readPfm } from '../src/node/outputs.js';
import type { MidasConfig } from '../src/midas/config.js';
import { REDUCED, REDUCED_WEIGHTS } from './reduced.js';
import { runNode } from './spawn.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FIXTURE = path.join(ROOT, 'test/fixtures/midas');
const WEIGHTS = REDUCED_WEIGHTS;

let dir: string;
let env: NodeJS.ProcessEnv;

async function midas(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const r = await runNode([path.join(ROOT, 'bin/midas.js'), ...args], { env, timeout: 300_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.split('\n').filter((l) => !l.startsWith('Warning: maxDynamic')).join('\n') };
}

function png(file: string, w: number, h: number, seed: number): void {
  const p = new PNG({ width: w, height: h });
  for (let i = 0; i < w * h * 4; i++) p.data[i] = (i * 31 + seed * 17) % 256;
  writeFileSync(file, PNG.sync.write(p));
}

beforeAll(() => {
  expect(existsSync(path.join(ROOT, 'dist/src/cli/main.js')), 'run `npm run build` first (npm test does)').toBe(true);
  dir = mkdtempSync(path.join(os.tmpdir(), 'midas-cli-'));
  writeFileSync(path.join(dir, 'arch.json'), JSON.stringify(REDUCED));
  env = { ...process.env, MIDAS_ARCH: path.join(dir, 'arch.json'), MIDAS_HOME: path.join(dir, 'home') };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('arguments', () => {
  it('--help lists the commands and exits 0; no command exits 2', async () => {
    const r = await midas(['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/predict .*\n.*convert .*\n.*align .*\n.*summary .*\n.*features .*\n.*info/);
    expect((await midas([])).status).toBe(2);
  });

  const bad: [string, string[], RegExp][] = [
    ['an unknown command', ['frobnicate'], /unknown command 'frobnicate'/],
    ['an unknown flag', ['predict', 'x.jpg', '--bogus'], /Unknown option '--bogus'/],
    ['--size not a multiple of 32', ['predict', 'x.jpg', '--size', '100'], /--size must be a positive multiple of 32 \(got '100'\)/],
    ['--size zero', ['predict', 'x.jpg', '--size', '0'], /--size must be a positive multiple of 32/],
    ['an unknown --format', ['predict', 'x.jpg', '--format', 'png,tiff'], /unknown --format 'tiff'/],
    ['an unknown --precision', ['predict', 'x.jpg', '--precision', 'f8'], /--precision must be f32, f16 or f16-math/],
    ['no images', ['predict'], /no images given/],
    ['a bad --normalize', ['predict', 'x.jpg', '--normalize', 'fixed:3,1'], /--normalize must be image, video, batch or fixed:MIN,MAX with MIN < MAX/],
  ];
  for (const [what, args, msg] of bad) {
    it(`${what}: one line, exit 2`, async () => {
      const r = await midas(args);
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(msg);
    });
  }

  it('an output folder that cannot be written: one line naming it, exit 1', async () => {
    const file = path.join(dir, 'a-file');
    writeFileSync(file, 'x');
    const r = await midas(['predict', path.join(FIXTURE, 'x.png'), '-o', path.join(file, 'out'), '--weights', WEIGHTS]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toMatch(new RegExp(`^midas predict: ${file}/out: cannot write to the output folder \\(ENOTDIR\\)$`));
  });

  it('weights for another architecture: the differences by name, exit 1', async () => {
    const img = path.join(dir, 'one.png');
    png(img, 20, 10, 1);
    const r = await midas(['predict', img, '-o', path.join(dir, 'o-arch'), '--weights', WEIGHTS, '-q']);
    expect(r.status).toBe(0);
    const wrong = { ...env };
    delete wrong['MIDAS_ARCH'];
    const r2 = await runNode([path.join(ROOT, 'bin/midas.js'), 'predict', img, '-o', path.join(dir, 'o-arch2'), '--weights', WEIGHTS], { env: wrong });
    expect(r2.status).toBe(1);
    expect(r2.stderr).toMatch(/the weights do not match the network: 420 missing: pretrained\.layer1\.4\.2\.conv1\.weight.*; 141 with the wrong shape: pretrained\.layer1\.0\.weight \[8, 3, 7, 7\] \(expected \[64, 3, 7, 7\]\)/);
    expect(existsSync(path.join(dir, 'o-arch2', 'one.png'))).toBe(false);
  });
});

describe('a folder of 50 images with 3 bad ones', () => {
  let images: string;
  let out: string;
  const bad = new Map([
    ['img10.png', (f: string) => writeFileSync(f, '')],
    ['img25.jpg', (f: string) => writeFileSync(f, 'this is not a jpeg\n')],
    ['img40.png', (f: string) => {
      png(f, 30, 20, 40);
      writeFileSync(f, readFileSync(f).subarray(0, 60));
    }],
  ]);

  beforeAll(() => {
    images = path.join(dir, 'photos');
    out = path.join(dir, 'out');
    mkdirSync(images);
    for (let i = 0; i < 50; i++) {
      const name = `img${String(i).padStart(2, '0')}.${i === 25 ? 'jpg' : 'png'}`;
      const make = bad.get(name);
      if (make) make(path.join(images, name));
      else png(path.join(images, name), 24 + (i % 7) * 5, 16 + (i % 5) * 3, i);
    }
    writeFileSync(path.join(images, 'notes.txt'), 'not an image, not picked up');
  });

  it('writes 47 x 2 outputs, lists the 3 errors at the end, exits 1', async () => {
    const r = await midas(['predict', images, '-o', out, '--weights', WEIGHTS, '--size', '64']);
    expect(r.status).toBe(1);
    const files = readdirSync(out).sort();
    expect(files.filter((f) => f.endsWith('-color.png'))).toHaveLength(47);
    expect(files.filter((f) => !f.endsWith('-color.png') && f.endsWith('.png'))).toHaveLength(47);
    expect(files.some((f) => f.startsWith('.'))).toBe(false); // no temporaries left
    const lines = r.stderr.trim().split('\n');
    expect(lines.slice(-4)[0]).toMatch(/47 written, 0 skipped, 3 failed/);
    expect(lines.slice(-3)).toEqual([
      expect.stringMatching(/^error: .*img10\.png: .*empty/),
      expect.stringMatching(/^error: .*img25\.jpg: not a PNG or JPEG image \(starts with "this is "\)/),
      expect.stringMatching(/^error: .*img40\.png: .*(truncated|corrupt)/),
    ]);
  });

  it('run again: skips what is done, exits 1 for the same 3; --overwrite redoes all', async () => {
    const r = await midas(['predict', images, '-o', out, '--weights', WEIGHTS, '--size', '64']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/skipping 47 input\(s\) whose outputs exist/);
    expect(r.stderr).toMatch(/0 written, 47 skipped, 3 failed/);
    const r2 = await midas(['predict', images, '-o', out, '--weights', WEIGHTS, '--size', '64', '--overwrite']);
    expect(r2.stderr).toMatch(/47 written, 0 skipped, 3 failed/);
  });

  it('killed half way and run again: finishes the rest, leaves no temporary files', async () => {
    const out2 = path.join(dir, 'out-killed');
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/midas.js'), 'predict', images, '-o', out2, '--weights', WEIGHTS, '--size', '64', '-q'], {
      env,
      stdio: 'ignore',
    });
    await new Promise<void>((resolve) => {
      const t = setInterval(() => {
        if (existsSync(out2) && readdirSync(out2).filter((f) => f.endsWith('-color.png')).length >= 20) {
          clearInterval(t);
          child.kill('SIGKILL');
          resolve();
        }
      }, 5);
    });
    await new Promise((r) => child.on('exit', r));
    const done = readdirSync(out2).filter((f) => f.endsWith('-color.png')).length;
    expect(done).toBeLessThan(47);
    const r = await midas(['predict', images, '-o', out2, '--weights', WEIGHTS, '--size', '64']);
    expect(r.stderr).toMatch(/skipping \d+ input\(s\)/);
    expect(r.stderr).toMatch(/3 failed/);
    const files = readdirSync(out2);
    expect(files.filter((f) => f.endsWith('-color.png'))).toHaveLength(47);
    expect(files.some((f) => f.startsWith('.'))).toBe(false);
  });
});

describe('outputs', () => {
  it('the PFM the CLI writes equals what the library returns, and the PNGs have the image size', async () => {
    const img = path.join(dir, 'pic.png');
    png(img, 45, 31, 9);
    const out = path.join(dir, 'o-formats');
    const r = await midas(['predict', img, '-o', out, '--weights', WEIGHTS, '--format', 'pfm,png,color', '--size', '64', '-q']);
    expect(r.status, r.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['pic-color.png', 'pic.pfm', 'pic.png']);
    const model = await loadMidas({ weights: WEIGHTS, config: REDUCED, size: 64 });
    const lib = await model.predict(img);
    model.dispose();
    const pfm = readPfm(path.join(out, 'pic.pfm'));
    expect([pfm.width, pfm.height]).toEqual([45, 31]);
    expect(pfm.data).toEqual(lib.depth);
    const gray = PNG.sync.read(readFileSync(path.join(out, 'pic.png')), { skipRescale: true } as never);
    expect([gray.width, gray.height, gray.depth]).toEqual([45, 31, 16]);
  });

  it('an input is never an output: -o pointing at the input folder is refused for that image', async () => {
    const folder = path.join(dir, 'same');
    mkdirSync(folder);
    png(path.join(folder, 'x.png'), 20, 20, 3);
    const before = readFileSync(path.join(folder, 'x.png'));
    const r = await midas(['predict', folder, '-o', folder, '--weights', WEIGHTS, '--format', 'png', '--size', '64']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/x\.png: its output .*x\.png would overwrite an input/);
    expect(readFileSync(path.join(folder, 'x.png')).equals(before)).toBe(true);
  });

  function png16(file: string): Uint16Array {
    const p = PNG.sync.read(readFileSync(file), { skipRescale: true } as never);
    const d = p.data as unknown as Buffer;
    // pngjs gives 16-bit gray as RGBA 16-bit samples in a Uint16Array-like buffer
    return Uint16Array.from({ length: p.width * p.height }, (_, i) => (d as unknown as Uint16Array)[4 * i]!);
  }

  it('--normalize fixed:MIN,MAX maps that range to 0..65535 and clips; batch uses one range over all images', async () => {
    const a = path.join(dir, 'na.png');
    const b = path.join(dir, 'nb.png');
    png(a, 40, 30, 11);
    png(b, 40, 30, 12);
    const out = path.join(dir, 'o-norm');
    const r = await midas(['predict', a, b, '-o', out, '--weights', WEIGHTS, '--format', 'pfm,png', '--size', '64', '-q', '--normalize', 'batch']);
    expect(r.status, r.stderr).toBe(0);
    const da = readPfm(path.join(out, 'na.pfm')).data;
    const db = readPfm(path.join(out, 'nb.pfm')).data;
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of [...da, ...db]) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
    const expect16 = (d: Float32Array, min: number, max: number) =>
      Uint16Array.from(d, (v) => Math.min(65535, Math.max(0, Math.round(((v - min) / (max - min)) * 65535))));
    expect(png16(path.join(out, 'na.png'))).toEqual(expect16(da, lo, hi));
    expect(png16(path.join(out, 'nb.png'))).toEqual(expect16(db, lo, hi));
    expect(readdirSync(out).some((f) => f.startsWith('.'))).toBe(false);
    // batch redoes every picture: refused over existing outputs without --overwrite
    expect((await midas(['predict', a, b, '-o', out, '--weights', WEIGHTS, '--format', 'pfm,png', '--size', '64', '--normalize', 'batch'])).status).toBe(2);
    const mid = (lo + hi) / 2;
    const f = await midas(['predict', a, '-o', out, '--weights', WEIGHTS, '--format', 'png', '--size', '64', '-q', '--overwrite', '--normalize', `fixed:${lo},${mid}`]);
    expect(f.status, f.stderr).toBe(0);
    expect(png16(path.join(out, 'na.png'))).toEqual(expect16(da, lo, mid));
  });

  it('--profile prints the GPU time of each image and of every layer; --trace every dispatch', async () => {
    const img = path.join(dir, 'prof.png');
    png(img, 40, 30, 13);
    const p = await midas(['predict', img, '-o', path.join(dir, 'o-prof'), '--weights', WEIGHTS, '--size', '64', '--profile']);
    expect(p.status, p.stderr).toBe(0);
    expect(p.stderr).toMatch(/prof\.png: \d+ ms, \d+ ms on the GPU in \d+ dispatches/);
    expect(p.stderr).toMatch(/^  pretrained\.layer1\.0 +\d+\.\d\d +\d+\.\d% +\d+\.\d$/m);
    expect(p.stderr).toMatch(/^  scratch\.refinenet2 +\d+\.\d\d +\d+\.\d% *$/m);
    const t = await midas(['predict', img, '-o', path.join(dir, 'o-trace'), '--weights', WEIGHTS, '--size', '64', '--trace']);
    expect(t.status, t.stderr).toBe(0);
    expect(t.stderr).toMatch(/^\[midas\] pretrained\.layer1\.0: conv2d_tiled 7x7\/2 g1 3->8 @32x32 \[relu\]  workgroups \d+x\d+x1$/m);
    expect(t.stderr).toMatch(/^ +\d+\.\d{3} ms  scratch\.output_conv\.4: conv2d_tiled 1x1/m);
  });
});
