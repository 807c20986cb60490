// Depth map files in memory, for a browser's downloads: the same PFM and PNG bytes
// the Node entry writes to disk (src/node/outputs.ts), without Node built-ins. PNGs
// are deflated with the platform's CompressionStream (browsers; Node 18+ too).
import { colorize, type ColorMapName, type ValueRange } from '../midas/colormap.js';
import { depthMapProblem, depthTo16, encodePfm } from '../midas/depthmap.js';

function checkMap(depth: Float32Array, width: number, height: number): void {
  const problem = depthMapProblem(depth, width, height);
  if (problem) throw new RangeError(problem);
}

export { encodePfm, depthTo16 };

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
