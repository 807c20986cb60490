/// <reference lib="dom" />
// midas-webgpu in a browser page: the same runtime, kernels and network as in Node,
// on `navigator.gpu`; only how weights and images arrive differs. No Node built-ins
// (test/browser.test.ts builds this entry and fails on any). Bundlers pick it through
// the package's `browser` export condition; `import { loadMidas } from 'midas-webgpu'`.
import type { MidasConfig } from '../midas/config.js';
import { createMidas, type Midas, type DepthResult } from '../midas/model.js';
import type { ModelInfo, ModelName } from '../midas/models.js';
import type { Precision } from '../midas/network.js';
import { toRGB, type RawImage, type RgbImage } from '../midas/transform.js';
import { midasWeights, modelForWeights } from '../midas/weights.js';
import { NoAdapterError } from '../nn/device.js';
import { Runtime } from '../nn/runtime.js';
import { SafetensorsFile } from '../nn/safetensors.js';

export * from '../index.js';
export { encodePfm, encodePng16, encodeColorPng, colorizeRGBA, depthTo16 } from './outputs.js';

/** WebGPU is missing, or gives no adapter: the message says what to do in a browser. */
export class WebGPUUnavailableError extends Error {
  override name = 'WebGPUUnavailableError';
}

/** Where the converted weights (`.safetensors`) come from. */
export type WeightsSource = string | URL | ArrayBuffer | ArrayBufferView | Blob;

export interface LoadProgress {
  /** Bytes of the weights file read so far. */
  loaded: number;
  /** The file's size when known (a Blob's size, a response's Content-Length). */
  total?: number;
}

export interface LoadMidasOptions {
  /** A converted `.safetensors` file: a URL (fetched), its bytes, or a File/Blob. */
  weights: WeightsSource;
  /** 'f16' stores the conv weights in half precision; 'f16-math' also multiplies in f16 (both need the shader-f16 feature). Default 'f32'. */
  precision?: Precision;
  /**
   * Which MiDaS the file must be: 'v2', 'v2.1' or 'small'. Default: the architecture
   * the file holds (the model's transform size follows it). A name whose architecture
   * differs from the file's is an error.
   */
  model?: ModelName;
  /** The transform's target side, a multiple of 32. Default: the model's (384; 256 for 'small'). */
  size?: number;
  /** A network of another shape (tests use reduced ones). Default: the model's. */
  config?: MidasConfig;
  /** A runtime to share; default: a new one on `gpu`. */
  runtime?: Runtime;
  /** The WebGPU entry point. Default: `navigator.gpu`. */
  gpu?: GPU;
  /** Called as the weights file is read. */
  onProgress?: (progress: LoadProgress) => void;
  /** Aborts the weights download. */
  signal?: AbortSignal;
  /** Passed to `fetch` for a URL (credentials, headers, …). */
  fetchInit?: RequestInit;
}

/**
 * What `predict` accepts: anything a 2D canvas can draw (decoded with the browser's
 * own decoders), an ImageData, a File/Blob holding a JPEG/PNG/WebP, or raw pixels.
 */
export type ImageInput =
  | ImageBitmap
  | ImageData
  | HTMLImageElement
  | HTMLCanvasElement
  | HTMLVideoElement
  | OffscreenCanvas
  | VideoFrame
  | Blob
  | RawImage;

/** `navigator.gpu`, or an error saying why there is none. */
export function browserGpu(): GPU {
  const nav = (globalThis as { navigator?: Navigator }).navigator;
  const gpu = nav?.gpu;
  if (gpu) return gpu;
  const insecure = (globalThis as { isSecureContext?: boolean }).isSecureContext === false;
  throw new WebGPUUnavailableError(
    'WebGPU is not available in this browser (navigator.gpu is missing). ' +
      (insecure
        ? 'This page is not a secure context: serve it over https, or from http://127.0.0.1 or http://localhost. '
        : '') +
      'Use Chrome or Edge 113+ (on Linux: start Chromium with --enable-unsafe-webgpu; without a GPU also ' +
      '--use-angle=vulkan --use-webgpu-adapter=opengles --ignore-gpu-blocklist), Safari 26+, or Firefox 141+ on Windows.',
  );
}

/** A loaded network: `predict` takes browser images and returns the same result as in Node. */
export class MidasModel {
  constructor(
    private readonly midas: Midas,
    private readonly ownsRuntime: boolean,
    /** The model this runs: name, official checkpoint, network config. */
    readonly model: ModelInfo,
  ) {}

  get runtime(): Runtime {
    return this.midas.runtime;
  }

  get size(): number {
    return this.midas.size;
  }

  /** 'core', or 'compatibility' when the device runs under WebGPU's compatibility-mode rules. */
  get featureLevel(): 'core' | 'compatibility' {
    return deviceFeatureLevel(this.runtime.device);
  }

