// Steady pictures for a sequence of depth maps (the frames of a video). MiDaS gives
// each frame its own unknown scale and shift, so scaling each frame by its own min..max
// makes a still scene flicker. Here every frame is fitted to a running reference by
// least-squares scale and shift (fitScaleShift, as `midas align` fits known depths),
// and shown against a range that moves as slowly as the reference does.
//
// Reference units are arbitrary: the first frame's own values, or (resuming a run)
// the 0..1 scale of the last picture written. Every step is equivariant under an
// affine change of those units, so seeding from a picture continues the same run up
// to the picture's 16-bit rounding and clipping.
//
// Browser-safe: no Node imports.
import { fitScaleShift } from './align.js';
import { finiteRange, type ValueRange } from './colormap.js';

export interface TemporalOptions {
  /**
   * How much of each new frame enters the reference and the range (0..1]: the
   * reference is an exponential moving average of the aligned frames. Smaller is
   * steadier and slower to follow a changing scene. Default 0.1 (about 10 frames).
   */
  follow?: number;
  /**
   * Below this correlation between a frame and the reference the scene is taken to
   * have cut: the reference restarts from that frame, scaled into the current range.
   * Default 0.5.
   */
  minCorrelation?: number;
}

export interface TemporalFrame {
  /** The frame in reference units: scale * depth + shift (NaN where depth is not finite). */
  aligned: Float32Array;
  /** What to map to the ends of the colour map or of a 16-bit picture. */
  range: ValueRange;
  scale: number;
  shift: number;
  /** True when the reference (re)started at this frame: the first, a cut, or a new size. */
  restarted: boolean;
}

export class TemporalNormalizer {
  private readonly follow: number;
  private readonly minCorrelation: number;
  private ref: Float32Array | null = null;
  private range: ValueRange = { min: 0, max: 0 };

  constructor(options: TemporalOptions = {}) {
    this.follow = options.follow ?? 0.1;
    this.minCorrelation = options.minCorrelation ?? 0.5;
    if (!(this.follow > 0 && this.follow <= 1)) throw new RangeError(`follow must be in (0, 1] (got ${options.follow})`);
  }

  /**
   * Continues from a picture of the last frame written (values 0..1, e.g. a 16-bit
   * PNG / 65535), which is the reference in units where the range is 0..1.
   */
  seed(picture: Float32Array): void {
    this.ref = Float32Array.from(picture);
    this.range = { min: 0, max: 1 };
  }

  next(depth: Float32Array): TemporalFrame {
    const ref = this.ref;
    if (!ref || ref.length !== depth.length) return this.restart(depth);
    const valid = new Uint8Array(depth.length);
    for (let i = 0; i < depth.length; i++) valid[i] = Number.isFinite(depth[i]!) && Number.isFinite(ref[i]!) ? 1 : 0;
    const fit = fitScaleShift(depth, ref, valid);
    // A negative scale would turn near into far; a poor fit is a new scene.
    if (!(fit.scale > 0) || !Number.isFinite(fit.shift) || !(fit.correlation >= this.minCorrelation)) return this.restart(depth);
    const aligned = affine(depth, fit.scale, fit.shift);
    const a = this.follow;
    for (let i = 0; i < ref.length; i++) {
      const v = aligned[i]!;
      if (Number.isFinite(v)) ref[i] = ref[i]! + a * (v - ref[i]!);
    }
    const r = finiteRange(aligned);
    this.range = { min: this.range.min + a * (r.min - this.range.min), max: this.range.max + a * (r.max - this.range.max) };
    return { aligned, range: { ...this.range }, scale: fit.scale, shift: fit.shift, restarted: false };
  }

  /** Starts the reference at this frame, its own min..max mapped onto the current range (the first frame: its own range). */
  private restart(depth: Float32Array): TemporalFrame {
    const own = finiteRange(depth);
    let scale = 1;
    let shift = 0;
    if (this.ref && this.range.max > this.range.min && own.max > own.min) {
      scale = (this.range.max - this.range.min) / (own.max - own.min);
      shift = this.range.min - scale * own.min;
    } else {
      this.range = own;
    }
    const aligned = affine(depth, scale, shift);
    this.ref = Float32Array.from(aligned);
    return { aligned, range: { ...this.range }, scale, shift, restarted: true };
  }
}

function affine(depth: Float32Array, scale: number, shift: number): Float32Array {
  const out = new Float32Array(depth.length);
  for (let i = 0; i < depth.length; i++) out[i] = scale * depth[i]! + shift;
  return out;
}
