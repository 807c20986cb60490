// A tiny reader for the .npy files test/fixtures/generate.py writes, and layout
// helpers between PyTorch's NCHW and our NHWC.
//
// Format (numpy.lib.format): magic "\x93NUMPY", major, minor, header length (u16 LE in
// v1, u32 LE in v2/v3), a Python dict literal {'descr': '<f4', 'fortran_order': False,
// 'shape': (…), } padded with spaces and a newline, then the raw data.
import { readFileSync } from 'node:fs';

export interface NpyArray {
  shape: number[];
  data: Float32Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** Parses a float32 ('<f4'), C-order .npy file; anything else is a clear error. */
export function parseNpy(bytes: Uint8Array, what = 'npy'): NpyArray {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new Error(`${what}: not a .npy file (bad magic)`);
  }
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let start: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new Error(`${what}: truncated .npy header`);
    headerLen = view.getUint32(8, true);
    start = 12;
  } else {
    throw new Error(`${what}: unsupported .npy version ${major}.${bytes[7]}`);
  }
  if (start + headerLen > bytes.length) throw new Error(`${what}: truncated .npy header`);
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(start, start + headerLen));

  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  if (descr === undefined) throw new Error(`${what}: .npy header has no descr: ${header.trim()}`);
  if (descr !== '<f4') throw new Error(`${what}: dtype '${descr}' is not supported, only '<f4' (little-endian float32)`);

  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  if (fortran === undefined) throw new Error(`${what}: .npy header has no fortran_order: ${header.trim()}`);
  if (fortran === 'True') throw new Error(`${what}: Fortran-order arrays are not supported, only C order`);

  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (shapeText === undefined) throw new Error(`${what}: .npy header has no shape: ${header.trim()}`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => {
      const n = Number(s.replace(/L$/, ''));
      if (!Number.isInteger(n) || n < 0) throw new Error(`${what}: bad dimension '${s}' in shape (${shapeText})`);
      return n;
    });

  const count = shape.reduce((a, b) => a * b, 1);
  const dataStart = start + headerLen;
  const dataBytes = bytes.length - dataStart;
  if (dataBytes !== count * 4) {
    throw new Error(`${what}: shape (${shape.join(', ')}) needs ${count * 4} data bytes, file has ${dataBytes}`);
  }
  // Copy: the data offset need not be 4-byte aligned within the file's buffer.
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = view.getFloat32(dataStart + 4 * i, true);
  return { shape, data };
}

export function readNpy(path: string): NpyArray {
  return parseNpy(readFileSync(path), path);
}

function dims4(shape: readonly number[], what: string): [number, number, number, number] {
  if (shape.length !== 4) throw new Error(`${what}: expected a 4-D shape, got [${shape.join(', ')}]`);
  return shape as unknown as [number, number, number, number];
}

/** `[N, C, H, W]` data to `[N, H, W, C]`; returns the data and the NHWC shape. */
export function nchwToNhwc(data: Float32Array, shape: readonly number[]): { data: Float32Array; shape: number[] } {
  const [n, c, h, w] = dims4(shape, 'nchwToNhwc');
  const out = new Float32Array(data.length);
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) out[((b * h + y) * w + x) * c + ch] = data[((b * c + ch) * h + y) * w + x]!;
  return { data: out, shape: [n, h, w, c] };
}

/** `[N, H, W, C]` data to `[N, C, H, W]`; returns the data and the NCHW shape. */
export function nhwcToNchw(data: Float32Array, shape: readonly number[]): { data: Float32Array; shape: number[] } {
  const [n, h, w, c] = dims4(shape, 'nhwcToNchw');
  const out = new Float32Array(data.length);
  for (let b = 0; b < n; b++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let ch = 0; ch < c; ch++) out[((b * c + ch) * h + y) * w + x] = data[((b * h + y) * w + x) * c + ch]!;
  return { data: out, shape: [n, c, h, w] };
}
