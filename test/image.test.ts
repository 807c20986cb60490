// Image decoding (src/node/image.ts, JPEG through src/node/jpeg.ts) against OpenCV's
// cv2.imread(IMREAD_COLOR): committed fixtures with cv2's pixels
// (test/fixtures/images/generate.py), all matched exactly; EXIF orientation blocks
// spliced into a fixture here; and every way a file can be wrong.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';
import { applyOrientation, decodeImage, ImageError, toRGB, type DecodedImage } from '../src/node/image.js';
import { decodeJpeg, JpegError } from '../src/node/jpeg.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const FIXTURES = join(HERE, 'fixtures', 'images');
const DOG = join(HERE, '..', '..', 'shared', 'images', 'dog.jpg');
const tmp = mkdtempSync(join(tmpdir(), 'midas-image-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface FixtureCase {
  file: string;
  width?: number;
  height?: number;
  expect?: string;
  error?: string;
  orientation?: number;
  /** Progressive scans that leave coefficients libjpeg smooths. */
  smoothing?: boolean;
  note: string;
}

const manifest: {
  cases: FixtureCase[];
  dog: {
    width: number;
    height: number;
    orientation: number;
    file_sha256: string;
    rgb_sha256: string;
    step: number;
    grid: string;
    crops: { file: string; x: number; y: number; width: number; height: number }[];
  };
} = JSON.parse(readFileSync(join(FIXTURES, 'manifest.json'), 'utf8'));

function diff(a: Uint8Array, b: Uint8Array): { max: number; mean: number } {
  expect(a.length).toBe(b.length);
  let max = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    sum += d;
    if (d > max) max = d;
  }
  return { max, mean: sum / a.length };
}

/** The ImageError `fn` throws (fails the test if it throws something else or nothing). */
function imageError(fn: () => unknown): ImageError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ImageError);
    expect((e as Error).message).not.toContain('\n');
    return e as ImageError;
  }
  throw new Error('expected an ImageError, nothing was thrown');
}

// ---- exactly cv2's pixels ---------------------------------------------------------------
// PNG and JPEG alike: max difference 0. (For JPEG that is jpeg.ts reproducing
// libjpeg-turbo's islow IDCT, fancy upsampling, colour conversion and, for
// progressive files with unrefined coefficients, its block smoothing.)

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('decodes like cv2.imread(IMREAD_COLOR)', () => {
  for (const c of manifest.cases.filter((k) => k.expect)) {
    it(`${c.file}: ${c.note}`, () => {
      const img = decodeImage(join(FIXTURES, c.file));
      expect([img.width, img.height]).toEqual([c.width, c.height]);
      const want = new Uint8Array(readFileSync(join(FIXTURES, c.expect!)));
      expect(diff(img.data, want)).toEqual({ max: 0, mean: 0 });
    });
  }

  it('EXIF orientations 2-8 are exact rotations/flips of orientation 1 (same JPEG data)', () => {
    const base = decodeImage(join(FIXTURES, 'orient1.jpg'));
    for (let o = 2; o <= 8; o++) {
      const img = decodeImage(join(FIXTURES, `orient${o}.jpg`));
      expect(img).toEqual(applyOrientation(base, o));
    }
  });

  it('refuses arithmetic-coded JPEG by name', () => {
    const e = imageError(() => decodeImage(join(FIXTURES, 'arithmetic.jpg')));
    expect(e.message).toMatch(/arithmetic\.jpg: unsupported JPEG coding \(arithmetic-coded sequential\)/);
  });
});

// ---- EXIF orientation, spliced into blocks.jpg --------------------------------

// A 3x2 grid of 8x8 blocks, each a solid colour: JPEG keeps solid blocks nearly
// exact, and no two blocks share a colour, so every block's position is checkable.
const BLOCK_COLOURS = [
  [[255, 0, 0], [0, 255, 0], [0, 0, 255]],
  [[255, 255, 0], [255, 0, 255], [0, 255, 255]],
];

function blockJpeg(): Uint8Array {
  return new Uint8Array(readFileSync(join(FIXTURES, 'blocks.jpg'))); // Pillow, quality 95, 4:4:4
}

