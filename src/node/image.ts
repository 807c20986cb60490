// Image files to 8-bit RGB pixels, as `cv2.imread(path, cv2.IMREAD_COLOR)` (then
// BGR -> RGB) gives them to the MiDaS hub transform. Node-only (reads files).
//
// - The format comes from the first bytes, never from the file name.
// - JPEG: jpeg-js decodes the coefficients; the colour space choice, libjpeg's
//   "fancy" (triangle) chroma upsampling and its fixed-point YCbCr -> RGB are done
//   here, so the pixels match libjpeg-turbo's but for its integer IDCT: jpeg-js's
//   rounds differently, up to 3 levels (dog.jpg: mean 0.14, 88% of samples equal;
//   measured in test/image.test.ts). A file must reach its EOI marker: a cut-off
//   file is refused where libjpeg would warn and fill in gray.
//   Baseline, extended and progressive Huffman JPEGs; gray, YCbCr, RGB, CMYK and
//   YCCK (Adobe APP14; jpeg-js converts those to RGB with OpenCV's formula, within a
//   level, and upsamples their chroma by repetition). Arithmetic coding, lossless
//   and 12-bit JPEGs are refused by name. EXIF orientation 1-8 is applied like
//   OpenCV: from the first APP1 segment, IFD0 tag 0x0112.
// - PNG: pngjs; every colour type and bit depth. 16-bit samples keep their high byte
//   (libpng's png_set_strip_16, as OpenCV uses); alpha is dropped, not composited
//   (IMREAD_COLOR strips it); a tRNS colour key leaves the colours alone; an eXIf
//   chunk's orientation is applied (OpenCV 4.6 does so too).
// - Size limits come from the header, before any pixel buffer is allocated.
import { readFileSync, statSync } from 'node:fs';
import { inflateSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
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
  if (format === 'jpeg') return decodeJpeg(bytes, file, maxPixels);
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

interface JpegComponent {
  id: number;
  h: number;
  v: number;
}

interface JpegInfo {
  width: number;
  height: number;
  precision: number;
  components: JpegComponent[];
  jfif: boolean;
  /** Offset of the Adobe APP14 transform byte, when there is such a segment. */
  adobeTransformAt: number;
  adobeTransform: number;
  orientation: number;
}

const SOF_NAMES: Record<number, string> = {
  0xc3: 'lossless',
  0xc5: 'differential sequential',
  0xc6: 'differential progressive',
  0xc7: 'differential lossless',
  0xc9: 'arithmetic-coded sequential',
  0xca: 'arithmetic-coded progressive',
  0xcb: 'arithmetic-coded lossless',
  0xcd: 'arithmetic-coded differential sequential',
  0xce: 'arithmetic-coded differential progressive',
  0xcf: 'arithmetic-coded differential lossless',
};

/**
 * Walks the JPEG's segments (without decoding) for the frame header, the colour
 * markers and the EXIF orientation, and checks the stream reaches its EOI marker.
 */
function scanJpeg(b: Uint8Array, file: string, maxPixels: number): JpegInfo {
  const truncated = () => new ImageError(file, 'truncated JPEG (the data ends before the end-of-image marker)');
  const info: JpegInfo = {
    width: 0,
    height: 0,
    precision: 8,
    components: [],
    jfif: false,
    adobeTransformAt: -1,
    adobeTransform: -1,
    orientation: 1,
  };
  let sawApp1 = false;
  let sawFrame = false;
  let sawScan = false;
  let p = 2;
  for (;;) {
    if (p >= b.length) throw truncated();
    // Stray bytes before a marker: libjpeg skips them with a warning, and so do we.
    while (p < b.length && b[p] !== 0xff) p++;
    while (p < b.length && b[p] === 0xff) p++; // fill bytes
    if (p >= b.length) throw truncated();
    const marker = b[p++]!;
    if (marker === 0xd9) break; // EOI
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue; // no length
    if (marker === 0xd8 || marker === 0x00) throw new ImageError(file, `corrupt JPEG (unexpected marker ff${hex(marker)} at byte ${p - 2})`);
    if (p + 2 > b.length) throw truncated();
    const len = (b[p]! << 8) | b[p + 1]!;
    if (len < 2) throw new ImageError(file, `corrupt JPEG (segment length ${len} at byte ${p})`);
    const end = p + len;
    if (end > b.length) throw truncated();
    const seg = b.subarray(p + 2, end);
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (sawFrame) throw new ImageError(file, 'unsupported JPEG (more than one frame)');
      sawFrame = true;
      const kind = SOF_NAMES[marker];
      if (kind) throw new ImageError(file, `unsupported JPEG coding (${kind}); re-save it as a baseline or progressive JPEG`);
      if (seg.length < 6) throw new ImageError(file, 'corrupt JPEG (short frame header)');
      info.precision = seg[0]!;
      info.height = (seg[1]! << 8) | seg[2]!;
      info.width = (seg[3]! << 8) | seg[4]!;
      const n = seg[5]!;
      if (seg.length < 6 + 3 * n) throw new ImageError(file, 'corrupt JPEG (short frame header)');
      for (let i = 0; i < n; i++) {
        const s = seg[7 + 3 * i]!;
        info.components.push({ id: seg[6 + 3 * i]!, h: s >> 4, v: s & 15 });
      }
      if (info.precision !== 8) throw new ImageError(file, `unsupported JPEG sample precision (${info.precision} bits; only 8)`);
      if (info.height === 0) throw new ImageError(file, 'unsupported JPEG (height given by a DNL marker)');
      checkPixels(info.width, info.height, maxPixels, file);
      if (n !== 1 && n !== 3 && n !== 4) throw new ImageError(file, `unsupported JPEG with ${n} colour components`);
      if (info.components.some((c) => c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4)) {
        throw new ImageError(file, 'corrupt JPEG (bad sampling factors)');
      }
    } else if (marker === 0xe0 && ascii(seg, 0, 'JFIF\0')) {
      info.jfif = true;
    } else if (marker === 0xe1 && !sawApp1 && !sawScan) {
      // OpenCV reads the first APP1 segment before the image data only, whatever it holds.
      sawApp1 = true;
      if (ascii(seg, 0, 'Exif\0')) info.orientation = exifOrientation(seg.subarray(6));
    } else if (marker === 0xee && ascii(seg, 0, 'Adobe') && seg.length >= 12) {
      info.adobeTransformAt = p + 2 + 11;
      info.adobeTransform = seg[11]!;
    }
    p = end;
    if (marker === 0xda) {
      if (!sawFrame) throw new ImageError(file, 'corrupt JPEG (scan before the frame header)');
      sawScan = true;
      // Entropy-coded data runs to the next marker that is not a stuffed 0xff00 or a restart.
      for (;;) {
        while (p < b.length && b[p] !== 0xff) p++;
        if (p + 1 >= b.length) throw truncated();
        const next = b[p + 1]!;
        if (next === 0x00 || (next >= 0xd0 && next <= 0xd7) || next === 0xff) {
          p += next === 0xff ? 1 : 2;
          continue;
        }
        break;
      }
    }
  }
  if (!sawFrame || !sawScan) throw new ImageError(file, 'corrupt JPEG (no image data before the end-of-image marker)');
  return info;
}

