// Depth maps to colour pictures. Browser-safe: no Node imports.
import { INFERNO_HEX, TURBO_HEX } from './colormap_tables.js';

export type ColorMapName = 'inferno' | 'turbo';
export const COLOR_MAPS: readonly ColorMapName[] = ['inferno', 'turbo'];

const tables = new Map<ColorMapName, Uint8Array>();

/** A map's 256 RGB entries (matplotlib's data, 8-bit). */
export function colorMapTable(name: ColorMapName): Uint8Array {
  let t = tables.get(name);
  if (!t) {
    const hex = name === 'inferno' ? INFERNO_HEX : name === 'turbo' ? TURBO_HEX : undefined;
    if (hex === undefined) throw new RangeError(`unknown colour map '${String(name)}' (have: ${COLOR_MAPS.join(', ')})`);
    t = new Uint8Array(256 * 3);
    for (let i = 0; i < t.length; i++) t[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
    tables.set(name, t);
  }
  return t;
}

/** The smallest and largest finite values (both 0 when there are none). */
export function finiteRange(values: Float32Array): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v - v !== 0) continue; // NaN or +-Infinity
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return min <= max ? { min, max } : { min: 0, max: 0 };
}

/** The value range a picture maps to its ends; default: the map's own finite min..max. */
export interface ValueRange {
  min: number;
  max: number;
}

/**
 * 8-bit RGB pixels for a depth map: values scaled min..max to 0..1 (over the finite
 * values, or `range`), then matplotlib's lookup, entry floor(v * 256) clipped to 255.
 * An all-equal map, and NaN, get entry 0; values outside the range clip to the ends.
 */
export function colorize(depth: Float32Array, map: ColorMapName = 'inferno', range: ValueRange = finiteRange(depth)): Uint8Array {
  const table = colorMapTable(map);
  const { min, max } = range;
  const span = max - min;
  const out = new Uint8Array(depth.length * 3);
  for (let i = 0; i < depth.length; i++) {
    const v = depth[i]!;
    let k = 0;
    if (span > 0 && !Number.isNaN(v)) k = Math.min(255, Math.max(0, Math.floor(((v - min) / span) * 256)));
    out[3 * i] = table[3 * k]!;
    out[3 * i + 1] = table[3 * k + 1]!;
    out[3 * i + 2] = table[3 * k + 2]!;
  }
  return out;
}
