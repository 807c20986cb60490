import { Float16Array } from '@petamoriken/float16';

/**
 * IEEE half-precision bits of each value, rounded to nearest even. A finite value
 * beyond f16's range (±65504) is an error: it would silently become infinity.
 */
export function toFloat16Bits(values: Float32Array, what = 'tensor'): Uint16Array {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isFinite(v) && Math.abs(v) > 65504) {
      throw new Error(`${what}: value ${v} at index ${i} is outside float16's range (±65504)`);
    }
  }
  const half = new Float16Array(values);
  return new Uint16Array(half.buffer, half.byteOffset, half.length);
}
