// Plain CPU references for every kernel, written straight from PyTorch's and
// OpenCV's definitions in float64. They share no code with src/kernels.
// Activations are NHWC; conv weights are PyTorch's [Cout, Cin/groups, kH, kW].

export interface Conv2dRef {
  n: number; h: number; w: number; cin: number; cout: number;
  kh: number; kw: number; stride: number;
  /** Every side, or [top, left, bottom, right]: F.pad(x, (left, right, top, bottom)) then an unpadded conv. */
  pad: number | readonly [number, number, number, number];
  groups: number;
  bias?: Float32Array; residual?: Float32Array;
  reluInput?: boolean; reluResidual?: boolean; relu?: boolean;
  /** min(max(v, 0), 6) on the result. */
  relu6?: boolean;
}

export function conv2dRef(x: Float32Array, weight: Float32Array, c: Conv2dRef): Float32Array {
  const [pt, pl, pb, pr] = typeof c.pad === 'number' ? [c.pad, c.pad, c.pad, c.pad] : c.pad;
  const oh = Math.floor((c.h + pt + pb - c.kh) / c.stride) + 1;
  const ow = Math.floor((c.w + pl + pr - c.kw) / c.stride) + 1;
  const cinG = c.cin / c.groups;
  const coutG = c.cout / c.groups;
  const y = new Float32Array(c.n * oh * ow * c.cout);
  const rl = (v: number, on?: boolean) => (on ? Math.max(v, 0) : v);
  for (let n = 0; n < c.n; n++)
    for (let oy = 0; oy < oh; oy++)
      for (let ox = 0; ox < ow; ox++)
        for (let co = 0; co < c.cout; co++) {
          const g = Math.floor(co / coutG);
          let acc = 0;
          for (let ky = 0; ky < c.kh; ky++) {
            const iy = oy * c.stride + ky - pt;
            if (iy < 0 || iy >= c.h) continue;
            for (let kx = 0; kx < c.kw; kx++) {
              const ix = ox * c.stride + kx - pl;
              if (ix < 0 || ix >= c.w) continue;
              for (let ci = 0; ci < cinG; ci++) {
                const xv = rl(x[((n * c.h + iy) * c.w + ix) * c.cin + g * cinG + ci]!, c.reluInput);
                acc += xv * weight[((co * cinG + ci) * c.kh + ky) * c.kw + kx]!;
              }
            }
          }
          const i = ((n * oh + oy) * ow + ox) * c.cout + co;
          if (c.bias) acc += c.bias[co]!;
          if (c.residual) acc += rl(c.residual[i]!, c.reluResidual);
          y[i] = c.relu6 ? Math.min(Math.max(acc, 0), 6) : rl(acc, c.relu);
        }
  return y;
}

export function batchnormRef(
  x: Float32Array, c: number,
  bn: { weight: Float32Array; bias: Float32Array; runningMean: Float32Array; runningVar: Float32Array },
  eps = 1e-5,
): Float32Array {
  return x.map((v, i) => {
    const k = i % c;
    return ((v - bn.runningMean[k]!) / Math.sqrt(bn.runningVar[k]! + eps)) * bn.weight[k]! + bn.bias[k]!;
  });
}

export function maxpoolRef(x: Float32Array, n: number, h: number, w: number, c: number, k = 3, s = 2, p = 1): Float32Array {
  const oh = Math.floor((h + 2 * p - k) / s) + 1;
  const ow = Math.floor((w + 2 * p - k) / s) + 1;
  const y = new Float32Array(n * oh * ow * c);
  for (let b = 0; b < n; b++)
    for (let oy = 0; oy < oh; oy++)
      for (let ox = 0; ox < ow; ox++)
        for (let ch = 0; ch < c; ch++) {
          let m = -Infinity;
          for (let ky = 0; ky < k; ky++)
            for (let kx = 0; kx < k; kx++) {
              const iy = oy * s + ky - p;
              const ix = ox * s + kx - p;
              if (iy >= 0 && iy < h && ix >= 0 && ix < w) m = Math.max(m, x[((b * h + iy) * w + ix) * c + ch]!);
            }
          y[((b * oh + oy) * ow + ox) * c + ch] = m;
        }
  return y;
}

type Axis = (d: number) => { idx: number[]; wt: number[] };

/** PyTorch bilinear along one axis (upsample_bilinear2d). */
export function bilinearAxis(inSize: number, outSize: number, alignCorners: boolean): Axis {
  return (d) => {
    let src: number;
    if (alignCorners) src = outSize > 1 ? (d * (inSize - 1)) / (outSize - 1) : 0;
    else src = Math.max(((d + 0.5) * inSize) / outSize - 0.5, 0);
    const i0 = Math.floor(src);
    const i1 = Math.min(i0 + 1, inSize - 1);
    const l = src - i0;
    return { idx: [i0, i1], wt: [1 - l, l] };
  };
}

/** Keys' cubic kernel with a = -0.75 (PyTorch and OpenCV both). */
export function keys(t: number, a = -0.75): number {
  const x = Math.abs(t);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

/** PyTorch bicubic (align_corners False/True) and OpenCV INTER_CUBIC share this form; only the source coordinate differs. */
export function cubicAxis(inSize: number, outSize: number, alignCorners: boolean): Axis {
  return (d) => {
    const src = alignCorners ? (outSize > 1 ? (d * (inSize - 1)) / (outSize - 1) : 0) : ((d + 0.5) * inSize) / outSize - 0.5;
    const i0 = Math.floor(src);
    const t = src - i0;
    const idx: number[] = [];
    const wt: number[] = [];
    for (let k = -1; k <= 2; k++) {
      idx.push(Math.min(Math.max(i0 + k, 0), inSize - 1));
      wt.push(keys(t - k));
    }
    return { idx, wt };
  };
}

export function resizeRef(x: Float32Array, n: number, h: number, w: number, c: number, oh: number, ow: number, ay: Axis, ax: Axis): Float32Array {
  const y = new Float32Array(n * oh * ow * c);
  for (let b = 0; b < n; b++)
    for (let oy = 0; oy < oh; oy++) {
      const ty = ay(oy);
      for (let ox = 0; ox < ow; ox++) {
        const tx = ax(ox);
        for (let ch = 0; ch < c; ch++) {
          let acc = 0;
          for (let i = 0; i < ty.idx.length; i++)
            for (let j = 0; j < tx.idx.length; j++)
              acc += ty.wt[i]! * tx.wt[j]! * x[((b * h + ty.idx[i]!) * w + tx.idx[j]!) * c + ch]!;
          y[((b * oh + oy) * ow + ox) * c + ch] = acc;
        }
      }
    }
  return y;
}

/** Deterministic pseudo-random values in [-1, 1) (mulberry32). */
export function random(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1);
  }
  return out;
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/**
 * TensorFlow's "SAME" padding as [top, left, bottom, right], from its definition: the
 * output has ceil(in / stride) pixels per axis, and the pad that needs is split with
 * the smaller half first.
 */
export function tfSamePads(h: number, w: number, k: number, stride: number): [number, number, number, number] {
  const axis = (size: number) => {
    const out = Math.ceil(size / stride);
    const total = Math.max((out - 1) * stride + k - size, 0);
    return [Math.floor(total / 2), total - Math.floor(total / 2)] as const;
  };
  const [top, bottom] = axis(h);
  const [left, right] = axis(w);
  return [top, left, bottom, right];
}
