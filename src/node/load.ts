// The Node entry point: weights from a file, the cache or the official URL; images
// from paths, encoded bytes or raw pixels.
import type { MidasConfig } from '../midas/config.js';
import { createMidas, type Midas, type DepthResult } from '../midas/model.js';
import { MODELS, type ModelInfo, type ModelName } from '../midas/models.js';
import type { Precision } from '../midas/network.js';
import type { RawImage, RgbImage } from '../midas/transform.js';
import { midasWeights, modelForWeights } from '../midas/weights.js';
import { Runtime } from '../nn/runtime.js';
import { useTiles } from '../kernels/conv2d_tiled.js';
import { tuneNetwork } from '../midas/tune.js';
import { chooseGpu } from './adapters.js';
import { readTuning, saveTuning, tuningFile } from './tuning.js';
import { decodeImage, ImageError } from './image.js';
import { resolveWeights, type ResolveHooks } from './weights.js';
import { StreamedSafetensors } from './streamed.js';
import { WorkerConvPacker } from './conv_packer.js';
import { startWarmUp } from './warm.js';

export interface LoadMidasOptions extends ResolveHooks {
  /**
   * Which MiDaS: 'v2' (ResNeXt-101), 'v2.1' (v2.1 large, the same network) or 'small'
   * (v2.1 small, EfficientNet-Lite3). It picks the official checkpoint to download and
   * the transform size. Default: the architecture `weights` holds, else 'v2'. A name
   * whose architecture differs from the file's is an error.
   */
  model?: ModelName;
  /**
   * A converted `.safetensors` file, or a PyTorch checkpoint (`.pt`, converted once
   * and cached). Default: the model's official checkpoint from `$MIDAS_HOME`
   * (`~/.cache/midas-webgpu`), downloaded and hash-checked on first use.
   */
  weights?: string;
  /** 'f16' stores the conv weights in half precision on the GPU, arithmetic f32; 'f16-math' also multiplies in f16 (sums f32). Default 'f32'. */
  precision?: Precision;
  /** The transform's target side, a multiple of 32. Default: the model's (384; 256 for 'small'). */
  size?: number;
  /** A network of another shape (tests use reduced ones). Default: the model's. */
  config?: MidasConfig;
  /** A runtime to share; default: a new one on the adapter `adapter` names, else Dawn's first. */
  runtime?: Runtime;
  /**
   * The adapter whose name contains this text, ignoring case (`listAdapters` and
   * `midas info --all` list them); default: $MIDAS_ADAPTER if set, else Dawn's first.
   * No match is an error that lists the adapters there are. Not with `runtime`.
   */
  adapter?: string;
  /**
   * The convolutions' tiles. Unset: those `midas tune` saved for this adapter in
   * `$MIDAS_HOME/tuning.json` if there are any, else the built-in choices. `true`: the
   * same, but if this adapter has none saved, tune it first at `size` and save them
   * (a few seconds to minutes: every candidate compiles and runs). `false`: the
   * built-in choices only.
   */
  tune?: boolean;
  /**
   * Compile the first prediction's shaders while the weights load (and, on lavapipe,
   * on helper devices in parallel; see src/midas/warm.ts), so that `loadMidas` returns
   * a model whose first `predict` runs at full speed. Default true.
   */
  warmUp?: boolean;
}

/** What `predict` accepts: a file path, an encoded JPEG/PNG, or raw pixels. */
export type ImageInput = string | Uint8Array | RawImage;

export class MidasModel {
  private readonly ownsRuntime: boolean;

  constructor(
    private readonly midas: Midas,
    ownsRuntime: boolean,
    model: ModelInfo,
  ) {
    this.ownsRuntime = ownsRuntime;
    this.model = model;
  }

  get runtime(): Runtime {
    return this.midas.runtime;
  }

  get size(): number {
    return this.midas.size;
  }

  /** The model this runs: name, official checkpoint, network config. */
  readonly model: ModelInfo;

