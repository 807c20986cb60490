// Depth map files in memory, for a browser's downloads: the same PFM and PNG bytes
// the Node entry writes to disk (src/node/outputs.ts), without Node built-ins. PNGs
// are deflated with the platform's CompressionStream (browsers; Node 18+ too).
import { colorize, finiteRange, type ColorMapName, type ValueRange } from '../midas/colormap.js';

function checkMap(depth: Float32Array, width: number, height: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`bad size ${width}x${height}`);
  }
  if (depth.length !== width * height) {
    throw new RangeError(`a ${width}x${height} map needs ${width * height} values, got ${depth.length}`);
  }
}

/**
 * A single-channel PFM exactly as MiDaS's utils.write_pfm (and `writePfm` in Node):
 * header `Pf\n{w} {h}\n-1.000000\n`, then little-endian float32 rows, bottom row first.
 */
export function encodePfm(depth: Float32Array, width: number, height: number): Uint8Array {
  checkMap(depth, width, height);
  const header = new TextEncoder().encode(`Pf\n${width} ${height}\n-1.000000\n`);
  const bytes = new Uint8Array(header.length + depth.length * 4);
  bytes.set(header);
  const view = new DataView(bytes.buffer, header.length);
  for (let y = 0; y < height; y++) {
    const src = (height - 1 - y) * width;
    for (let x = 0; x < width; x++) view.setFloat32((y * width + x) * 4, depth[src + x]!, true);
  }
  return bytes;
}

/**
 * The 16-bit values of MiDaS's write_depth(bits=2): (d - min) / (max - min) * 65535
 * over the finite values, rounded to nearest; an all-equal map gives zeros, NaN 0.
 * (The same as `depthTo16` in src/node/outputs.ts.)
 */
export function depthTo16(depth: Float32Array, range: ValueRange = finiteRange(depth)): Uint16Array {
  const { min, max } = range;
  const span = max - min;
  const out = new Uint16Array(depth.length);
  if (!(span > 0)) return out;
  for (let i = 0; i < depth.length; i++) {
    const v = depth[i]!;
    if (Number.isNaN(v)) continue;
    out[i] = Math.min(65535, Math.max(0, Math.round(((v - min) / span) * 65535)));
  }
  return out;
}

/** 16-bit grayscale PNG of the min-max scaled depth (see `depthTo16`), as MiDaS writes it. */
export function encodePng16(depth: Float32Array, width: number, height: number, range?: ValueRange): Promise<Uint8Array> {
  checkMap(depth, width, height);
  const values = depthTo16(depth, range);
  const rows = new Uint8Array(height * (1 + width * 2));
  for (let y = 0; y < height; y++) {
    let o = y * (1 + width * 2) + 1; // filter byte 0 (None)
    for (let x = 0; x < width; x++) {
      const v = values[y * width + x]!;
      rows[o++] = v >> 8;
      rows[o++] = v & 0xff;
    }
  }
  return encodePng(rows, width, height, 16, 0);
}

/** 8-bit RGB PNG of the depth through a colour map (inferno by default), min-max scaled. */
export function encodeColorPng(depth: Float32Array, width: number, height: number, map: ColorMapName = 'inferno', range?: ValueRange): Promise<Uint8Array> {
  checkMap(depth, width, height);
  const rgb = colorize(depth, map, range);
  const rows = new Uint8Array(height * (1 + width * 3));
  for (let y = 0; y < height; y++) rows.set(rgb.subarray(y * width * 3, (y + 1) * width * 3), y * (1 + width * 3) + 1);
  return encodePng(rows, width, height, 8, 2);
}

/** The colour-mapped depth as RGBA pixels, for a canvas's putImageData. */
export function colorizeRGBA(depth: Float32Array, width: number, height: number, map: ColorMapName = 'inferno', range?: ValueRange): Uint8ClampedArray {
  checkMap(depth, width, height);
  const rgb = colorize(depth, map, range);
  const out = new Uint8ClampedArray(width * height * 4);
  for (let i = 0, n = width * height; i < n; i++) {
    out[4 * i] = rgb[3 * i]!;
    out[4 * i + 1] = rgb[3 * i + 1]!;
    out[4 * i + 2] = rgb[3 * i + 2]!;
    out[4 * i + 3] = 255;
  }
  return out;
}

// ---- a minimal PNG writer ------------------------------------------------------------

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** zlib (RFC 1950) deflate of `data`, as PNG's IDAT wants it. */
async function zlibDeflate(data: Uint8Array): Promise<Uint8Array> {
  if (typeof CompressionStream === 'undefined') throw new Error('PNG output needs CompressionStream (Chrome 80+, Firefox 113+, Safari 16.4+)');
  const stream = new Blob([data as BlobPart]).stream().pipeThrough(new CompressionStream('deflate'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A PNG from already-filtered scanlines (each row: one filter byte, then pixels). */
async function encodePng(rows: Uint8Array, width: number, height: number, bitDepth: 8 | 16, colorType: 0 | 2): Promise<Uint8Array> {
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  ihdr[8] = bitDepth;
  ihdr[9] = colorType;
  // compression 0, filter 0, interlace 0
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', await zlibDeflate(rows)),
    chunk('IEND', new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
