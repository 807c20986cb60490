// Alignment of a MiDaS prediction (relative inverse depth: disparity up to an unknown
// scale and shift) to known depths, as the MiDaS authors recommend (isl-org/MiDaS
// issues #37, #42, #119; their compute_scale_and_shift and BadPixelMetric):
//
//   1. valid pixels: the mask is set (non-zero and not NaN), the target is finite and
//      > 0, and the prediction is finite;
//   2. target disparity d = 1 / D for a depth target D (a disparity target is used
//      as it is);
//   3. scale s and shift t minimise  sum over valid pixels of (s * p + t - d)^2,
//      solved in closed form in float64;
//   4. aligned disparity a = s * p + t on every pixel, raised to 1 / maxDepth where
//      it is below that (so a <= 0, the far side of a negative shift, becomes
//      maxDepth, as the authors' `disparity_cap` does), and depth = 1 / a;
//   5. AbsRel and δ<1.25 over the valid pixels, in depth space.
//
// Browser-safe: no Node imports.

/** A target depth (or disparity) map, or a prediction: one value a pixel, row-major. */
export type FloatMap = Float32Array | Float64Array;

export type TargetKind = 'depth' | 'disparity';

/** With no `maxDepth`, aligned depths are capped at this many times the largest valid target depth. */
export const DEFAULT_MAX_DEPTH_FACTOR = 10;

/** The δ threshold: a pixel is within it when max(pred / target, target / pred) < 1.25. */
export const DELTA_THRESHOLD = 1.25;

export interface AlignOptions {
  /**
   * Which pixels may be used: non-zero (and not NaN) = valid, same length as the
   * prediction. Default: every pixel. The target must also be finite and > 0 there,
   * and the prediction finite.
   */
  mask?: Uint8Array | Float32Array | Float64Array;
  /**
   * 'depth' (default): the target is depth D, fitted as 1 / D.
   * 'disparity': the target is inverse depth already, fitted as it is; its depth,
   * for the metrics and the default maxDepth, is 1 / target.
   */
  targetKind?: TargetKind;
  /**
   * The largest depth the output holds: aligned disparities below 1 / maxDepth
   * (including zero and negative ones) are raised to it. Default:
   * DEFAULT_MAX_DEPTH_FACTOR (10) times the largest valid target depth.
   */
  maxDepth?: number;
}

export interface AlignResult {
  /** Metric depth on every pixel (NaN where the prediction is not finite), at most maxDepth. */
  depth: Float32Array;
  /** s in a = s * p + t. */
  scale: number;
  /** t in a = s * p + t. */
  shift: number;
  /** Pixels the fit and the metrics used. */
  validCount: number;
  /** mean over valid pixels of |depth - D| / D (computed in float64, before rounding to float32). */
  absRel: number;
  /** Fraction of valid pixels with max(depth / D, D / depth) < 1.25. */
  delta1: number;
  /** The cap that was applied (the option, or the default). */
  maxDepth: number;
  /** Pixels (anywhere in the map) whose aligned disparity was below 1 / maxDepth. */
  clampedCount: number;
}

export type AlignErrorCode = 'size' | 'option' | 'too-few-points' | 'constant-prediction' | 'not-finite';

