// The Node entry point: weights from a file, the cache or the official URL; images
// from paths, encoded bytes or raw pixels.
import { MIDAS_V2, type MidasConfig } from '../midas/config.js';
import { createMidas, type Midas, type DepthResult } from '../midas/model.js';
import type { Precision } from '../midas/network.js';
import type { RawImage } from '../midas/transform.js';
import { midasWeights } from '../midas/weights.js';
import { Runtime } from '../nn/runtime.js';
import { useTiles } from '../kernels/conv2d_tiled.js';
import { tuneNetwork } from '../midas/tune.js';
import { nodeGpu } from './gpu.js';
import { readTuning, saveTuning, tuningFile } from './tuning.js';
import { decodeImage } from './image.js';
import { readSafetensors, resolveWeights, type ResolveHooks } from './weights.js';

export interface LoadMidasOptions extends ResolveHooks {
  /**
   * A converted `.safetensors` file, or a PyTorch checkpoint (`.pt`, converted once
   * and cached). Default: the official MiDaS v2 checkpoint from `$MIDAS_HOME`
   * (`~/.cache/midas-webgpu`), downloaded and hash-checked on first use.
   */
  weights?: string;
  /** 'f16' stores the conv weights in half precision on the GPU, arithmetic f32; 'f16-math' also multiplies in f16 (sums f32). Default 'f32'. */
  precision?: Precision;
  /** The transform's target side, a multiple of 32. Default 384. */
  size?: number;
  /** A network of another shape (tests use reduced ones). Default: MiDaS v2. */
  config?: MidasConfig;
  /** A runtime to share; default: a new one on Dawn's first adapter. */
  runtime?: Runtime;
  /**
   * The convolutions' tiles. Unset: those `midas tune` saved for this adapter in
   * `$MIDAS_HOME/tuning.json` if there are any, else the built-in choices. `true`: the
   * same, but if this adapter has none saved, tune it first at `size` and save them
   * (a few seconds to minutes: every candidate compiles and runs). `false`: the
   * built-in choices only.
   */
  tune?: boolean;
}

/** What `predict` accepts: a file path, an encoded JPEG/PNG, or raw pixels. */
export type ImageInput = string | Uint8Array | RawImage;

export class MidasModel {
  private readonly ownsRuntime: boolean;

  constructor(
    private readonly midas: Midas,
    ownsRuntime: boolean,
  ) {
    this.ownsRuntime = ownsRuntime;
  }

  get runtime(): Runtime {
    return this.midas.runtime;
  }

  get size(): number {
    return this.midas.size;
  }

  /** Relative inverse depth at the image's own size (larger = nearer; unknown scale and shift). */
  predict(input: ImageInput): Promise<DepthResult> {
    return this.midas.predict(decodeImage(input));
  }

  /** Frees the GPU buffers (and the device, when loadMidas created it). */
  dispose(): void {
    this.midas.dispose();
    if (this.ownsRuntime) this.runtime.destroy();
  }
}

export async function loadMidas(options: LoadMidasOptions = {}): Promise<MidasModel> {
  const config = options.config ?? MIDAS_V2;
  const path = await resolveWeights(options.weights, options);
  const file = readSafetensors(path);
  const weights = midasWeights(file, config);
  const runtime = options.runtime ?? (await Runtime.create(nodeGpu()));
  try {
    if (options.tune !== false) await applyTuning(runtime, config, options);
  } catch (e) {
    if (!options.runtime) runtime.destroy();
    throw e;
  }
  const midas = await createMidas(runtime, weights, { size: options.size, precision: options.precision, config }, !options.runtime);
  return new MidasModel(midas, !options.runtime);
}

/** Gives the runtime this adapter's saved tiles, tuning and saving them first with `tune: true` where there are none. */
async function applyTuning(rt: Runtime, config: MidasConfig, options: LoadMidasOptions): Promise<void> {
  let saved = readTuning(rt);
  if (!saved && options.tune === true) {
    const size = options.size ?? 384;
    options.log?.(`tuning the convolutions for ${rt.adapterName} at ${size}x${size} (once; saved in ${tuningFile()})`);
    const { tiles } = await tuneNetwork(rt, config, size);
    saved = await saveTuning(rt, tiles, size);
  }
  if (saved) useTiles(rt, Object.entries(saved.tiles));
}
