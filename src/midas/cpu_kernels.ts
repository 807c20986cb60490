// Small CPU references for the kernels `selfCheck` runs, in float64, written from the
// operations' definitions (PyTorch's conv, max pool, add; the hub's normalization),
// with each output's error bound. Activations are NHWC; conv weights PyTorch's
// [Cout, Cin/groups, kH, kW]. The test suite has its own references (test/reference.ts,
// which checks the kernels against PyTorch and OpenCV too); these serve the library's
// self-check, which cannot depend on test files.

/** float32's unit roundoff, 2^-24. */
export const F32_EPS = 2 ** -24;
/** float16's unit roundoff, 2^-11. */
export const F16_EPS = 2 ** -11;

/**
 * Reference values at some outputs, with a tolerance for each: `index` lists the
 * outputs computed (all of them when null), `value` and `tol` follow it.
 */
export interface Reference {
  index: Int32Array | null;
  value: Float64Array;
  tol: Float64Array;
}

/** The outcome of comparing a GPU result with a reference: the output whose error is largest against its tolerance. */
export interface Comparison {
  ok: boolean;
  /** |gpu - reference| there (Infinity for a NaN or a missing value). */
  error: number;
  tolerance: number;
  /** Outputs compared. */
  compared: number;
}

export function compare(gpu: Float32Array, ref: Reference, outputs: number): Comparison {
  if (gpu.length !== outputs) return { ok: false, error: Infinity, tolerance: 0, compared: 0 };
  let worst = -1;
  let error = 0;
  let tolerance = 0;
  const n = ref.value.length;
  for (let k = 0; k < n; k++) {
    const i = ref.index ? ref.index[k]! : k;
    const d = Math.abs(gpu[i]! - ref.value[k]!);
    const e = Number.isNaN(d) ? Infinity : d;
    const t = ref.tol[k]!;
    // The ratio decides; an exact kernel (t = 0) fails on any difference.
    const ratio = e === 0 ? 0 : t === 0 ? Infinity : e / t;
    if (ratio > worst) [worst, error, tolerance] = [ratio, e, t];
  }
  return { ok: worst <= 1, error, tolerance, compared: n };
}

/**
 * Which outputs to compute when computing them all would take more than `budget`
 * multiply-adds of `perOutput` each: a strided pattern over pixels and channels, so
 * every part of the tile layout is still sampled. Null: all of them.
 */
export function sampleOutputs(pixels: number, channels: number, perOutput: number, budget = 4e7): Int32Array | null {
  const stride = Math.ceil((pixels * channels * perOutput) / budget);
  if (stride <= 1) return null;
  const out: number[] = [];
  for (let p = 0; p < pixels; p++) for (let c = (stride - (p % stride)) % stride; c < channels; c += stride) out.push(p * channels + c);
  return Int32Array.from(out);
}

export interface ConvReferenceSpec {
  n: number; h: number; w: number; cin: number; cout: number;
  kh: number; kw: number; sh: number; sw: number;
  /** [top, left, bottom, right] zeros around the input. */
  pad: readonly [number, number, number, number];
  groups: number;
  bias?: Float32Array;
  residual?: Float32Array;
  reluInput?: boolean; reluResidual?: boolean; relu?: boolean; relu6?: boolean;
  /** The products are rounded to f16 (the kernels' f16 arithmetic): a looser tolerance. */
  f16Products?: boolean;
}

export function convOutputSize(c: Pick<ConvReferenceSpec, 'h' | 'w' | 'kh' | 'kw' | 'sh' | 'sw' | 'pad'>): [number, number] {
  const [pt, pl, pb, pr] = c.pad;
  return [Math.floor((c.h + pt + pb - c.kh) / c.sh) + 1, Math.floor((c.w + pl + pr - c.kw) / c.sw) + 1];
}

/**
 * conv2d as PyTorch defines it (zero padding, groups), then bias, residual, ReLU or
 * ReLU6. The tolerance of an output is `u (2 sqrt(K) + 8) S`, S the sum of the absolute
 * values of its K products and other terms: summed in float32 in any order, the error
 * of K terms grows like sqrt(K) (Higham's probabilistic bound), far below the worst
 * case K u S, and a term read wrongly or missed (about S / K) is still far over it up
 * to K ~ 40000 (MiDaS's largest is 18432). Products rounded to f16 add 2 u16 S.
 */
export function convReference(x: Float32Array, weight: Float32Array, c: ConvReferenceSpec, index: Int32Array | null): Reference {
  const [oh, ow] = convOutputSize(c);
  const [pt, pl] = c.pad;
  const cinG = c.cin / c.groups;
  const coutG = c.cout / c.groups;
  const terms = cinG * c.kh * c.kw + (c.bias ? 1 : 0) + (c.residual ? 1 : 0);
  const rel = F32_EPS * (2 * Math.sqrt(terms) + 8) + (c.f16Products ? 2 * F16_EPS : 0);
  const count = index ? index.length : c.n * oh * ow * c.cout;
  const value = new Float64Array(count);
  const tol = new Float64Array(count);
  const relu = (v: number, on?: boolean) => (on ? Math.max(v, 0) : v);
  for (let k = 0; k < count; k++) {
    const i = index ? index[k]! : k;
    const co = i % c.cout;
    const ox = Math.floor(i / c.cout) % ow;
    const oy = Math.floor(i / (c.cout * ow)) % oh;
    const n = Math.floor(i / (c.cout * ow * oh));
    const g = Math.floor(co / coutG);
    let acc = 0;
    let mag = 0;
    for (let ky = 0; ky < c.kh; ky++) {
      const iy = oy * c.sh + ky - pt;
      if (iy < 0 || iy >= c.h) continue;
      for (let kx = 0; kx < c.kw; kx++) {
        const ix = ox * c.sw + kx - pl;
        if (ix < 0 || ix >= c.w) continue;
        const xrow = ((n * c.h + iy) * c.w + ix) * c.cin + g * cinG;
        for (let ci = 0; ci < cinG; ci++) {
          const t = relu(x[xrow + ci]!, c.reluInput) * weight[((co * cinG + ci) * c.kh + ky) * c.kw + kx]!;
          acc += t;
          mag += Math.abs(t);
        }
      }
    }
    if (c.bias) {
      acc += c.bias[co]!;
      mag += Math.abs(c.bias[co]!);
    }
    if (c.residual) {
      const r = relu(c.residual[i]!, c.reluResidual);
      acc += r;
      mag += Math.abs(r);
    }
    value[k] = c.relu6 ? Math.min(Math.max(acc, 0), 6) : relu(acc, c.relu);
    tol[k] = rel * mag;
  }
  return { index, value, tol };
}

