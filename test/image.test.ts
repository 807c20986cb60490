// Image decoding (src/node/image.ts) against OpenCV's cv2.imread(IMREAD_COLOR):
// committed fixtures with cv2's pixels (test/fixtures/images/generate.py), EXIF
// orientation blocks spliced into jpeg-js-encoded files here, and every way a file
// can be wrong.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';
import { applyOrientation, decodeImage, ImageError, toRGB, type DecodedImage } from '../src/node/image.js';

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
  note: string;
}

const manifest: {
  cases: FixtureCase[];
  dog: {
    width: number;
    height: number;
    orientation: number;
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

// ---- tolerances against cv2 ----------------------------------------------------------
// PNG decoding is exact. For JPEG, jpeg-js's integer IDCT rounds differently from
// libjpeg-turbo's jidctint (ISLOW); the colour conversion and chroma upsampling are
// libjpeg's own arithmetic here, so what is left is the IDCT: measured over these
// fixtures max 3 levels, mean <= 0.27; on all of dog.jpg max 3, mean 0.14 (88% of
// samples equal; the grid and crops checked below measure max 3, mean <= 0.15). CMYK goes through jpeg-js's float formula where OpenCV uses integer >> 8:
// max 1 level, mean 0.92.
const JPEG_MAX = 3;
const JPEG_MEAN = 0.3;

describe('decodes like cv2.imread(IMREAD_COLOR)', () => {
  for (const c of manifest.cases.filter((k) => k.expect)) {
    it(`${c.file}: ${c.note}`, () => {
      const img = decodeImage(join(FIXTURES, c.file));
      expect([img.width, img.height]).toEqual([c.width, c.height]);
      const want = new Uint8Array(readFileSync(join(FIXTURES, c.expect!)));
      const d = diff(img.data, want);
      if (c.file.endsWith('.png')) {
        expect(d.max).toBe(0);
      } else if (c.file.startsWith('cmyk')) {
        expect(d.max).toBeLessThanOrEqual(1);
        expect(d.mean).toBeLessThan(1);
      } else {
        expect(d.max).toBeLessThanOrEqual(JPEG_MAX);
        expect(d.mean).toBeLessThan(JPEG_MEAN);
      }
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

// ---- EXIF orientation, spliced into jpeg-js output --------------------------------

// A 3x2 grid of 8x8 blocks, each a solid colour: JPEG keeps solid blocks nearly
// exact, and no two blocks share a colour, so every block's position is checkable.
const BLOCK_COLOURS = [
  [[255, 0, 0], [0, 255, 0], [0, 0, 255]],
  [[255, 255, 0], [255, 0, 255], [0, 255, 255]],
];

function blockJpeg(): Uint8Array {
  const w = 24;
  const h = 16;
  const rgba = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      rgba.set([...BLOCK_COLOURS[y >> 3]![x >> 3]!, 255], (y * w + x) * 4);
    }
  }
  return new Uint8Array(jpeg.encode({ data: rgba, width: w, height: h }, 95).data);
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

/** Inserts segments after SOI and the APP0 (JFIF) segment jpeg-js writes. */
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

describe('EXIF orientation (APP1 spliced into a jpeg-js file)', () => {
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

describe.skipIf(!existsSync(DOG))('shared/images/dog.jpg', () => {
  it(`decodes to cv2.imread's size (${manifest.dog.width}x${manifest.dog.height}; EXIF orientation ${manifest.dog.orientation})`, () => {
    const img = decodeImage(DOG);
    expect([img.width, img.height]).toEqual([1546, 1213]);
    expect([img.width, img.height]).toEqual([manifest.dog.width, manifest.dog.height]);
    expect(manifest.dog.orientation).toBe(1);
  });

  it(`matches cv2.imread's pixels within ${JPEG_MAX} levels (grid every ${manifest.dog.step} pixels, two corner crops)`, () => {
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
    expect(g.max).toBeLessThanOrEqual(JPEG_MAX);
    expect(g.mean).toBeLessThan(0.25);
    for (const c of manifest.dog.crops) {
      const crop = new Uint8Array(c.width * c.height * 3);
      for (let y = 0; y < c.height; y++) {
        const s = ((c.y + y) * img.width + c.x) * 3;
        crop.set(img.data.subarray(s, s + c.width * 3), y * c.width * 3);
      }
      const d = diff(crop, new Uint8Array(readFileSync(join(FIXTURES, c.file))));
      console.log(`dog.jpg vs cv2.imread, ${c.file}: max ${d.max}, mean ${d.mean.toFixed(3)}`);
      expect(d.max).toBeLessThanOrEqual(JPEG_MAX);
      expect(d.mean).toBeLessThan(0.25);
    }
  });
});