/** Inputs that cannot be aligned: mismatched sizes, bad options, or a degenerate fit. */
export class AlignError extends Error {
  override name = 'AlignError';
  constructor(
    readonly code: AlignErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/**
 * Fits scale and shift of `prediction` (relative inverse depth) to `target` by least
 * squares in inverse-depth space and returns metric depth with AbsRel and δ<1.25.
 * Throws AlignError for mismatched lengths, a bad maxDepth, fewer than 2 valid
 * pixels, or a prediction that is constant on the valid pixels (a singular system).
 */
export function alignToDepth(prediction: FloatMap, target: FloatMap, opts: AlignOptions = {}): AlignResult {
  const n = prediction.length;
  const { mask } = opts;
  const kind = opts.targetKind ?? 'depth';
  if (kind !== 'depth' && kind !== 'disparity') {
    throw new AlignError('option', `targetKind must be 'depth' or 'disparity', not '${String(kind)}'`);
  }
  if (target.length !== n) {
    throw new AlignError('size', `the prediction has ${n} values but the target has ${target.length}`);
  }
  if (mask && mask.length !== n) {
    throw new AlignError('size', `the prediction has ${n} values but the mask has ${mask.length}`);
  }
  if (opts.maxDepth !== undefined && !(Number.isFinite(opts.maxDepth) && opts.maxDepth > 0)) {
    throw new AlignError('option', `maxDepth must be a finite number > 0, not ${opts.maxDepth}`);
  }
  const disparity = kind === 'disparity';

  // Pass 1: which pixels are valid, and the prediction's range on them.
  const valid = new Uint8Array(n);
  let count = 0;
  let maskedOut = 0;
  let badTarget = 0;
  let badPrediction = 0;
  let minP = Infinity;
  let maxP = -Infinity;
  let maxTargetDepth = 0;
  for (let i = 0; i < n; i++) {
    if (mask) {
      const m = mask[i]!;
      if (m === 0 || Number.isNaN(m)) {
        maskedOut++;
        continue;
      }
    }
    const v = target[i]!;
    if (!(v > 0 && v < Infinity)) {
      badTarget++;
      continue;
    }
    const p = prediction[i]!;
    if (!Number.isFinite(p)) {
      badPrediction++;
      continue;
    }
    valid[i] = 1;
    count++;
    const depth = disparity ? 1 / v : v;
    if (depth > maxTargetDepth) maxTargetDepth = depth;
    if (p < minP) minP = p;
    if (p > maxP) maxP = p;
  }

  if (count < 2) {
    const why = [
      mask ? `${maskedOut} masked out` : '',
      `${badTarget} with a target that is not finite and > 0`,
      badPrediction ? `${badPrediction} with a non-finite prediction` : '',
    ].filter(Boolean);
    throw new AlignError(
      'too-few-points',
      `only ${plural(count, 'valid pixel')} of ${n}; fitting scale and shift needs at least 2 ` +
        `(${why.join(', ')})`,
    );
  }
  if (minP === maxP) {
    throw new AlignError(
      'constant-prediction',
      `the prediction is constant (${minP}) on all ${count} valid pixels, so scale and shift ` +
        'cannot both be fitted (the least-squares system is singular)',
    );
  }

  const { scale, shift } = fitScaleShift(prediction, target, valid, disparity ? 'as-is' : 'inverse');
  if (!Number.isFinite(scale) || !Number.isFinite(shift)) {
    throw new AlignError(
      'not-finite',
      `the fit is not finite (scale ${scale}, shift ${shift}): the prediction's values on the ` +
        `${count} valid pixels are too large or too close together`,
    );
  }

  const maxDepth = opts.maxDepth ?? DEFAULT_MAX_DEPTH_FACTOR * maxTargetDepth;
  const minDisparity = 1 / maxDepth;
  const depth = new Float32Array(n);
  let clampedCount = 0;
  let relSum = 0;
  let within = 0;
  for (let i = 0; i < n; i++) {
    let a = scale * prediction[i]! + shift;
    if (a < minDisparity) {
      a = minDisparity;
      clampedCount++;
    }
    const z = 1 / a;
    depth[i] = z;
    if (!valid[i]) continue;
    const v = target[i]!;
    const gt = disparity ? 1 / v : v;
    relSum += Math.abs(z - gt) / gt;
    if (Math.max(z / gt, gt / z) < DELTA_THRESHOLD) within++;
  }

  return { depth, scale, shift, validCount: count, absRel: relSum / count, delta1: within / count, maxDepth, clampedCount };
}

/** The least-squares scale and shift of `fitScaleShift`, with how well they fit. */
export interface ScaleShift {
  /** s in s * p + t. NaN when the prediction is constant on the pixels used (or there are fewer than 2). */
  scale: number;
  /** t in s * p + t. */
  shift: number;
  /** Pixels used. */
  count: number;
  /**
   * The correlation of prediction and target on those pixels (-1..1; NaN when either is
   * constant there): how much of the target an affine map of the prediction explains.
   */
  correlation: number;
}

/**
 * The scale s and shift t that minimise the sum of (s * p + t - d)^2 over the pixels
 * where `valid` is set (every pixel without it), in float64: d is the target as it is,
 * or 1 / target with 'inverse'. The caller checks validity (finite values; a target
 * > 0 for 'inverse'). alignToDepth fits with it; so does the temporal normalizer
 * (src/midas/temporal.ts), which aligns each video frame to a running reference.
 */
export function fitScaleShift(
  prediction: FloatMap,
  target: FloatMap,
  valid?: Uint8Array,
  targetAs: 'as-is' | 'inverse' = 'as-is',
): ScaleShift {
  const n = prediction.length;
  const inverse = targetAs === 'inverse';
  // Neumaier-compensated sums: the means are then good to about 1 ulp, which the
  // shift (a difference of two such means) needs.
  let count = 0;
  let sumP = 0;
  let sumD = 0;
  let compP = 0;
  let compD = 0;
  for (let i = 0; i < n; i++) {
    if (valid && !valid[i]) continue;
    count++;
    const p = prediction[i]!;
    const d = inverse ? 1 / target[i]! : target[i]!;
    const np = sumP + p;
    compP += Math.abs(sumP) >= Math.abs(p) ? sumP - np + p : p - np + sumP;
    sumP = np;
    const nd = sumD + d;
    compD += Math.abs(sumD) >= Math.abs(d) ? sumD - nd + d : d - nd + sumD;
    sumD = nd;
  }
  if (count < 2) return { scale: NaN, shift: NaN, count, correlation: NaN };

  // Pass 2: centred sums (the normal equations with the means taken out, which keeps
  // a large offset in the prediction from cancelling digits), with the usual
  // correction for the rounding of the means.
  const meanP = (sumP + compP) / count;
  const meanD = (sumD + compD) / count;
  let sdp = 0;
  let sdd = 0;
  let spp = 0;
  let spd = 0;
  let sqd = 0;
  for (let i = 0; i < n; i++) {
    if (valid && !valid[i]) continue;
    const dp = prediction[i]! - meanP;
    const dd = (inverse ? 1 / target[i]! : target[i]!) - meanD;
    sdp += dp;
    sdd += dd;
    spp += dp * dp;
    spd += dp * dd;
    sqd += dd * dd;
  }
  spp -= (sdp * sdp) / count;
  spd -= (sdp * sdd) / count;
  sqd -= (sdd * sdd) / count;
  if (!(spp > 0)) return { scale: NaN, shift: NaN, count, correlation: NaN };
  const scale = spd / spp;
  const shift = meanD + sdd / count - scale * (meanP + sdp / count);
  return { scale, shift, count, correlation: sqd > 0 ? spd / Math.sqrt(spp * sqd) : NaN };
}