function tiffWithOrientation(o: number, bigEndian: boolean, extraEntries = 0): Uint8Array {
  const count = 1 + extraEntries;
  const b = new Uint8Array(8 + 2 + 12 * count + 4);
  const v = new DataView(b.buffer);
  const le = !bigEndian;
  b.set(bigEndian ? [0x4d, 0x4d] : [0x49, 0x49]);
  v.setUint16(2, 42, le);
  v.setUint32(4, 8, le);
  v.setUint16(8, count, le);
  // An unrelated entry first (ImageWidth), so the reader has to walk the IFD.
  let e = 10;
  for (let i = 0; i < extraEntries; i++, e += 12) {
    v.setUint16(e, 0x0100, le);
    v.setUint16(e + 2, 3, le);
    v.setUint32(e + 4, 1, le);
    v.setUint16(e + 8, 24, le);
  }
  v.setUint16(e, 0x0112, le);
  v.setUint16(e + 2, 3, le); // SHORT
  v.setUint32(e + 4, 1, le);
  v.setUint16(e + 8, o, le);
  return b;
}

function app1(payload: Uint8Array, header = 'Exif\0\0'): Uint8Array {
  const head = new TextEncoder().encode(header);
  const len = 2 + head.length + payload.length;
  const seg = new Uint8Array(2 + len);
  seg.set([0xff, 0xe1, len >> 8, len & 255]);
  seg.set(head, 4);
  seg.set(payload, 4 + head.length);
  return seg;
}

