// The prediction pipeline, runtime-agnostic: RGB pixels in, relative inverse depth
// at the image's own size out. Node's file/Buffer handling lives in src/node.
import { resize2d } from '../kernels/resize.js';
import type { Runtime } from '../nn/runtime.js';
import type { Tensor } from '../nn/tensor.js';
import type { Weights } from '../nn/module.js';
import type { ConvPacker } from '../nn/packing.js';
import { MIDAS_V2, type MidasConfig } from './config.js';
import { largestActivation, type LoadStep, MidasNet, type Precision } from './network.js';
import { fitSize, preprocess, type RgbImage } from './transform.js';

/**
 * Relative inverse depth at the input's size: larger is nearer. The scale and shift
 * are unknown (MiDaS is trained scale- and shift-invariant); align to known depths
 * to get metric values.
 */
export interface DepthResult {
  depth: Float32Array;
  width: number;
  height: number;
}

export interface MidasOptions {
  /** The transform's target side (the network sees at most size x size, sides multiples of 32). Default 384. */
  size?: number;
  precision?: Precision;
  config?: MidasConfig;
  /** Called as loading passes each step (`bench e2e --cold` times them; a UI may show progress). */
  onLoadStep?: (step: LoadStep) => void;
  /** Packs the convs' weights off the main thread while they upload (src/nn/packing.ts); closed once loaded. */
  packer?: ConvPacker;
}

/**
 * Refuses an image whose largest activation at `size` would exceed `limit` bytes
 * (the adapter's maxStorageBufferBindingSize), naming the limit and the largest
 * size that fits.
 */
export function checkInputFits(config: MidasConfig, size: number, limit: number, width: number, height: number): void {
  const need = (s: number) => {
    const f = fitSize(width, height, s);
    return { ...f, bytes: largestActivation(config, f.height, f.width) * 4 };
  };
  const n = need(size);
  if (n.bytes <= limit) return;
  let fits = size - 32;
  while (fits >= 32 && need(fits).bytes > limit) fits -= 32;
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  throw new Error(
    `a ${n.width}x${n.height} network input needs a ${mib(n.bytes)} activation, over this adapter's ` +
      `maxStorageBufferBindingSize (${mib(limit)}); ` +
      (fits >= 32 ? `use --size ${fits} or less for this image` : 'no size fits this image'),
  );
}

export class Midas {
  readonly size: number;
  readonly precision: Precision;
  private readonly net: MidasNet;
  private disposed = false;

  constructor(
    readonly runtime: Runtime,
    weights: Weights,
    options: MidasOptions = {},
  ) {
    this.size = options.size ?? 384;
    if (!Number.isInteger(this.size) || this.size < 32 || this.size % 32 !== 0) {
      throw new Error(`size must be a positive multiple of 32 (got ${options.size})`);
    }
    this.precision = options.precision ?? 'f32';
    // Refused by name before anything is uploaded, rather than computed in f32 behind the
    // caller's back: the precision is what the caller measured and chose (SwiftShader
    // and compatibility-mode adapters lack shader-f16).
    if (this.precision !== 'f32' && !runtime.features.f16) {
      throw new Error(`precision '${this.precision}' needs the adapter's shader-f16 feature, which ${runtime.adapterName} lacks: use precision 'f32'`);
    }
    this.config = options.config ?? MIDAS_V2;
    this.net = new MidasNet(this.config);
    this.net.prepare(runtime, weights, this.precision, options.onLoadStep, options.packer);
  }

  private readonly config: MidasConfig;

  /** Throws, before any work, when this image's largest activation would not fit one storage binding. */
  checkFits(width: number, height: number): void {
    checkInputFits(this.config, this.size, this.runtime.limits.maxStorageBufferBindingSize, width, height);
  }

  /** Runs the hub pipeline: transform, network, PyTorch bicubic back to the image's size. */
  async predict(image: RgbImage): Promise<DepthResult> {
    return this.start(image);
  }

