// The prediction pipeline, runtime-agnostic: RGB pixels in, relative inverse depth
// at the image's own size out. Node's file/Buffer handling lives in src/node.
import { resize2d } from '../kernels/resize.js';
import type { Runtime } from '../nn/runtime.js';
import type { Weights } from '../nn/module.js';
import { MIDAS_V2, type MidasConfig } from './config.js';
import { MidasNet, type Precision } from './network.js';
import { preprocess, type RgbImage } from './transform.js';

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
    this.net = new MidasNet(options.config ?? MIDAS_V2);
    this.net.prepare(runtime, weights, this.precision);
  }

  /** Runs the hub pipeline: transform, network, PyTorch bicubic back to the image's size. */
  async predict(image: RgbImage): Promise<DepthResult> {
    if (this.disposed) throw new Error('predict: this model was disposed');
    const rt = this.runtime;
    const x = preprocess(rt, image, this.size);
    const { depth } = this.net.forward(x);
    x.dispose();
    const full = resize2d(rt, depth, image.height, image.width, { kind: 'bicubic', alignCorners: false });
    depth.dispose();
    try {
      return { depth: await full.read(), width: image.width, height: image.height };
    } finally {
      full.dispose();
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.net.dispose();
    this.runtime.trim();
  }
}