/** Inserts segments after SOI and the APP0 (JFIF) segment Pillow writes. */
function splice(file: Uint8Array, ...segments: Uint8Array[]): Uint8Array {
  expect([file[2], file[3]]).toEqual([0xff, 0xe0]);
  const at = 4 + ((file[4]! << 8) | file[5]!);
  const parts = [file.subarray(0, at), ...segments, file.subarray(at)];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** The colour at the centre of block (bx, by) of a decoded block picture. */
function blockAt(img: DecodedImage, bx: number, by: number): number[] {
  const i = ((by * 8 + 4) * img.width + bx * 8 + 4) * 3;
  return [img.data[i]!, img.data[i + 1]!, img.data[i + 2]!];
}

/**
 * Where OpenCV puts source block (sx, sy) of a 3x2 grid for each orientation, as
 * the grid it shows: rows of source block coordinates.
 */
const EXPECTED_GRID: Record<number, [number, number][][]> = {
  1: [[[0, 0], [1, 0], [2, 0]], [[0, 1], [1, 1], [2, 1]]],
  2: [[[2, 0], [1, 0], [0, 0]], [[2, 1], [1, 1], [0, 1]]], // mirrored left-right
  3: [[[2, 1], [1, 1], [0, 1]], [[2, 0], [1, 0], [0, 0]]], // rotated 180
  4: [[[0, 1], [1, 1], [2, 1]], [[0, 0], [1, 0], [2, 0]]], // mirrored top-bottom
  5: [[[0, 0], [0, 1]], [[1, 0], [1, 1]], [[2, 0], [2, 1]]], // transposed
  6: [[[0, 1], [0, 0]], [[1, 1], [1, 0]], [[2, 1], [2, 0]]], // rotated 90 clockwise
  7: [[[2, 1], [2, 0]], [[1, 1], [1, 0]], [[0, 1], [0, 0]]], // transverse
  8: [[[2, 0], [2, 1]], [[1, 0], [1, 1]], [[0, 0], [0, 1]]], // rotated 90 counter-clockwise
};

function expectGrid(img: DecodedImage, o: number): void {
  const grid = EXPECTED_GRID[o]!;
  expect([img.width, img.height]).toEqual([grid[0]!.length * 8, grid.length * 8]);
  grid.forEach((row, by) =>
    row.forEach(([sx, sy], bx) => {
      const got = blockAt(img, bx, by);
      const want = BLOCK_COLOURS[sy]![sx]!;
      got.forEach((v, i) => expect(Math.abs(v - want[i]!), `orientation ${o} block (${bx},${by})`).toBeLessThanOrEqual(8));
    }),
  );
}

describe('EXIF orientation (APP1 spliced into blocks.jpg)', () => {
  const plain = blockJpeg();

  it('no EXIF: as stored', () => expectGrid(decodeImage(plain), 1));

  for (let o = 1; o <= 8; o++) {
    it(`orientation ${o}, little- and big-endian TIFF`, () => {
      expectGrid(decodeImage(splice(plain, app1(tiffWithOrientation(o, false, 1)))), o);
      expectGrid(decodeImage(splice(plain, app1(tiffWithOrientation(o, true)))), o);
    });
  }

  it('reads only the first APP1 segment, as OpenCV does (XMP first: orientation ignored)', () => {
    const xmp = app1(new TextEncoder().encode('<x:xmpmeta/>'), 'http://ns.adobe.com/xap/1.0/\0');
    expectGrid(decodeImage(splice(plain, xmp, app1(tiffWithOrientation(6, false)))), 1);
    expectGrid(decodeImage(splice(plain, app1(tiffWithOrientation(6, false)), xmp)), 6);
  });

  it('ignores orientation values outside 1-8 and broken EXIF blocks', () => {
    expectGrid(decodeImage(splice(plain, app1(tiffWithOrientation(0, false)))), 1);
    expectGrid(decodeImage(splice(plain, app1(tiffWithOrientation(9, true)))), 1);
    expectGrid(decodeImage(splice(plain, app1(new Uint8Array([0x49, 0x49, 42, 0, 0xff, 0xff, 0, 0])))), 1);
    expectGrid(decodeImage(splice(plain, app1(new Uint8Array(3)))), 1);
  });
});

// ---- PNG written here: every colour type, by pngjs where it can ------------------------

describe('PNG variants made in the test', () => {
  it('pngjs-encoded RGBA: alpha is dropped, not composited', () => {
    const png = new PNG({ width: 2, height: 1 });
    png.data = Buffer.from([10, 20, 30, 0, 200, 100, 50, 128]);
    const img = decodeImage(PNG.sync.write(png));
    expect([...img.data]).toEqual([10, 20, 30, 200, 100, 50]);
  });

  it('16-bit gray keeps the high byte (0x12ff -> 0x12, not 0x13)', () => {
    const file = pngFile(3, 1, 0, 16, [0, 0x12, 0xff, 0xff, 0xfe, 0x00, 0x80]);
    expect([...decodeImage(file).data]).toEqual([0x12, 0x12, 0x12, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00]);
  });

  it('detects the format from the bytes, not the name', () => {
    const path = join(tmp, 'really-a-png.jpg');
    writeFileSync(path, pngFile(1, 1, 2, 8, [0, 1, 2, 3]));
    expect([...decodeImage(path).data]).toEqual([1, 2, 3]);
  });
});

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 255]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  v.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** A PNG from already-filtered scanline bytes (`raw` includes each row's filter byte). */
function pngFile(width: number, height: number, colorType: number, depth: number, raw: number[] | Uint8Array, interlace = 0, idat?: Uint8Array): Uint8Array {
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr.set([depth, colorType, 0, 0, interlace], 8);
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', idat ?? deflateSync(Uint8Array.from(raw))),
    chunk('IEND', new Uint8Array(0)),
  ];
  return Buffer.concat(parts);
}

// ---- bad files ------------------------------------------------------------------------

