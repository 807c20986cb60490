// Image files to 8-bit RGB pixels, as `cv2.imread(path, cv2.IMREAD_COLOR)` (then
// BGR -> RGB) gives them to the MiDaS hub transform. Node-only (reads files).
//
// - The format comes from the first bytes, never from the file name.
// - JPEG: our own decoder (jpeg.ts), whose pixels are libjpeg-turbo's bit for bit
//   as OpenCV gets them (islow IDCT, fancy upsampling, libjpeg's colour spaces and
//   fixed-point YCbCr -> RGB; CMYK/YCCK with an Adobe marker converted as OpenCV
//   does). Baseline, extended and progressive Huffman JPEGs; arithmetic coding,
//   lossless, hierarchical and 12-bit JPEGs are refused by name. Corrupt data, or a
//   file cut off before its EOI marker, is refused where libjpeg would warn and fill
//   in gray. EXIF orientation 1-8 is applied like OpenCV: from the first APP1
//   segment, IFD0 tag 0x0112.
// - PNG: pngjs; every colour type and bit depth. 16-bit samples keep their high byte
//   (libpng's png_set_strip_16, as OpenCV uses); alpha is dropped, not composited
//   (IMREAD_COLOR strips it); a tRNS colour key leaves the colours alone; an eXIf
//   chunk's orientation is applied (OpenCV 4.6 does so too).
// - Size limits come from the header, before any pixel buffer is allocated.
import { readFileSync, statSync } from 'node:fs';
import { inflateSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { decodeJpeg, JpegError, type JpegImage } from './jpeg.js';
import { toRGB, type RawImage, type RgbImage } from '../midas/transform.js';

export { toRGB, type RawImage } from '../midas/transform.js';

/** 8-bit RGB pixels, row-major, 3 bytes a pixel. */
export type DecodedImage = RgbImage;

/** A decoding failure, as one line naming the file and the problem. */
export class ImageError extends Error {
  override name = 'ImageError';
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`);
  }
}

export interface DecodeOptions {
  /** Refuse images with more pixels than this (default 100 megapixels). */
  maxPixels?: number;
}

export const DEFAULT_MAX_PIXELS = 100_000_000;

/**
 * Decodes a JPEG or PNG file (a path or its bytes) to RGB, or converts raw pixels
 * with `toRGB`. `name` is what error messages call the input (default: the path,
 * or "<image>" for bytes).
 */
export function decodeImage(input: string | Uint8Array | RawImage, name?: string, opts: DecodeOptions = {}): DecodedImage {
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (typeof input === 'string') {
    const file = name ?? input;
    return decodeBytes(readImageFile(input, file), file, maxPixels);
  }
  if (input instanceof Uint8Array) return decodeBytes(input, name ?? '<image>', maxPixels);
  const file = name ?? '<raw image>';
  try {
    const out = toRGB(input);
    checkPixels(out.width, out.height, maxPixels, file);
    return out;
  } catch (e) {
    if (e instanceof ImageError) throw e;
    throw new ImageError(file, (e as Error).message.replace(/^toRGB: /, ''));
  }
}

function readImageFile(path: string, file: string): Uint8Array {
  let size: number;
  try {
    const st = statSync(path);
    if (st.isDirectory()) throw new ImageError(file, 'is a directory, not an image file');
    size = st.size;
  } catch (e) {
    if (e instanceof ImageError) throw e;
    throw new ImageError(file, fsProblem(e));
  }
  if (size === 0) throw new ImageError(file, 'empty file (0 bytes)');
  try {
    return readFileSync(path);
  } catch (e) {
    throw new ImageError(file, fsProblem(e));
  }
}

function fsProblem(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  return `cannot read (${(e as Error).message})`;
}

function decodeBytes(bytes: Uint8Array, file: string, maxPixels: number): DecodedImage {
  if (bytes.length === 0) throw new ImageError(file, 'empty file (0 bytes)');
  const format = sniff(bytes);
  if (format === 'jpeg') return decodeJpegFile(bytes, file, maxPixels);
  if (format === 'png') return decodePng(bytes, file, maxPixels);
  if (format) throw new ImageError(file, `unsupported image format (${format}); convert it to PNG or JPEG`);
  throw new ImageError(file, `not a PNG or JPEG image (starts with ${describeStart(bytes)})`);
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** 'jpeg', 'png', the name of a format we recognise but do not read, or null. */
function sniff(b: Uint8Array): string | null {
  const ascii = (at: number, s: string) => s.split('').every((ch, i) => b[at + i] === ch.charCodeAt(0));
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 4 && PNG_SIGNATURE.slice(0, 4).every((v, i) => b[i] === v)) return 'png';
  if (ascii(0, 'GIF87a') || ascii(0, 'GIF89a')) return 'GIF';
  if (ascii(0, 'RIFF') && ascii(8, 'WEBP')) return 'WebP';
  if (ascii(0, 'BM') && b.length >= 14) return 'BMP';
  if (ascii(0, 'II*\0') || ascii(0, 'MM\0*')) return 'TIFF';
  if (ascii(4, 'ftyp')) return 'HEIF/AVIF or another ISO media file';
  if (ascii(0, '\0\0\0\x0cjP  ') || (b[0] === 0xff && b[1] === 0x4f && b[2] === 0xff && b[3] === 0x51)) return 'JPEG 2000';
  if (b[0] === 0x76 && b[1] === 0x2f && b[2] === 0x31 && b[3] === 0x01) return 'OpenEXR';
  if (ascii(0, 'qoif')) return 'QOI';
  if (b[0] === 0x50 && b[1]! >= 0x31 && b[1]! <= 0x36 && (b[2] === 0x0a || b[2] === 0x20 || b[2] === 0x0d)) return 'PNM';
  return null;
}

function describeStart(b: Uint8Array): string {
  const head = b.subarray(0, 8);
  const printable = head.every((c) => c === 9 || c === 10 || c === 13 || (c >= 32 && c < 127));
  if (printable) return JSON.stringify(new TextDecoder().decode(head));
  return [...head].map((c) => c.toString(16).padStart(2, '0')).join(' ');
}

function checkPixels(width: number, height: number, maxPixels: number, file: string): void {
  if (width < 1 || height < 1) throw new ImageError(file, `corrupt header: image size ${width}x${height}`);
  if (width * height > maxPixels) {
    throw new ImageError(
      file,
      `image is ${width}x${height} (${((width * height) / 1e6).toFixed(1)} megapixels), ` +
        `over the limit of ${(maxPixels / 1e6).toFixed(1)} megapixels`,
    );
  }
}

// ---- EXIF orientation ------------------------------------------------------------

/**
 * The orientation tag (0x0112) of IFD0 in a TIFF-structured EXIF block, or 1 when
 * absent or unreadable (as OpenCV's ExifReader treats it).
 */
export function exifOrientation(tiff: Uint8Array): number {
  if (tiff.length < 8) return 1;
  const le = tiff[0] === 0x49 && tiff[1] === 0x49;
  const be = tiff[0] === 0x4d && tiff[1] === 0x4d;
  if (!le && !be) return 1;
  const v = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
  const u16 = (o: number) => v.getUint16(o, le);
  if (u16(2) !== 42) return 1;
  const ifd = v.getUint32(4, le);
  if (ifd + 2 > tiff.length) return 1;
  const count = u16(ifd);
  for (let i = 0; i < count; i++) {
    const e = ifd + 2 + 12 * i;
    if (e + 12 > tiff.length) return 1;
    if (u16(e) !== 0x0112) continue;
    const type = u16(e + 2);
    const value = type === 3 ? u16(e + 8) : type === 4 ? v.getUint32(e + 8, le) : 0;
    return value >= 1 && value <= 8 ? value : 1;
  }
  return 1;
}

/**
 * Applies an EXIF orientation like OpenCV's ApplyExifOrientation: 2 flips x, 3
 * rotates 180, 4 flips y, 5 transposes, 6 rotates 90 clockwise, 7 transposes
 * across the other diagonal, 8 rotates 90 counter-clockwise.
 */
export function applyOrientation(img: DecodedImage, orientation: number): DecodedImage {
  if (orientation < 2 || orientation > 8) return img;
  const { width: w, height: h, data } = img;
  const swap = orientation >= 5;
  const ow = swap ? h : w;
  const oh = swap ? w : h;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let sx: number;
      let sy: number;
      switch (orientation) {
        case 2: sx = w - 1 - x; sy = y; break; // flip(img, 1)
        case 3: sx = w - 1 - x; sy = h - 1 - y; break; // flip(img, -1)
        case 4: sx = x; sy = h - 1 - y; break; // flip(img, 0)
        case 5: sx = y; sy = x; break; // transpose
        case 6: sx = y; sy = h - 1 - x; break; // transpose, flip(1)
        case 7: sx = w - 1 - y; sy = h - 1 - x; break; // transpose, flip(-1)
        default: sx = w - 1 - y; sy = x; break; // 8: transpose, flip(0)
      }
      const s = (sy * w + sx) * 3;
      const o = (y * ow + x) * 3;
      out[o] = data[s]!;
      out[o + 1] = data[s + 1]!;
      out[o + 2] = data[s + 2]!;
    }
  }
  return { data: out, width: ow, height: oh };
}

// ---- JPEG ----------------------------------------------------------------------

function decodeJpegFile(bytes: Uint8Array, file: string, maxPixels: number): DecodedImage {
  let img: JpegImage;
  try {
    img = decodeJpeg(bytes, { maxPixels });
  } catch (e) {
    if (e instanceof JpegError) throw new ImageError(file, e.message);
    throw e;
  }
  if (img.components === 4 && !img.adobe) {
    // libjpeg (and so OpenCV) would take these as plain CMYK; we do not guess.
    throw new ImageError(file, 'unsupported JPEG (4 colour components without an Adobe marker: unknown CMYK variant)');
  }
  // OpenCV reads EXIF from the first APP1 segment before the image data only, whatever it holds.
  const app1 = img.app1;
  const orientation = app1 && ascii(app1, 0, 'Exif\0') ? exifOrientation(app1.subarray(6)) : 1;
  return applyOrientation({ data: img.data, width: img.width, height: img.height }, orientation);
}

// ---- PNG -----------------------------------------------------------------------

const PNG_COLOR_TYPES: Record<number, { name: string; depths: number[] }> = {
  0: { name: 'gray', depths: [1, 2, 4, 8, 16] },
  2: { name: 'RGB', depths: [8, 16] },
  3: { name: 'palette', depths: [1, 2, 4, 8] },
  4: { name: 'gray+alpha', depths: [8, 16] },
  6: { name: 'RGBA', depths: [8, 16] },
};

interface PngInfo {
  width: number;
  height: number;
  depth: number;
  colorType: number;
  interlaced: boolean;
  orientation: number;
  /** [start, end) of each tRNS chunk (length field to CRC). */
  trns: [number, number][];
  /** The data of each IDAT chunk. */
  idat: Uint8Array[];
}

/** Walks the PNG's chunks: header checks, eXIf orientation, and that IEND is there. */
function scanPng(b: Uint8Array, file: string, maxPixels: number): PngInfo {
  const truncated = () => new ImageError(file, 'truncated PNG (the data ends before the IEND chunk)');
  if (b.length < 8) throw truncated();
  if (!PNG_SIGNATURE.every((v, i) => b[i] === v)) throw new ImageError(file, 'corrupt PNG (bad signature bytes)');
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const info: PngInfo = { width: 0, height: 0, depth: 0, colorType: 0, interlaced: false, orientation: 1, trns: [], idat: [] };
  let p = 8;
  let first = true;
  let sawExif = false;
  for (;;) {
    if (p + 8 > b.length) throw truncated();
    const len = view.getUint32(p);
    const type = String.fromCharCode(b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!);
    if (!/^[A-Za-z]{4}$/.test(type)) throw new ImageError(file, `corrupt PNG (bad chunk type at byte ${p + 4})`);
    const end = p + 12 + len;
    if (len > 0x7fffffff || end > b.length) throw truncated();
    const data = b.subarray(p + 8, p + 8 + len);
    if (first) {
      if (type !== 'IHDR' || len !== 13) throw new ImageError(file, 'corrupt PNG (IHDR is not the first chunk)');
      info.width = view.getUint32(p + 8);
      info.height = view.getUint32(p + 12);
      info.depth = data[8]!;
      info.colorType = data[9]!;
      const ct = PNG_COLOR_TYPES[info.colorType];
      if (!ct || !ct.depths.includes(info.depth)) {
        throw new ImageError(file, `corrupt PNG (colour type ${info.colorType} with bit depth ${info.depth})`);
      }
      if (data[10] !== 0 || data[11] !== 0 || data[12]! > 1) {
        throw new ImageError(file, 'corrupt PNG (unknown compression, filter or interlace method)');
      }
      info.interlaced = data[12] === 1;
      checkPixels(info.width, info.height, maxPixels, file);
      first = false;
    } else if (type === 'IDAT') {
      info.idat.push(data);
    } else if (type === 'tRNS') {
      info.trns.push([p, end]);
    } else if (type === 'eXIf' && !sawExif) {
      sawExif = true;
      info.orientation = exifOrientation(data);
    } else if (type === 'IEND') {
      break;
    }
    p = end;
  }
  if (!info.idat.length) throw new ImageError(file, 'corrupt PNG (no IDAT chunk)');
  return info;
}

function decodePng(bytes: Uint8Array, file: string, maxPixels: number): DecodedImage {
  const info = scanPng(bytes, file, maxPixels);
  // pngjs turns pixels matching a gray/RGB tRNS key into transparent black; OpenCV
  // keeps their colour and drops alpha. Hand pngjs the file without those chunks.
  let src = bytes;
  if (info.trns.length && (info.colorType === 0 || info.colorType === 2)) {
    const parts: Uint8Array[] = [];
    let at = 0;
    for (const [s, e] of info.trns) {
      parts.push(bytes.subarray(at, s));
      at = e;
    }
    parts.push(bytes.subarray(at));
    src = Buffer.concat(parts);
  }
  checkImageData(info, file);
  const buffer = Buffer.isBuffer(src) ? src : Buffer.from(src.buffer, src.byteOffset, src.byteLength);
  let png: { width: number; height: number; data: Uint8Array | Uint16Array };
  try {
    png = PNG.sync.read(buffer, { skipRescale: info.depth === 16 }) as unknown as typeof png;
  } catch (e) {
    throw new ImageError(file, `corrupt PNG (${(e as Error).message})`);
  }
  const { width, height } = info;
  const n = width * height;
  if (png.width !== width || png.height !== height || png.data.length !== n * 4) {
    throw new ImageError(file, `corrupt PNG (decoded ${png.width}x${png.height}, header says ${width}x${height})`);
  }
  const rgba = png.data;
  const shift = info.depth === 16 ? 8 : 0; // png_set_strip_16: keep the high byte
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    out[3 * i] = rgba[4 * i]! >> shift;
    out[3 * i + 1] = rgba[4 * i + 1]! >> shift;
    out[3 * i + 2] = rgba[4 * i + 2]! >> shift;
  }
  return applyOrientation({ data: out, width, height }, info.orientation);
}

/**
 * Inflates the image data once to check it, before pngjs does: pngjs passes bad
 * zlib streams and short data without a word (giving black pixels), and inflates an
 * interlaced image without a cap, so a small file could expand into gigabytes.
 */
function checkImageData(info: PngInfo, file: string): void {
  const channels = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[info.colorType as 0 | 2 | 3 | 4 | 6];
  const bits = channels * info.depth;
  const rows = (w: number, h: number) => (w > 0 && h > 0 ? h * (1 + Math.ceil((w * bits) / 8)) : 0);
  let need = 0;
  if (!info.interlaced) need = rows(info.width, info.height);
  else for (const [x0, y0, dx, dy] of ADAM7) need += rows(Math.ceil((info.width - x0) / dx), Math.ceil((info.height - y0) / dy));
  const bound = need + 65536; // libpng only warns about a little extra data
  let got: number;
  try {
    got = inflateSync(Buffer.concat(info.idat), { maxOutputLength: bound }).length;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') throw new ImageError(file, `corrupt PNG (image data inflates past the ${need} bytes its size needs)`);
    if (code === 'Z_BUF_ERROR') throw new ImageError(file, 'truncated PNG (the compressed image data ends early)');
    throw new ImageError(file, `corrupt PNG (${(e as Error).message})`);
  }
  if (got < need) throw new ImageError(file, `corrupt PNG (image data has ${got} of the ${need} bytes its size needs)`);
}

/** Adam7 passes: x0, y0, dx, dy. */
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const;

// ---- helpers -------------------------------------------------------------------

function ascii(b: Uint8Array, at: number, s: string): boolean {
  if (at + s.length > b.length) return false;
  for (let i = 0; i < s.length; i++) if (b[at + i] !== s.charCodeAt(i)) return false;
  return true;
}
