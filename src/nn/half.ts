/**
 * IEEE half-precision bits of each value, rounded to nearest even, into `out` if given
 * (at least as long), else a new array. A finite value beyond f16's range (±65504) is
 * an error: it would silently become infinity. Computed on the float32 bits, not
 * through a Float16Array polyfill: that took ~50 ns a value (5 s for MiDaS v2's
 * weights at load time), this ~2.
 */
export function toFloat16Bits(values: Float32Array, what = 'tensor', out?: Uint16Array): Uint16Array {
  const n = values.length;
  const bits = out ? out.subarray(0, n) : new Uint16Array(n);
  const u = new Uint32Array(values.buffer, values.byteOffset, n);
  for (let i = 0; i < n; i++) {
    const x = u[i]!;
    const sign = (x >>> 16) & 0x8000;
    const e = (x >>> 23) & 0xff;
    const m = x & 0x7fffff;
    if (e === 0xff) {
      // Infinity stays infinity; NaN stays NaN (quiet, its top payload bits kept).
      bits[i] = sign | 0x7c00 | (m ? 0x200 | (m >>> 13) : 0);
    } else if (e > 142 || (e === 142 && m > 0x7fefff)) {
      // Beyond 65504 + half an ulp (65520): infinity in f16.
      throw new Error(`${what}: value ${values[i]} at index ${i} is outside float16's range (±65504)`);
    } else if (e >= 113) {
      // Normal in f16 (exponent -14..15): drop 13 mantissa bits, ties to even; a carry
      // out of the mantissa correctly bumps the exponent.
      const h = ((e - 112) << 10) | (m >>> 13);
      const rest = m & 0x1fff;
      bits[i] = sign | (h + (rest > 0x1000 || (rest === 0x1000 && h & 1) ? 1 : 0));
    } else if (e >= 102) {
      // Subnormal in f16 (or rounds up to the smallest normal): the full significand
      // shifted to units of 2^-24, ties to even.
      const s = 0x800000 | m;
      const shift = 126 - e;
      const h = s >>> shift;
      const rest = s & ((1 << shift) - 1);
      const halfway = 1 << (shift - 1);
      bits[i] = sign | (h + (rest > halfway || (rest === halfway && h & 1) ? 1 : 0));
    } else {
      // Below half the smallest subnormal (2^-25): zero.
      bits[i] = sign;
    }
  }
  return bits;
}