/** MaxPool2d: padding never wins the max. Exact (tolerance 0). */
export function maxpoolReference(
  x: Float32Array, n: number, h: number, w: number, c: number,
  k: readonly [number, number], s: readonly [number, number], p: readonly [number, number],
): Reference {
  const oh = Math.floor((h + 2 * p[0] - k[0]) / s[0]) + 1;
  const ow = Math.floor((w + 2 * p[1] - k[1]) / s[1]) + 1;
  const value = new Float64Array(n * oh * ow * c);
  for (let b = 0; b < n; b++)
    for (let oy = 0; oy < oh; oy++)
      for (let ox = 0; ox < ow; ox++)
        for (let ch = 0; ch < c; ch++) {
          let m = -Infinity;
          for (let ky = 0; ky < k[0]; ky++)
            for (let kx = 0; kx < k[1]; kx++) {
              const iy = oy * s[0] + ky - p[0];
              const ix = ox * s[1] + kx - p[1];
              if (iy >= 0 && iy < h && ix >= 0 && ix < w) m = Math.max(m, x[((b * h + iy) * w + ix) * c + ch]!);
            }
          value[((b * oh + oy) * ow + ox) * c + ch] = m;
        }
  return { index: null, value, tol: new Float64Array(value.length) };
}

/** Source rows or columns and their weights, `taps` per output (as resizeTaps gives them). */
export interface AxisTaps {
  taps: number;
  index: Int32Array;
  weight: Float32Array;
}

/**
 * A separable resize with given taps: out = sum_a wy[a] sum_b wx[b] x[iy[a], ix[b]].
 * The taps themselves come from the CPU (resizeTaps, tested against PyTorch and OpenCV
 * in the test suite); what differs between adapters is the GPU applying them.
 */
export function resizeReference(x: Float32Array, n: number, h: number, w: number, c: number, ty: AxisTaps, tx: AxisTaps): Reference {
  const oh = ty.index.length / ty.taps;
  const ow = tx.index.length / tx.taps;
  const value = new Float64Array(n * oh * ow * c);
  const tol = new Float64Array(value.length);
  const rel = F32_EPS * (2 * (ty.taps + tx.taps) + 4);
  for (let b = 0; b < n; b++)
    for (let oy = 0; oy < oh; oy++)
      for (let ox = 0; ox < ow; ox++)
        for (let ch = 0; ch < c; ch++) {
          let acc = 0;
          let mag = 0;
          for (let a = 0; a < ty.taps; a++) {
            const row = (b * h + ty.index[oy * ty.taps + a]!) * w;
            for (let q = 0; q < tx.taps; q++) {
              const t = ty.weight[oy * ty.taps + a]! * tx.weight[ox * tx.taps + q]! * x[(row + tx.index[ox * tx.taps + q]!) * c + ch]!;
              acc += t;
              mag += Math.abs(t);
            }
          }
          const i = ((b * oh + oy) * ow + ox) * c + ch;
          value[i] = acc;
          tol[i] = rel * mag;
        }
  return { index: null, value, tol };
}

/** a + b, then ReLU if asked. One f32 rounding: tolerance 2u(|a| + |b|). */
export function addReference(a: Float32Array, b: Float32Array, relu: boolean): Reference {
  const value = new Float64Array(a.length);
  const tol = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) {
    const s = a[i]! + b[i]!;
    value[i] = relu ? Math.max(s, 0) : s;
    tol[i] = 2 * F32_EPS * (Math.abs(a[i]!) + Math.abs(b[i]!));
  }
  return { index: null, value, tol };
}

/** ReLU, or ReLU6 (min(max(x, 0), 6)). Exact. */
export function clampReference(x: Float32Array, six: boolean): Reference {
  const value = Float64Array.from(x, (v) => (six ? Math.min(Math.max(v, 0), 6) : Math.max(v, 0)));
  return { index: null, value, tol: new Float64Array(x.length) };
}

/** (x * scale - mean[c]) / std[c] per channel: three f32 roundings, tolerance 8u of the terms. */
export function normalizeReference(x: Float32Array, mean: readonly number[], std: readonly number[], scale: number): Reference {
  const c = mean.length;
  const value = new Float64Array(x.length);
  const tol = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const k = i % c;
    value[i] = (x[i]! * scale - mean[k]!) / std[k]!;
    tol[i] = (8 * F32_EPS * (Math.abs(x[i]! * scale) + Math.abs(mean[k]!))) / Math.abs(std[k]!);
  }
  return { index: null, value, tol };
}

/** Deterministic pseudo-random values in [lo, hi) (mulberry32). */
export function randomValues(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = lo + (((t ^ (t >>> 14)) >>> 0) / 4294967296) * (hi - lo);
  }
  return out;
}