describe('refuses bad input with one line naming the file', () => {
  const good = readFileSync(join(FIXTURES, 'ycc420.jpg'));
  const goodPng = readFileSync(join(FIXTURES, 'rgb8.png'));
  const write = (name: string, bytes: Uint8Array | string) => {
    const path = join(tmp, name);
    writeFileSync(path, bytes);
    return path;
  };

  it('missing file', () => {
    const path = join(tmp, 'nope.jpg');
    expect(imageError(() => decodeImage(path)).message).toBe(`${path}: no such file`);
  });

  it('a directory', () => {
    const path = join(tmp, 'adir.png');
    mkdirSync(path, { recursive: true });
    expect(imageError(() => decodeImage(path)).message).toMatch(/adir\.png: is a directory/);
  });

  it('empty file, and empty bytes', () => {
    expect(imageError(() => decodeImage(write('empty.jpg', ''))).message).toMatch(/empty\.jpg: empty file/);
    expect(imageError(() => decodeImage(new Uint8Array(0), 'upload')).message).toBe('upload: empty file (0 bytes)');
  });

  it('text saved as .jpg', () => {
    const e = imageError(() => decodeImage(write('notes.jpg', 'hello world, not a picture\n')));
    expect(e.message).toMatch(/notes\.jpg: not a PNG or JPEG image \(starts with "hello wo"\)/);
    expect(e.file).toMatch(/notes\.jpg$/);
  });

  it('binary junk shows its first bytes', () => {
    expect(imageError(() => decodeImage(new Uint8Array([0, 1, 2, 250]), 'x')).message).toBe('x: not a PNG or JPEG image (starts with 00 01 02 fa)');
  });

  it('other image formats are named', () => {
    expect(imageError(() => decodeImage(new TextEncoder().encode('GIF89a....'), 'a.gif')).message).toBe(
      'a.gif: unsupported image format (GIF); convert it to PNG or JPEG',
    );
    const webp = new TextEncoder().encode('RIFF\0\0\0\0WEBPVP8 ');
    expect(imageError(() => decodeImage(webp, 'a.webp')).message).toMatch(/unsupported image format \(WebP\)/);
  });

  it('truncated JPEG: anywhere in the data, and in the headers', () => {
    for (const cut of [good.length - 2, Math.floor(good.length / 2), 300, 21, 3]) {
      const e = imageError(() => decodeImage(good.subarray(0, cut), `cut${cut}.jpg`));
      expect(e.message).toMatch(new RegExp(`cut${cut}\\.jpg: truncated JPEG`));
    }
  });

  it('truncated PNG', () => {
    for (const cut of [goodPng.length - 1, Math.floor(goodPng.length / 2), 20, 8, 4]) {
      const e = imageError(() => decodeImage(goodPng.subarray(0, cut), `cut${cut}.png`));
      expect(e.message).toMatch(/truncated PNG/);
    }
  });

  it('corrupt PNG: a flipped bit in the image data fails its CRC', () => {
    const bad = Uint8Array.from(goodPng);
    bad[bad.length - 20] ^= 0x10; // inside IDAT
    expect(imageError(() => decodeImage(bad, 'bad.png')).message).toMatch(/^bad\.png: corrupt PNG/);
  });

  // pngjs alone decodes these three to black pixels without complaint.
  it('corrupt PNG: bad zlib data (with a valid CRC)', () => {
    const file = pngFile(2, 2, 0, 8, [], 0, new Uint8Array([1, 2, 3, 4, 5, 6]));
    expect(imageError(() => decodeImage(file, 'z.png')).message).toMatch(/^z\.png: corrupt PNG \(incorrect header check\)/);
  });

  it('corrupt PNG: less image data than the size needs', () => {
    const file = pngFile(2, 2, 0, 8, [0, 1, 2]);
    expect(imageError(() => decodeImage(file, 's.png')).message).toBe('s.png: corrupt PNG (image data has 3 of the 6 bytes its size needs)');
  });

  it('truncated PNG: the zlib stream stops early (chunks intact)', () => {
    const z = deflateSync(Uint8Array.from({ length: 3 * 31 }, (_, i) => (i % 31 === 0 ? 0 : (i * 77) % 256)));
    const file = pngFile(10, 3, 2, 8, [], 0, z.subarray(0, z.length - 6));
    expect(imageError(() => decodeImage(file, 't.png')).message).toMatch(/^t\.png: truncated PNG/);
  });

  it('corrupt PNG: impossible colour type / depth', () => {
    const file = pngFile(2, 2, 2, 4, [0, 0, 0, 0, 0, 0, 0]);
    expect(imageError(() => decodeImage(file, 'd.png')).message).toBe('d.png: corrupt PNG (colour type 2 with bit depth 4)');
  });

  it('corrupt JPEG: a scan naming a component the frame does not have', () => {
    const bad = Uint8Array.from(good);
    const sos = findMarker(bad, 0xda);
    bad[sos + 5] = 9; // first component selector
    expect(imageError(() => decodeImage(bad, 'sos.jpg')).message).toMatch(/^sos\.jpg: corrupt JPEG/);
  });

  it('unsupported JPEG: 12-bit samples', () => {
    const bad = Uint8Array.from(good);
    bad[findMarker(bad, 0xc0) + 4] = 12;
    expect(imageError(() => decodeImage(bad, 'p12.jpg')).message).toMatch(/unsupported JPEG sample precision \(12 bits/);
  });

  it('CMYK without its Adobe marker is refused, not guessed', () => {
    const cmyk = readFileSync(join(FIXTURES, 'cmyk.jpg'));
    const at = findMarker(cmyk, 0xee);
    const len = (cmyk[at + 2]! << 8) | cmyk[at + 3]!;
    const stripped = Buffer.concat([cmyk.subarray(0, at), cmyk.subarray(at + 2 + len)]);
    expect(imageError(() => decodeImage(stripped, 'k.jpg')).message).toMatch(/4 colour components without an Adobe marker/);
  });
});

describe('JPEG: corrupt and unsupported files', () => {
  const file = (name: string) => Uint8Array.from(readFileSync(join(FIXTURES, name)));
  const message = (bytes: Uint8Array, name = 'x.jpg') => imageError(() => decodeImage(bytes, name)).message;
  /** Offset of the first entropy-coded byte of the first scan. */
  const scanData = (b: Uint8Array) => {
    const sos = findMarker(b, 0xda);
    return sos + 2 + ((b[sos + 2]! << 8) | b[sos + 3]!);
  };
  const insert = (b: Uint8Array, at: number, bytes: number[]) => Buffer.concat([b.subarray(0, at), Uint8Array.from(bytes), b.subarray(at)]);

  it('a marker in the middle of the image data: the data ends early', () => {
    const b = file('ycc420.jpg');
    let at = Math.floor((scanData(b) + b.length) / 2);
    while (b[at - 1] === 0xff) at++; // not inside a stuffed ff 00
    expect(message(insert(b, at, [0xff, 0xd0]))).toMatch(/^x\.jpg: corrupt JPEG \(the entropy-coded data of scan 1 ends early, at marker ffd0 \(MCU \d+ of 6\)\)$/);
  });

  it('a bad Huffman code', () => {
    const b = file('ycc420.jpg');
    const at = scanData(b);
    for (let i = 0; i < 8; i += 2) b.set([0xff, 0x00], at + i); // all-ones bits: never a code
    expect(message(b)).toBe('x.jpg: corrupt JPEG (bad Huffman code in scan 1)');
  });

  it('a restart marker out of sequence', () => {
    const b = file('restart.jpg');
    let at = scanData(b);
    while (!(b[at] === 0xff && b[at + 1] === 0xd0)) at++;
    b[at + 1] = 0xd5;
    expect(message(b)).toBe(`x.jpg: corrupt JPEG (expected restart marker RST0 in scan 1, found marker ffd5 at byte ${at})`);
  });

  it('progressive: impossible scan parameters, and cut off anywhere', () => {
    const b = file('ycc420_progressive.jpg');
    const sos = findMarker(b, 0xda);
    const bad = Uint8Array.from(b);
    const ns = bad[sos + 4]!;
    bad[sos + 5 + 2 * ns + 1] = 5; // Se = 5 in a DC scan
    expect(message(bad)).toMatch(/^x\.jpg: corrupt JPEG \(bad progression parameters Ss=0 Se=5 /);
    for (const cut of [b.length - 2, b.length - 40, Math.floor(b.length * 0.6), scanData(b) + 3]) {
      expect(message(b.subarray(0, cut), `p${cut}.jpg`)).toMatch(new RegExp(`^p${cut}\\.jpg: truncated JPEG`));
    }
  });

  it('tables the scan needs are missing', () => {
    const q = file('ycc420.jpg');
    q[findMarker(q, 0xc0) + 12] = 3; // component 1's quantization table
    expect(message(q)).toBe('x.jpg: corrupt JPEG (component 1 uses quantization table 3, which is not defined)');
    const h = file('ycc420.jpg');
    h[findMarker(h, 0xda) + 6] = 0x33; // component 1's DC and AC tables
    expect(message(h)).toBe('x.jpg: corrupt JPEG (a scan uses Huffman table DC3, which is not defined)');
  });

  it('a second start-of-image marker', () => {
    const b = file('ycc420.jpg');
    expect(message(insert(b, findMarker(b, 0xdb), [0xff, 0xd8]))).toMatch(/^x\.jpg: corrupt JPEG \(a second start-of-image marker/);
  });

  it('lossless and hierarchical JPEG are refused by name', () => {
    const b = file('ycc420.jpg');
    b[findMarker(b, 0xc0) + 1] = 0xc3;
    expect(message(b)).toBe('x.jpg: unsupported JPEG coding (lossless); re-save it as a baseline or progressive JPEG');
    const h = file('ycc420.jpg');
    expect(message(insert(h, findMarker(h, 0xdb), [0xff, 0xde, 0, 5, 8, 0, 1]))).toMatch(/unsupported JPEG coding \(hierarchical\)/);
  });

  it('sampling factors libjpeg cannot upsample (3:2) or fit in an MCU (4x4 + 1 + 1 blocks)', () => {
    const b = file('ycc420.jpg');
    const sof = findMarker(b, 0xc0);
    b[sof + 11] = 0x31; // Y 3x1
    b[sof + 14] = 0x21; // Cb 2x1
    expect(message(b)).toMatch(/unsupported JPEG sampling factors \(component 2 is 2x1 of 3x1: not an integer ratio\)/);
    const m = file('ycc420.jpg');
    m[findMarker(m, 0xc0) + 11] = 0x44;
    expect(message(m)).toMatch(/sampling factors too large for an interleaved scan: 18 blocks an MCU/);
  });

  it('decodes what libjpeg only warns about to the same pixels: stray bytes before markers, junk after EOI', () => {
    const b = file('ycc420.jpg');
    const want = decodeImage(b).data;
    const dqt = findMarker(b, 0xdb);
    expect(decodeImage(insert(b, dqt, [0x12, 0x34, 0xff, 0xff])).data).toEqual(want); // stray bytes, fill bytes
    expect(decodeImage(insert(b, b.length - 2, [0x00, 0x42, 0xff, 0x00])).data).toEqual(want); // between the data and EOI
    expect(decodeImage(Buffer.concat([b, Uint8Array.from([1, 2, 3])])).data).toEqual(want);
  });
});

describe('jpeg.ts: what libjpeg decides, and what it keeps for the caller', () => {
  const dec = (name: string) => decodeJpeg(readFileSync(join(FIXTURES, name)));

  it("picks libjpeg's colour space: JFIF, then Adobe's transform, then component ids", () => {
    expect(dec('gray.jpg').colorSpace).toBe('gray');
    expect(dec('ycc420.jpg')).toMatchObject({ colorSpace: 'ycbcr', jfif: true, adobe: null, components: 3 });
    expect(dec('ycc_no_jfif.jpg')).toMatchObject({ colorSpace: 'ycbcr', jfif: false, adobe: null });
    expect(dec('rgb.jpg')).toMatchObject({ colorSpace: 'rgb', adobe: { transform: 0 } });
    expect(dec('rgb_ids.jpg')).toMatchObject({ colorSpace: 'rgb', adobe: null });
    expect(dec('cmyk.jpg')).toMatchObject({ colorSpace: 'cmyk', components: 4, adobe: { transform: 0 } });
    expect(dec('ycck.jpg')).toMatchObject({ colorSpace: 'ycck', adobe: { transform: 2 } });
  });

  it('says which files are progressive, and smooths exactly those whose scans leave coefficients unrefined', () => {
    expect(dec('ycc420.jpg').progressive).toBe(false);
    for (const c of manifest.cases.filter((k) => k.file.endsWith('.jpg') && k.expect)) {
      const img = dec(c.file);
      expect(img.smoothed, c.file).toBe(!!c.smoothing);
      if (/progressive/.test(c.file)) expect(img.progressive, c.file).toBe(true);
    }
  });

  it('keeps the first APP1 segment (EXIF) for the caller', () => {
    expect(new TextDecoder().decode(dec('orient6.jpg').app1!.subarray(0, 4))).toBe('Exif');
    expect(dec('ycc420.jpg').app1).toBeNull();
  });

  it('throws JpegError, one line without a file name; maxPixels from the frame header', () => {
    const b = readFileSync(join(FIXTURES, 'ycc420.jpg'));
    expect(() => decodeJpeg(b, { maxPixels: 850 })).toThrow(new JpegError('image is 37x23 (0.0 megapixels), over the limit of 0.0 megapixels'));
    expect(decodeJpeg(b, { maxPixels: 851 }).width).toBe(37);
    expect(() => decodeJpeg(b.subarray(0, 100))).toThrow(JpegError);
    expect(() => decodeJpeg(Uint8Array.from([1, 2]))).toThrow('not a JPEG (no start-of-image marker)');
    const p = readFileSync(join(FIXTURES, 'ycc420_progressive.jpg'));
    expect(() => decodeJpeg(p, { maxScans: 2 })).toThrow(new JpegError('unsupported JPEG (more than 2 scans)'));
  });
});

function findMarker(b: Uint8Array, marker: number): number {
  let p = 2;
  while (p < b.length) {
    if (b[p + 1] === marker) return p;
    p += 2 + ((b[p + 2]! << 8) | b[p + 3]!);
  }
  throw new Error(`no marker ff${marker.toString(16)}`);
}

// ---- decompression bombs ------------------------------------------------------------------

describe('refuses oversized images from the header, before decoding', () => {
  it('PNG claiming 100000x100000 (10 gigapixels)', () => {
    const file = pngFile(100000, 100000, 2, 8, [0, 0, 0, 0]);
    const t = performance.now();
    const e = imageError(() => decodeImage(file, 'bomb.png'));
    expect(e.message).toBe('bomb.png: image is 100000x100000 (10000.0 megapixels), over the limit of 100.0 megapixels');
    expect(performance.now() - t).toBeLessThan(100);
  });

  it('JPEG claiming 65535x65535 (the largest a JPEG header holds)', () => {
    const bad = Uint8Array.from(readFileSync(join(FIXTURES, 'ycc420.jpg')));
    const sof = findMarker(bad, 0xc0);
    bad.set([0xff, 0xff, 0xff, 0xff], sof + 5);
    const e = imageError(() => decodeImage(bad, 'bomb.jpg'));
    expect(e.message).toMatch(/^bomb\.jpg: image is 65535x65535 \(4294\.8 megapixels\), over the limit/);
  });

  it('JPEG claiming 10000x10000 (within the limit) in a file of 1.5 KB: refused before any buffer is allocated', () => {
    const bad = Uint8Array.from(readFileSync(join(FIXTURES, 'ycc420.jpg')));
    bad.set([0x27, 0x10, 0x27, 0x10], findMarker(bad, 0xc0) + 5);
    const t = performance.now();
    const e = imageError(() => decodeImage(bad, 'big.jpg'));
    expect(e.message).toMatch(/^big\.jpg: truncated JPEG \(\d+ bytes are left for the 2343750 blocks of scan 1, each of which takes at least a bit\)$/);
    expect(performance.now() - t).toBeLessThan(100);
  });

  it('honours a smaller maxPixels', () => {
    const path = join(FIXTURES, 'rgb8.png'); // 13x7 = 91 pixels
    expect(decodeImage(path, undefined, { maxPixels: 91 }).width).toBe(13);
    expect(imageError(() => decodeImage(path, undefined, { maxPixels: 90 })).message).toMatch(/over the limit/);
    expect(imageError(() => decodeImage(join(FIXTURES, 'ycc420.jpg'), 'j', { maxPixels: 800 })).message).toMatch(/^j: image is 37x23/);
  });

  it('an interlaced PNG whose data inflates far past its size (zlib bomb)', () => {
    const zeros = deflateSync(new Uint8Array(20 << 20)); // 20 MiB of zeros in ~20 KB
    const file = pngFile(8, 8, 0, 8, [], 1, zeros);
    expect(imageError(() => decodeImage(file, 'zip.png')).message).toMatch(/^zip\.png: corrupt PNG \(image data inflates past/);
  });
});

// ---- raw pixels ---------------------------------------------------------------------------

describe('raw pixels through toRGB', () => {
  it('gray is replicated, RGBA loses alpha, RGB is copied', () => {
    expect([...toRGB({ data: Uint8Array.from([7, 9]), width: 2, height: 1, channels: 1 }).data]).toEqual([7, 7, 7, 9, 9, 9]);
    expect([...toRGB({ data: Uint8Array.from([1, 2, 3, 4]), width: 1, height: 1, channels: 4 }).data]).toEqual([1, 2, 3]);
    const rgb = Uint8Array.from([1, 2, 3]);
    const out = toRGB({ data: rgb, width: 1, height: 1, channels: 3 });
    expect([...out.data]).toEqual([1, 2, 3]);
    expect(out.data).not.toBe(rgb);
  });

  it('decodeImage accepts raw pixels, and Uint8ClampedArray (canvas ImageData)', () => {
    const img = decodeImage({ data: new Uint8ClampedArray([5, 6, 7, 255]), width: 1, height: 1, channels: 4 });
    expect(img).toEqual({ data: Uint8Array.from([5, 6, 7]), width: 1, height: 1 });
  });

  it('wrong sizes and channel counts are ImageErrors naming the input', () => {
    expect(imageError(() => decodeImage({ data: new Uint8Array(5), width: 2, height: 1, channels: 3 }, 'cam')).message).toBe(
      'cam: 2x1x3 needs 6 bytes, got 5',
    );
    expect(imageError(() => decodeImage({ data: new Uint8Array(4), width: 2, height: 1, channels: 2 as 1 })).message).toMatch(
      /<raw image>: channels must be 1, 3 or 4/,
    );
  });
});

// ---- dog.jpg ---------------------------------------------------------------------------------

describe('shared/images/dog.jpg', () => {
  it('is there: the tests expect ../shared beside the checkout', () => {
    expect(existsSync(DOG), `${DOG} is missing`).toBe(true);
  });

  it(`decodes to cv2.imread's size (${manifest.dog.width}x${manifest.dog.height}; EXIF orientation ${manifest.dog.orientation})`, () => {
    const img = decodeImage(DOG);
    expect([img.width, img.height]).toEqual([1546, 1213]);
    expect([img.width, img.height]).toEqual([manifest.dog.width, manifest.dog.height]);
    expect(manifest.dog.orientation).toBe(1);
  });

  it("matches cv2.imread's pixels exactly (SHA-256 of the whole image; grid and corner crops say how far off)", () => {
    expect(sha256(readFileSync(DOG)), 'dog.jpg is not the file the fixtures were made from: rerun generate.py').toBe(manifest.dog.file_sha256);
    const img = decodeImage(DOG);
    const { step } = manifest.dog;
    const gw = Math.ceil(img.width / step);
    const gh = Math.ceil(img.height / step);
    const grid = new Uint8Array(gw * gh * 3);
    for (let y = 0; y < gh; y++) {
      for (let x = 0; x < gw; x++) grid.set(img.data.subarray(((y * step) * img.width + x * step) * 3, ((y * step) * img.width + x * step) * 3 + 3), (y * gw + x) * 3);
    }
    const g = diff(grid, new Uint8Array(readFileSync(join(FIXTURES, manifest.dog.grid))));
    console.log(`dog.jpg vs cv2.imread, grid: max ${g.max}, mean ${g.mean.toFixed(3)}`);
    for (const c of manifest.dog.crops) {
      const crop = new Uint8Array(c.width * c.height * 3);
      for (let y = 0; y < c.height; y++) {
        const s = ((c.y + y) * img.width + c.x) * 3;
        crop.set(img.data.subarray(s, s + c.width * 3), y * c.width * 3);
      }
      const d = diff(crop, new Uint8Array(readFileSync(join(FIXTURES, c.file))));
      console.log(`dog.jpg vs cv2.imread, ${c.file}: max ${d.max}, mean ${d.mean.toFixed(3)}`);
      expect(d.max).toBe(0);
    }
    expect(g.max).toBe(0);
    expect(sha256(img.data)).toBe(manifest.dog.rgb_sha256);
  });
});