  /** Relative inverse depth at the image's own size (larger = nearer; unknown scale and shift). */
  predict(input: ImageInput): Promise<DepthResult> {
    return this.midas.predict(decodeImage(input));
  }

  /**
   * Depth maps for a sequence of raw frames (RGB or RGBA, e.g. `readVideoFrames`), in
   * order; each equals `predict` on that frame. The next frame is uploaded and
   * recorded while the current one computes, so this runs faster than a loop of
   * `predict`. Frames are taken from `frames` one ahead of the results.
   */
  predictFrames(frames: AsyncIterable<RawFrame> | Iterable<RawFrame>): AsyncGenerator<DepthResult> {
    return this.midas.predictFrames(rgbFrames(frames));
  }

  /** Frees the GPU buffers (and the device, when loadMidas created it). */
  dispose(): void {
    this.midas.dispose();
    if (this.ownsRuntime) this.runtime.destroy();
  }
}

/** A raw video frame: 8-bit RGB or RGBA pixels (channels from the length), row-major. */
export interface RawFrame {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
}

async function* rgbFrames(frames: AsyncIterable<RawFrame> | Iterable<RawFrame>): AsyncGenerator<RgbImage> {
  let n = 0;
  for await (const f of frames) {
    const pixels = f.width * f.height;
    const name = `<frame ${n++}>`;
    if (f.data.length === pixels * 3 && f.data instanceof Uint8Array) yield { data: f.data, width: f.width, height: f.height };
    else if (f.data.length === pixels * 4 || f.data.length === pixels * 3) yield decodeImage({ ...f, channels: f.data.length === pixels * 4 ? 4 : 3 }, name);
    else throw new ImageError(name, `a ${f.width}x${f.height} frame needs ${pixels * 3} (RGB) or ${pixels * 4} (RGBA) bytes, got ${f.data.length}`);
  }
}

export async function loadMidas(options: LoadMidasOptions = {}): Promise<MidasModel> {
  const official = MODELS[options.model ?? 'v2'].checkpoint;
  const path = await resolveWeights(options.weights, options, official);
  // The header says which network: its shaders start compiling before the data is read.
  const file = StreamedSafetensors.open(path);
  // Its thread boots and opens the file while the device opens.
  const packer = new WorkerConvPacker(file);
  try {
    const { info, config } = modelForWeights(file.shapes().keys(), options.weights ?? path, options.model, options.config);
    const size = options.size ?? info.size;
    const precision = options.precision ?? 'f32';
    if (options.runtime && options.adapter !== undefined) throw new Error('loadMidas: give `adapter` or `runtime`, not both');
    const gpu = options.runtime ? undefined : await chooseGpu(options.adapter);
    const runtime = options.runtime ?? (await Runtime.create(gpu!));
    let warm: Promise<void> = Promise.resolve();
    try {
      if (options.tune !== false) await applyTuning(runtime, config, size, options);
      if (options.warmUp !== false) warm = (await startWarmUp(runtime, gpu, config, size, precision)).done;
      const midas = await createMidas(runtime, midasWeights(file, config), { size, precision, config, packer }, false);
      await warm;
      return new MidasModel(midas, !options.runtime, info);
    } catch (e) {
      await warm;
      if (!options.runtime) runtime.destroy();
      throw e;
    }
  } finally {
    packer.close();
    file.close();
  }
}

/** Gives the runtime this adapter's saved tiles, tuning and saving them first with `tune: true` where there are none. */
async function applyTuning(rt: Runtime, config: MidasConfig, size: number, options: LoadMidasOptions): Promise<void> {
  let saved = readTuning(rt);
  if (!saved && options.tune === true) {
    options.log?.(`tuning the convolutions for ${rt.adapterName} at ${size}x${size} (once; saved in ${tuningFile()})`);
    const { tiles } = await tuneNetwork(rt, config, size);
    saved = await saveTuning(rt, tiles, size);
  }
  if (saved) useTiles(rt, Object.entries(saved.tiles));
}