function decodeJpeg(bytes: Uint8Array, file: string, maxPixels: number): DecodedImage {
  const info = scanJpeg(bytes, file, maxPixels);
  const { width, height, components } = info;
  const n = components.length;
  const maxH = Math.max(...components.map((c) => c.h));
  const maxV = Math.max(...components.map((c) => c.v));

  // libjpeg's choice of colour space (jdapimin.c default_decompress_parms).
  let space: 'gray' | 'ycc' | 'rgb' | 'cmyk' | 'ycck';
  if (n === 1) space = 'gray';
  else if (n === 3) {
    if (info.jfif) space = 'ycc';
    else if (info.adobeTransformAt >= 0) space = info.adobeTransform === 0 ? 'rgb' : 'ycc';
    else {
      const [a, b, c] = components.map((x) => x.id);
      space = a === 82 && b === 71 && c === 66 ? 'rgb' : 'ycc';
    }
  } else {
    if (info.adobeTransformAt < 0) {
      throw new ImageError(file, 'unsupported JPEG (4 colour components without an Adobe marker: unknown CMYK variant)');
    }
    space = info.adobeTransform === 0 ? 'cmyk' : 'ycck';
  }

  // For 3 components, ask jpeg-js for the raw component samples: it would convert
  // whenever an Adobe marker has a non-zero transform, so hand it a copy with 0.
  let src = bytes;
  if (n === 3 && info.adobeTransformAt >= 0 && info.adobeTransform !== 0) {
    src = Uint8Array.from(bytes);
    src[info.adobeTransformAt] = 0;
  }
  // jpeg-js keeps an Int32Array(64) per 8x8 block of every component, plus lines.
  const blocks = components.reduce((s, c) => s + (c.h / maxH) * (c.v / maxV), 0);
  const memoryMB = Math.ceil((width * height * (blocks * 6 + 4)) / 2 ** 20) + 64;
  let raw: { width: number; height: number; data: Uint8Array };
  try {
    raw = jpeg.decode(src, {
      useTArray: true,
      formatAsRGBA: false,
      colorTransform: n === 3 ? false : undefined,
      maxResolutionInMP: maxPixels / 1e6,
      maxMemoryUsageInMB: Math.max(512, memoryMB),
    });
  } catch (e) {
    throw new ImageError(file, `corrupt JPEG (${(e as Error).message})`);
  }
  if (raw.width !== width || raw.height !== height || raw.data.length !== width * height * 3) {
    throw new ImageError(file, `corrupt JPEG (decoded ${raw.width}x${raw.height}, header says ${width}x${height})`);
  }
  let rgb = raw.data;
  if (n === 3) {
    // jpeg-js upsampled subsampled components by repeating samples; libjpeg
    // interpolates (h2v1, h1v2, h2v2 "fancy" upsampling). Redo those from the samples.
    for (let ci = 0; ci < 3; ci++) fancyUpsample(rgb, width, height, ci, components[ci]!, maxH, maxV);
    if (space === 'ycc') yccToRgb(rgb);
  }
  // gray: jpeg-js already replicated Y; CMYK/YCCK: jpeg-js converted to RGB with
  // the same formula as OpenCV's icvCvt_CMYK2BGR (R = C·K/255 on Adobe's inverted
  // samples), to within a level of rounding.
  return applyOrientation({ data: rgb, width, height }, info.orientation);
}