  /** Relative inverse depth at the image's own size (larger = nearer; unknown scale and shift). */
  async predict(input: ImageInput): Promise<DepthResult> {
    return this.midas.predict(await imageToRGB(input));
  }

  /** Frees the GPU buffers (and the device, when loadMidas created it). */
  dispose(): void {
    this.midas.dispose();
    if (this.ownsRuntime) this.runtime.destroy();
  }
}

/** Loads the weights, opens a device (core, else compatibility) and uploads the network. */
export async function loadMidas(options: LoadMidasOptions): Promise<MidasModel> {
  if (options.weights === undefined || options.weights === null) {
    throw new TypeError('loadMidas: `weights` is required in a browser (a URL, an ArrayBuffer or a File of a converted .safetensors)');
  }
  const bytes = await readWeights(options.weights, options);
  const source = weightsName(options.weights);
  const file = parseWeights(bytes, source);
  const { info, config } = modelForWeights(file.names, source, options.model, options.config);
  const weights = midasWeights(file, config);
  const runtime = options.runtime ?? (await createBrowserRuntime(options.gpu));
  if (options.precision !== undefined && options.precision !== 'f32' && !runtime.features.f16) {
    if (!options.runtime) runtime.destroy();
    throw new Error(
      `precision '${options.precision}' needs the adapter's shader-f16 feature, which this one lacks ` +
        `(${deviceFeatureLevel(runtime.device)} level; compatibility mode never has it): use precision 'f32'`,
    );
  }
  const midas = await createMidas(runtime, weights, { size: options.size ?? info.size, precision: options.precision, config }, !options.runtime);
  return new MidasModel(midas, !options.runtime, info);
}

/**
 * A runtime on `navigator.gpu` (or `gpu`): a core adapter when there is a hardware
 * one, else compatibility level (Chromium on OpenGL ES, D3D11), else a fallback one.
 * shader-f16, subgroups and timestamp-query are used only where the adapter has them.
 */
export async function createBrowserRuntime(gpu: GPU = browserGpu()): Promise<Runtime> {
  try {
    return await Runtime.create(gpu, { avoidFallbackAdapter: true });
  } catch (e) {
    if (e instanceof NoAdapterError) {
      throw new WebGPUUnavailableError(
        'WebGPU is present but gave no adapter at either feature level (core, compatibility). ' +
          'The GPU may be blocklisted or WebGPU disabled: in Chromium try --enable-unsafe-webgpu --ignore-gpu-blocklist ' +
          '(without a GPU also --use-angle=vulkan --use-webgpu-adapter=opengles), and check chrome://gpu.',
      );
    }
    throw e;
  }
}

/** 'core', or 'compatibility' when a device runs under compatibility-mode validation. */
export function deviceFeatureLevel(device: GPUDevice): 'core' | 'compatibility' {
  // A core device always has this feature; a compatibility one only when asked for it.
  return device.features.has('core-features-and-limits') ? 'core' : 'compatibility';
}

// ---- weights ---------------------------------------------------------------------------

function weightsName(source: WeightsSource): string {
  if (typeof source === 'string') return source;
  if (source instanceof URL) return source.href;
  if (typeof File !== 'undefined' && source instanceof File) return source.name;
  return '<weights>';
}

async function readWeights(source: WeightsSource, options: LoadMidasOptions): Promise<Uint8Array> {
  const report = options.onProgress;
  if (source instanceof ArrayBuffer) {
    report?.({ loaded: source.byteLength, total: source.byteLength });
    return new Uint8Array(source);
  }
  if (ArrayBuffer.isView(source)) {
    report?.({ loaded: source.byteLength, total: source.byteLength });
    return new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  }
  if (typeof Blob !== 'undefined' && source instanceof Blob) {
    return readStream(source.stream(), source.size, report);
  }
  const url = source instanceof URL ? source.href : String(source);
  let response: Response;
  try {
    response = await fetch(url, { ...options.fetchInit, signal: options.signal ?? options.fetchInit?.signal });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new Error(`weights ${url}: could not fetch (${(e as Error).message}); a cross-origin URL needs CORS headers`);
  }
  if (!response.ok) throw new Error(`weights ${url}: HTTP ${response.status} ${response.statusText}`.trim());
  const length = Number(response.headers.get('content-length'));
  // A compressed transfer's Content-Length is not the body's: then the total is unknown.
  const encoded = (response.headers.get('content-encoding') ?? 'identity') !== 'identity';
  const total = Number.isFinite(length) && length > 0 && !encoded ? length : undefined;
  if (!response.body) {
    const buf = new Uint8Array(await response.arrayBuffer());
    report?.({ loaded: buf.length, total: buf.length });
    return buf;
  }
  return readStream(response.body, total, report);
}

