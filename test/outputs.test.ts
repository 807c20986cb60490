// Output files (src/node/outputs.ts): PFM as MiDaS's utils.write_pfm writes it,
// 16-bit and colour PNGs, and atomic, no-clobber writes.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';
import { colorize, colorMapTable } from '../src/midas/colormap.js';
import { decodeImage } from '../src/node/image.js';
import { depthTo16, OutputError, parsePfm, readPfm, writeColorPng, writePfm, writePng16 } from '../src/node/outputs.js';
import { runNode } from './spawn.js';

const tmp = mkdtempSync(join(tmpdir(), 'midas-outputs-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
/** A fresh empty folder for one test. */
const folder = () => {
  const d = join(tmp, `t${n++}`);
  mkdirSync(d);
  return d;
};

/** The OutputError `fn` throws. */
function outputError(fn: () => unknown): OutputError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(OutputError);
    expect((e as Error).message).not.toContain('\n');
    return e as OutputError;
  }
  throw new Error('expected an OutputError, nothing was thrown');
}

// 3 wide, 2 high, top row first.
const DEPTH = Float32Array.from([1, 2, 3, 4.5, -5, 6.25]);

describe('PFM', () => {
  it('writes the header and the rows bottom first, little-endian float32', () => {
    const path = join(folder(), 'd.pfm');
    writePfm(path, DEPTH, 3, 2);
    const bytes = readFileSync(path);
    const header = 'Pf\n3 2\n-1.000000\n';
    expect(bytes.subarray(0, header.length).toString('latin1')).toBe(header);
    expect(bytes.length).toBe(header.length + 6 * 4);
    const floats = [...new Float32Array(bytes.buffer.slice(bytes.byteOffset + header.length, bytes.byteOffset + bytes.length))];
    expect(floats).toEqual([4.5, -5, 6.25, 1, 2, 3]); // bottom row, then top row
  });

  it('round-trips through readPfm', () => {
    const path = join(folder(), 'd.pfm');
    const depth = Float32Array.from({ length: 7 * 5 }, (_, i) => Math.fround(Math.sin(i) * 1000));
    writePfm(path, depth, 7, 5);
    const back = readPfm(path);
    expect(back).toMatchObject({ width: 7, height: 5, channels: 1, scale: 1, littleEndian: true });
    expect(back.data).toEqual(depth);
  });

  it('reads big-endian (positive scale) and 3-channel PF files', () => {
    const header = new TextEncoder().encode('PF\n2 1\n2.5\n');
    const body = new DataView(new ArrayBuffer(6 * 4));
    [1, 2, 3, 4, 5, 6].forEach((v, i) => body.setFloat32(i * 4, v, false));
    const pfm = parsePfm(Buffer.concat([header, new Uint8Array(body.buffer)]));
    expect(pfm).toMatchObject({ width: 2, height: 1, channels: 3, scale: 2.5, littleEndian: false });
    expect([...pfm.data]).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('refuses files that are not PFM or are cut short', () => {
    expect(outputError(() => parsePfm(new TextEncoder().encode('P6\n1 1\n255\n...'), 'x.pfm')).message).toBe(
      'x.pfm: not a PFM file (no Pf/PF header)',
    );
    expect(outputError(() => parsePfm(new TextEncoder().encode('Pf\n2 2\n-1.0\n\0\0\0\0'), 'y.pfm')).message).toMatch(
      /^y\.pfm: truncated PFM \(needs 16 data bytes, has 4\)/,
    );
    expect(outputError(() => readPfm(join(tmp, 'missing.pfm'))).message).toMatch(/missing\.pfm: no such file/);
  });

  it('refuses a map whose size does not match its values', () => {
    expect(outputError(() => writePfm(join(folder(), 'd.pfm'), DEPTH, 4, 2)).message).toMatch(/a 4x2 map needs 8 values, got 6/);
  });
});

describe('16-bit PNG', () => {
  it('scales min..max to 0..65535, rounded', () => {
    expect([...depthTo16(Float32Array.from([0, 1, 2]))]).toEqual([0, 32768, 65535]); // 32767.5 -> 32768
    expect([...depthTo16(Float32Array.from([-2, 1, 4, 0.5]))]).toEqual([0, 32768, 65535, 27306]); // 2.5/6 * 65535 = 27306.25
  });

  it('an all-equal map is all zeros; NaN is 0; infinities clip', () => {
    expect([...depthTo16(Float32Array.from([3, 3, 3]))]).toEqual([0, 0, 0]);
    expect([...depthTo16(Float32Array.from([0, NaN, 1, Infinity, -Infinity]))]).toEqual([0, 0, 65535, 65535, 0]);
  });

  it('writes a 16-bit grayscale PNG that reads back to the same values', () => {
    const path = join(folder(), 'd.png');
    writePng16(path, DEPTH, 3, 2);
    const png = PNG.sync.read(readFileSync(path), { skipRescale: true });
    expect([png.width, png.height, png.depth, png.colorType]).toEqual([3, 2, 16, 0]);
    const gray = [...(png.data as unknown as Uint16Array)].filter((_, i) => i % 4 === 0);
    expect(gray).toEqual([...depthTo16(DEPTH)]);
    expect(gray[4]).toBe(0); // -5 is the minimum
    expect(gray[5]).toBe(65535); // 6.25 the maximum
    // Our own decoder (as cv2.imread with IMREAD_COLOR) keeps the high byte.
    expect(decodeImage(path).data[5 * 3]).toBe(255);
  });
});

describe('colour PNG', () => {
  it('inferno: matplotlib entries at the ends, min-max scaled', () => {
    const t = colorMapTable('inferno');
    expect([...t.subarray(0, 3)]).toEqual([0, 0, 4]);
    expect([...t.subarray(255 * 3)]).toEqual([252, 255, 164]);
    const rgb = colorize(Float32Array.from([10, 20, 15]));
    expect([...rgb.subarray(0, 3)]).toEqual([0, 0, 4]);
    expect([...rgb.subarray(3, 6)]).toEqual([252, 255, 164]);
    expect([...rgb.subarray(6, 9)]).toEqual([...t.subarray(128 * 3, 129 * 3)]); // 0.5 * 256 = 128
  });

  it('writes an 8-bit RGB PNG that decodes to the colour-mapped pixels', () => {
    const path = join(folder(), 'c.png');
    writeColorPng(path, DEPTH, 3, 2);
    const img = decodeImage(path);
    expect([img.width, img.height]).toEqual([3, 2]);
    expect(img.data).toEqual(colorize(DEPTH, 'inferno'));
  });

  it('turbo too; an unknown map is an error naming the file', () => {
    const dir = folder();
    writeColorPng(join(dir, 't.png'), DEPTH, 3, 2, 'turbo');
    expect(decodeImage(join(dir, 't.png')).data).toEqual(colorize(DEPTH, 'turbo'));
    expect(outputError(() => writeColorPng(join(dir, 'x.png'), DEPTH, 3, 2, 'jet' as 'turbo')).message).toMatch(/x\.png: unknown colour map 'jet'/);
    expect(readdirSync(dir)).toEqual(['t.png']);
  });
});

describe('atomic, no-clobber writes', () => {
  it('leaves only the finished file behind', () => {
    const dir = folder();
    writePfm(join(dir, 'a.pfm'), DEPTH, 3, 2);
    writePng16(join(dir, 'a.png'), DEPTH, 3, 2);
    writeColorPng(join(dir, 'a.color.png'), DEPTH, 3, 2);
    expect(readdirSync(dir).sort()).toEqual(['a.color.png', 'a.pfm', 'a.png']);
  });

  it('never replaces an existing file without overwrite: true', () => {
    const dir = folder();
    const path = join(dir, 'd.pfm');
    writeFileSync(path, 'precious');
    const e = outputError(() => writePfm(path, DEPTH, 3, 2));
    expect(e.message).toBe(`${path}: already exists (pass overwrite: true, or --overwrite, to replace it)`);
    expect(readFileSync(path, 'utf8')).toBe('precious');
    expect(readdirSync(dir)).toEqual(['d.pfm']);
    writePfm(path, DEPTH, 3, 2, { overwrite: true });
    expect(readPfm(path).data).toEqual(DEPTH);
    expect(readdirSync(dir)).toEqual(['d.pfm']);
  });

  it('a missing folder is an error that names it, and creates nothing', () => {
    const dir = folder();
    const path = join(dir, 'no', 'such', 'd.png');
    expect(outputError(() => writePng16(path, DEPTH, 3, 2)).message).toBe(`${path}: cannot write: folder ${join(dir, 'no', 'such')} does not exist`);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a failure at the final rename removes the temporary file', () => {
    const dir = folder();
    const path = join(dir, 'taken');
    mkdirSync(join(path, 'child'), { recursive: true }); // a non-empty folder: rename onto it fails
    expect(outputError(() => writePfm(path, DEPTH, 3, 2, { overwrite: true })).message).toMatch(/^.*taken: cannot write/);
    expect(readdirSync(dir)).toEqual(['taken']);
    expect(outputError(() => writePfm(path, DEPTH, 3, 2)).message).toMatch(/already exists/);
    expect(readdirSync(dir)).toEqual(['taken']);
  });

  it('a path under a file (not a folder) is an error and leaves nothing', () => {
    const dir = folder();
    writeFileSync(join(dir, 'plain'), 'x');
    const path = join(dir, 'plain', 'd.pfm');
    expect(outputError(() => writePfm(path, DEPTH, 3, 2)).message).toMatch(/^.*plain\/d\.pfm: cannot write/);
    expect(readdirSync(dir)).toEqual(['plain']);
  });

  // Root ignores permissions, so as root the write runs in a child process as "nobody".
  // That child cannot be assumed to reach the checkout (a clone in a 0700 `mktemp -d`),
  // so it loads outputs.ts bundled into a world-readable temp folder beside its target.
  it('a read-only folder is an error and leaves nothing', async () => {
    const asRoot = process.getuid?.() === 0;
    const dir = asRoot ? mkdtempSync(join(tmpdir(), 'midas-outputs-nobody-')) : folder();
    chmodSync(dir, 0o555);
    try {
      const target = join(dir, 'c.png');
      if (!asRoot) {
        expect(outputError(() => writeColorPng(target, DEPTH, 3, 2)).message).toMatch(/permission denied/);
      } else {
        const lib = mkdtempSync(join(tmpdir(), 'midas-outputs-lib-'));
        chmodSync(lib, 0o755);
        try {
          const bundle = join(lib, 'outputs.cjs');
          await build({ entryPoints: [fileURLToPath(new URL('../src/node/outputs.ts', import.meta.url))], bundle: true, platform: 'node', format: 'cjs', outfile: bundle, logLevel: 'silent' });
          const code = `const { writeColorPng } = require(${JSON.stringify(bundle)});
            try { writeColorPng(${JSON.stringify(target)}, new Float32Array([1,2,3,4,5,6]), 3, 2); console.log('written'); }
            catch (e) { console.log(e.message); }`;
          const r = await runNode(['-e', code], { uid: 65534, gid: 65534 });
          expect(r.stdout, r.stderr).toMatch(/permission denied/);
        } finally {
          rmSync(lib, { recursive: true, force: true });
        }
      }
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      chmodSync(dir, 0o755);
      if (process.getuid?.() === 0) rmSync(dir, { recursive: true, force: true });
    }
  });
});