/**
 * libjpeg-turbo's fancy upsampling (jdsample.c) of component `ci`, in place in the
 * interleaved buffer where jpeg-js left each sample repeated over its box.
 */
function fancyUpsample(buf: Uint8Array, width: number, height: number, ci: number, c: JpegComponent, maxH: number, maxV: number): void {
  const h2 = c.h * 2 === maxH;
  const v2 = c.v * 2 === maxV;
  const h1 = c.h === maxH;
  const v1 = c.v === maxV;
  const dw = Math.ceil((width * c.h) / maxH); // libjpeg's downsampled_width
  const dh = Math.ceil((height * c.v) / maxV);
  let mode: 'h2v1' | 'h1v2' | 'h2v2' | null = null;
  if (h2 && v1 && dw > 2) mode = 'h2v1';
  else if (h1 && v2) mode = 'h1v2';
  else if (h2 && v2 && dw > 2) mode = 'h2v2';
  if (!mode) return; // full size, or box replication, which is what jpeg-js did
  const sx = mode === 'h1v2' ? 1 : 2;
  const sy = mode === 'h2v1' ? 1 : 2;
  const samples = new Uint8Array(dw * dh);
  for (let y = 0; y < dh; y++) {
    for (let x = 0; x < dw; x++) samples[y * dw + x] = buf[((y * sy) * width + x * sx) * 3 + ci]!;
  }
  const put = (x: number, y: number, v: number) => {
    if (x < width && y < height) buf[(y * width + x) * 3 + ci] = v;
  };
  const at = (x: number, y: number) => samples[Math.min(Math.max(y, 0), dh - 1) * dw + x]!;
  if (mode === 'h2v1') {
    for (let y = 0; y < dh; y++) {
      for (let x = 0; x < dw; x++) {
        const v = at(x, y);
        put(2 * x, y, x === 0 ? v : (v * 3 + at(x - 1, y) + 1) >> 2);
        put(2 * x + 1, y, x === dw - 1 ? v : (v * 3 + at(x + 1, y) + 2) >> 2);
      }
    }
  } else if (mode === 'h1v2') {
    for (let y = 0; y < dh; y++) {
      for (let x = 0; x < dw; x++) {
        const v3 = at(x, y) * 3;
        put(x, 2 * y, (v3 + at(x, y - 1) + 1) >> 2);
        put(x, 2 * y + 1, (v3 + at(x, y + 1) + 2) >> 2);
      }
    }
  } else {
    // Vertical neighbour first (the row above for even output rows, below for odd),
    // then the horizontal triangle on the column sums.
    for (let y = 0; y < dh; y++) {
      for (let half = 0; half < 2; half++) {
        const ny = half === 0 ? y - 1 : y + 1;
        const sum = (x: number) => at(x, y) * 3 + at(x, ny);
        const oy = 2 * y + half;
        for (let x = 0; x < dw; x++) {
          const t = sum(x);
          const left = x === 0 ? (t * 4 + 8) >> 4 : (t * 3 + sum(x - 1) + 8) >> 4;
          const right = x === dw - 1 ? (t * 4 + 7) >> 4 : (t * 3 + sum(x + 1) + 7) >> 4;
          put(2 * x, oy, left);
          put(2 * x + 1, oy, right);
        }
      }
    }
  }
}

// libjpeg's YCbCr -> RGB tables (jdcolor.c build_ycc_rgb_table), 16-bit fixed point.
const FIX = (x: number) => Math.floor(x * 65536 + 0.5);
const CR_R = new Int32Array(256);
const CB_B = new Int32Array(256);
const CR_G = new Int32Array(256);
const CB_G = new Int32Array(256);
for (let i = 0; i < 256; i++) {
  const x = i - 128;
  CR_R[i] = (FIX(1.402) * x + 32768) >> 16;
  CB_B[i] = (FIX(1.772) * x + 32768) >> 16;
  CR_G[i] = -FIX(0.71414) * x;
  CB_G[i] = -FIX(0.34414) * x + 32768;
}

function yccToRgb(buf: Uint8Array): void {
  const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);
  for (let i = 0; i < buf.length; i += 3) {
    const y = buf[i]!;
    const cb = buf[i + 1]!;
    const cr = buf[i + 2]!;
    buf[i] = clamp(y + CR_R[cr]!);
    buf[i + 1] = clamp(y + ((CB_G[cb]! + CR_G[cr]!) >> 16));
    buf[i + 2] = clamp(y + CB_B[cb]!);
  }
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

function hex(v: number): string {
  return v.toString(16).padStart(2, '0');
}