/** Reads a byte stream into one array, reporting progress; `total` is a hint. */
async function readStream(
  stream: ReadableStream<Uint8Array>,
  total: number | undefined,
  report: ((p: LoadProgress) => void) | undefined,
): Promise<Uint8Array> {
  const reader = stream.getReader();
  let buf = new Uint8Array(total ?? 1 << 20);
  let loaded = 0;
  report?.({ loaded, total });
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (loaded + value.length > buf.length) {
      const grown = new Uint8Array(Math.max(loaded + value.length, buf.length * 2));
      grown.set(buf.subarray(0, loaded));
      buf = grown;
    }
    buf.set(value, loaded);
    loaded += value.length;
    report?.({ loaded, total });
  }
  return loaded === buf.length ? buf : buf.slice(0, loaded);
}

function parseWeights(bytes: Uint8Array, name: string): SafetensorsFile {
  // A PyTorch checkpoint (zip 'PK\3\4', or a legacy pickle starting 0x80) is not read
  // in the browser: say how to convert it instead of a header error.
  const zip = bytes[0] === 0x50 && bytes[1] === 0x4b;
  const pickle = bytes[0] === 0x80 && bytes[1] !== undefined && bytes[1] <= 5;
  if (zip || pickle) {
    throw new Error(
      `${name}: this is a PyTorch checkpoint, not a converted .safetensors file; ` +
        'convert it once with `npx midas convert <checkpoint.pt>` (Node) and load the .safetensors',
    );
  }
  return SafetensorsFile.parse(bytes, name);
}

// ---- images -----------------------------------------------------------------------------

function isRawImage(x: unknown): x is RawImage {
  const r = x as RawImage;
  return typeof r === 'object' && r !== null && 'channels' in r && (r.data instanceof Uint8Array || r.data instanceof Uint8ClampedArray);
}

/**
 * A browser image as 8-bit RGB: drawn into a 2D canvas (sRGB) and read back; alpha is
 * dropped, as the Node decoder does. ImageData and raw pixels are converted directly.
 * (A canvas stores premultiplied alpha, so translucent pixels' colours are rounded.)
 */
export async function imageToRGB(input: ImageInput): Promise<RgbImage> {
  if (isRawImage(input)) return toRGB(input);
  if (typeof ImageData !== 'undefined' && input instanceof ImageData) {
    return toRGB({ data: input.data, width: input.width, height: input.height, channels: 4 });
  }
  let source: CanvasImageSource = input as CanvasImageSource;
  let width: number;
  let height: number;
  let close: (() => void) | undefined;
  if (typeof Blob !== 'undefined' && input instanceof Blob) {
    let bitmap: ImageBitmap;
    try {
      bitmap = await createImageBitmap(input, { colorSpaceConversion: 'none', premultiplyAlpha: 'none', imageOrientation: 'from-image' });
    } catch (e) {
      const name = typeof File !== 'undefined' && input instanceof File ? input.name : '<image>';
      throw new Error(`${name}: the browser could not decode this image (${(e as Error).message})`);
    }
    source = bitmap;
    close = () => bitmap.close();
  }
  if (typeof HTMLImageElement !== 'undefined' && source instanceof HTMLImageElement) {
    if (!source.complete || source.naturalWidth === 0) await source.decode();
    width = source.naturalWidth;
    height = source.naturalHeight;
  } else if (typeof HTMLVideoElement !== 'undefined' && source instanceof HTMLVideoElement) {
    width = source.videoWidth;
    height = source.videoHeight;
  } else if (typeof VideoFrame !== 'undefined' && source instanceof VideoFrame) {
    width = source.displayWidth;
    height = source.displayHeight;
  } else {
    const s = source as { width: number | SVGAnimatedLength; height: number | SVGAnimatedLength };
    width = typeof s.width === 'number' ? s.width : s.width.baseVal.value;
    height = typeof s.height === 'number' ? s.height : s.height.baseVal.value;
  }
  try {
    if (!(width >= 1 && height >= 1)) throw new RangeError(`predict: the image has no pixels (${width}x${height}); is it loaded?`);
    const ctx = canvas2d(width, height);
    ctx.drawImage(source, 0, 0);
    const data = ctx.getImageData(0, 0, width, height).data;
    return toRGB({ data, width, height, channels: 4 });
  } finally {
    close?.();
  }
}

type Context2D = CanvasRenderingContext2D | OffscreenCanvasRenderingContext2D;

function canvas2d(width: number, height: number): Context2D {
  const settings: CanvasRenderingContext2DSettings = { willReadFrequently: true, colorSpace: 'srgb', alpha: true };
  let ctx: Context2D | null = null;
  if (typeof OffscreenCanvas !== 'undefined') {
    ctx = new OffscreenCanvas(width, height).getContext('2d', settings);
  } else if (typeof document !== 'undefined') {
    const c = document.createElement('canvas');
    c.width = width;
    c.height = height;
    ctx = c.getContext('2d', settings);
  }
  if (!ctx) throw new Error('predict: no 2D canvas to read the image pixels with; pass an ImageData or raw pixels');
  return ctx;
}
