// Depth map encodings shared by the Node writers (src/node/outputs.ts) and the
// browser's in-memory ones (src/browser/outputs.ts). Browser-safe.
import { finiteRange, type ValueRange } from './colormap.js';

/** Why `depth` is not a `width x height` map, or null when it is. */
export function depthMapProblem(depth: Float32Array, width: number, height: number): string | null {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) return `bad size ${width}x${height}`;
  if (depth.length !== width * height) return `a ${width}x${height} map needs ${width * height} values, got ${depth.length}`;
  return null;
}

/**
 * A single-channel PFM exactly as MiDaS's utils.write_pfm: header
 * `Pf\n{w} {h}\n-1.000000\n` (negative scale: little-endian), then float32 rows from
 * the bottom row up. `depth` is row-major, top row first.
 */
export function encodePfm(depth: Float32Array, width: number, height: number): Uint8Array {
  const problem = depthMapProblem(depth, width, height);
  if (problem) throw new RangeError(problem);
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
 * The 16-bit values MiDaS's write_depth(bits=2) stores: (d - min) / (max - min) * 65535
 * over the finite values (or `range`), here rounded to nearest (the original
 * truncates with astype("uint16")); an all-equal map gives zeros, NaN gives 0.
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