  /**
   * `predict` for a sequence (the frames of a video), in order, with the same results.
   * The GPU is kept busy: each frame is uploaded, recorded and submitted before the
   * previous one's result is awaited, so the CPU's share of a frame (upload,
   * recording, and whatever the caller does with each result) overlaps the GPU's work
   * on the next. At most two frames are in flight.
   */
  async *predictFrames(frames: AsyncIterable<RgbImage> | Iterable<RgbImage>): AsyncGenerator<DepthResult> {
    let pending: Promise<DepthResult> | null = null;
    try {
      for await (const image of frames) {
        const next = this.start(image);
        // Awaited below; until then a failure must not count as unhandled.
        next.catch(() => {});
        if (pending) {
          const done = pending;
          pending = next;
          yield await done;
        } else {
          pending = next;
        }
      }
      if (pending) {
        const done = pending;
        pending = null;
        yield await done;
      }
    } finally {
      // Stopped early or failed: let the frame in flight finish before its buffers go back.
      if (pending) await pending.catch(() => {});
    }
  }

  /**
   * Records and submits one prediction and returns the wait for its result: the
   * recording is done when this returns, so the next frame can be recorded behind it.
   */
  private start(image: RgbImage): Promise<DepthResult> {
    if (this.disposed) return Promise.reject(new Error('predict: this model was disposed'));
    const rt = this.runtime;
    const { width, height } = image;
    try {
      this.checkFits(width, height);
    } catch (e) {
      return Promise.reject(e);
    }
    let depth: Tensor;
    try {
      const x = preprocess(rt, image, this.size);
      try {
        depth = this.net.forward(x).depth;
      } finally {
        x.dispose();
      }
    } catch (e) {
      return Promise.reject(e);
    }
    const limit = Math.min(rt.limits.maxStorageBufferBindingSize, rt.limits.maxBufferSize);
    if (width * height * 4 > limit) {
      // Several strips: read one after another (rare: a map over one buffer).
      return this.resizeBack(depth, width, height)
        .then((values) => ({ depth: values, width, height }))
        .finally(() => depth.dispose());
    }
    try {
      const full = resize2d(rt, depth, height, width, { kind: 'bicubic', alignCorners: false }, [0, height]);
      const read = rt.readLater(full);
      full.dispose();
      return read.then((values) => ({ depth: values, width, height }));
    } catch (e) {
      return Promise.reject(e);
    } finally {
      depth.dispose();
    }
  }

  /** PyTorch bicubic to the image's size, in strips of rows when the map is bigger than one buffer. */
  private async resizeBack(depth: Tensor, width: number, height: number): Promise<Float32Array> {
    const limit = Math.min(this.runtime.limits.maxStorageBufferBindingSize, this.runtime.limits.maxBufferSize);
    const rowsPerStrip = Math.max(1, Math.floor(limit / (width * 4)));
    const out = new Float32Array(width * height);
    for (let r0 = 0; r0 < height; r0 += rowsPerStrip) {
      const r1 = Math.min(height, r0 + rowsPerStrip);
      const strip = resize2d(this.runtime, depth, height, width, { kind: 'bicubic', alignCorners: false }, [r0, r1]);
      try {
        out.set(await strip.read(), r0 * width);
      } finally {
        strip.dispose();
      }
    }
    return out;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.net.dispose();
    this.runtime.trim();
  }
}

/**
 * A Midas on `runtime`, once its weights are on the GPU (so the caller may drop the
 * file's bytes). When `ownsRuntime`, a failure destroys the runtime too.
 */
export async function createMidas(runtime: Runtime, weights: Weights, options: MidasOptions, ownsRuntime: boolean): Promise<Midas> {
  try {
    const midas = new Midas(runtime, weights, options);
    await runtime.sync();
    return midas;
  } catch (e) {
    if (ownsRuntime) runtime.destroy();
    throw e;
  }
}
