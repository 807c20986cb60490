// toFloat16Bits (src/nn/half.ts) rounds on the float32 bits itself; the Float16Array
// polyfill of @petamoriken/float16 (a dependency) is the reference.
import { Float16Array } from '@petamoriken/float16';
import { describe, expect, it } from 'vitest';
import { toFloat16Bits } from '../src/nn/half.js';

function polyfillBits(values: Float32Array): Uint16Array {
  const h = new Float16Array(values);
  return new Uint16Array(h.buffer, h.byteOffset, h.length);
}

/** Every finite float16 value, the float32 values within 2 ulps of it, and of the midpoint to the next (ties), plus random bit patterns. */
function cases(): Float32Array {
  const out: number[] = [];
  const halves = new Float16Array(new Uint16Array(65536).map((_, i) => i).buffer);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const around = (v: number, ulps: number) => {
    f[0] = v;
    const b = u[0]!;
    for (let d = -ulps; d <= ulps; d++) {
      u[0] = b + d;
      out.push(f[0]!);
    }
  };
  for (let h = 0; h < 65535; h++) {
    const v = halves[h]!;
    const next = halves[h + 1]!;
    if (!Number.isFinite(v)) continue;
    around(v, 2);
    if (Number.isFinite(next) && Math.sign(next) === Math.sign(v)) around((v + next) / 2, 1);
  }
  let s = 1;
  for (let i = 0; i < 1_000_000; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    u[0] = s;
    out.push(f[0]!);
  }
  // Finite values that round past 65504 are refused (see below); keep the rest.
  return Float32Array.from(out.filter((v) => !(Number.isFinite(v) && Math.abs(v) >= 65520)));
}

describe('toFloat16Bits', () => {
  it('gives the polyfill\'s bits for every float16 value, the float32 values around it and the ties between, and random bits (NaN stays NaN)', () => {
    const values = cases();
    const got = toFloat16Bits(values);
    const want = polyfillBits(values);
    let mismatches = 0;
    for (let i = 0; i < values.length; i++) {
      const nan = Number.isNaN(values[i]!) && (got[i]! & 0x7c00) === 0x7c00 && (got[i]! & 0x3ff) !== 0;
      if (got[i] !== want[i] && !nan && mismatches++ < 5) expect(got[i], `${values[i]} (index ${i})`).toBe(want[i]);
    }
    expect(mismatches).toBe(0);
    expect(values.length).toBeGreaterThan(1_000_000);
  });

  it('rounds ties to even, keeps signed zeros and infinities, flushes below 2^-25 to zero', () => {
    const bits = toFloat16Bits(Float32Array.of(1 + 2 ** -11, 1 + 3 * 2 ** -11, -0, Infinity, -Infinity, 2 ** -25, 2 ** -25 * 1.5, 2 ** -26, 65519.99));
    expect([...bits]).toEqual([0x3c00, 0x3c02, 0x8000, 0x7c00, 0xfc00, 0x0000, 0x0001, 0x0000, 0x7bff]);
  });

  it('refuses a finite value that would round to infinity, naming it and its index; writes into `out` when given', () => {
    expect(() => toFloat16Bits(Float32Array.of(1, 65520), 'conv.weight')).toThrow(/^conv\.weight: value 65520 at index 1 is outside float16's range/);
    const out = new Uint16Array(8);
    const bits = toFloat16Bits(Float32Array.of(1, 2), 'x', out);
    expect(bits.buffer).toBe(out.buffer);
    expect([...out.subarray(0, 3)]).toEqual([0x3c00, 0x4000, 0]);
  });
});
