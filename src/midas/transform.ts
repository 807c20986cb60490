// The MiDaS hub transform ("default_transform", SPEC §3), from RGB pixels to the
// network's input tensor: fit inside 384x384 with sides that are multiples of 32,
// OpenCV INTER_CUBIC resize, ImageNet normalization. Browser-safe: no Node imports.
//
// The hub computes in float64 (img / 255.0, cv2.resize of the float64 image, then
// (x - mean) / std) and casts to float32 at the end. We resize the 0..255 values in
// float32 on the GPU and fold the /255 into the normalization: the same maths in
// another order, different only by float32 rounding (measured against cv2 in
// test/transform.test.ts).
import type { Runtime } from '../nn/runtime.js';
import type { Tensor } from '../nn/tensor.js';
import { normalize, IMAGENET_MEAN, IMAGENET_STD } from '../kernels/channelwise.js';
import { resize2d, resizeTaps } from '../kernels/resize.js';

/** 8-bit RGB pixels, row-major, 3 bytes a pixel (what `decodeImage` returns). */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** 8-bit pixels with 1 (gray), 3 (RGB) or 4 (RGBA, e.g. a canvas's ImageData) channels. */
export interface RawImage {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  channels: 1 | 3 | 4;
}

/**
 * Raw pixels to RGB: gray is replicated, alpha is dropped (not composited), as
 * cv2.imread(IMREAD_COLOR) treats gray and RGBA files. 3-channel input is copied.
 */
export function toRGB(raw: RawImage): RgbImage {
  const { width, height, channels } = raw;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`toRGB: width and height must be positive integers (got ${width}x${height})`);
  }
  if (channels !== 1 && channels !== 3 && channels !== 4) {
    throw new RangeError(`toRGB: channels must be 1, 3 or 4 (got ${String(channels)})`);
  }
  const n = width * height;
  if (raw.data.length !== n * channels) {
    throw new RangeError(`toRGB: ${width}x${height}x${channels} needs ${n * channels} bytes, got ${raw.data.length}`);
  }
  const src = raw.data;
  const out = new Uint8Array(n * 3);
  if (channels === 3) {
    out.set(src);
  } else {
    for (let i = 0; i < n; i++) {
      const s = i * channels;
      out[3 * i] = src[s]!;
      out[3 * i + 1] = src[channels === 1 ? s : s + 1]!;
      out[3 * i + 2] = src[channels === 1 ? s : s + 2]!;
    }
  }
  return { data: out, width, height };
}

/** numpy's `np.round` for one float64: round half to even (8.5 -> 8, 9.5 -> 10). */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f; // exact for |x| < 2^52
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * The network input size for a `width x height` image: the hub's
 * `Resize(size, size, keep_aspect_ratio=True, ensure_multiple_of=multiple,
 * resize_method="upper_bound")` (midas/transforms.py), with the same float64 steps:
 *
 *   scale = min(size/height, size/width)        (width's scale wins only when smaller)
 *   side  = round(scale * len / multiple) * multiple     numpy round, half to even
 *   if side > size: side = floor(scale * len / multiple) * multiple
 *
 * Small images are scaled up like any other (1x1 -> 384x384). One deliberate
 * difference: a side whose scaled length is under multiple/2 rounds to 0 (an image
 * more than 24 times longer than wide at 384/32), where cv2.resize in the hub would
 * fail; we clamp it to `multiple` instead, so a 5x400 image runs at 32x384.
 */
export function fitSize(width: number, height: number, size = 384, multiple = 32): { width: number; height: number } {
  for (const [name, v] of [['width', width], ['height', height], ['size', size], ['multiple', multiple]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`fitSize: ${name} must be a positive integer (got ${v})`);
  }
  let scaleHeight = size / height;
  let scaleWidth = size / width;
  if (scaleWidth < scaleHeight) scaleHeight = scaleWidth;
  else scaleWidth = scaleHeight;
  const constrain = (x: number): number => {
    let y = roundHalfEven(x / multiple) * multiple;
    if (y > size) y = Math.floor(x / multiple) * multiple;
    return Math.max(y, multiple); // the hub has no such clamp: it would fail on 0
  };
  return { width: constrain(scaleWidth * width), height: constrain(scaleHeight * height) };
}

export interface PreprocessOptions {
  /**
   * Largest input upload in bytes (float32, 12 bytes a pixel). A bigger image is
   * first resized along x on the CPU, so only `height x outWidth` pixels go to the
   * GPU. Default: the device's storage binding and buffer limits.
   */
  maxUploadBytes?: number;
}

/**
 * The hub transform on the GPU: RGB pixels (0..255) -> resized, normalized NHWC
 * tensor [1, H, W, 3] with H, W from `fitSize`. The caller owns the result.
 */
export function preprocess(rt: Runtime, rgb: RgbImage, size = 384, opts: PreprocessOptions = {}): Tensor {
  const { width, height, data } = rgb;
  if (data.length !== width * height * 3) {
    throw new RangeError(`preprocess: a ${width}x${height} RGB image needs ${width * height * 3} bytes, got ${data.length}`);
  }
  const out = fitSize(width, height, size);
  const limit = opts.maxUploadBytes ?? Math.min(rt.limits.maxStorageBufferBindingSize, rt.limits.maxBufferSize);

  let x: Tensor;
  if (width * height * 3 * 4 <= limit) {
    x = rt.upload(Float32Array.from(data), [1, height, width, 3]);
  } else {
    // Too big for one buffer: do the x pass here. The GPU kernel then sees an
    // input already out.width wide, where OpenCV's taps are exactly [0, 1, 0, 0],
    // so its x pass is the identity and it applies only the y taps.
    x = rt.upload(resizeRowsCpu(data, width, height, out.width), [1, height, out.width, 3]);
  }
  const resized = resize2d(rt, x, out.height, out.width, { kind: 'opencv-cubic' });
  x.dispose();
  const y = normalize(rt, resized, IMAGENET_MEAN, IMAGENET_STD, 1 / 255);
  resized.dispose();
  return y;
}

/**
 * OpenCV-cubic resize along x only, in float32 with the GPU kernel's order of
 * operations (r = 0; r += w[b] * x[b] for b = 0..3), for images too big to upload.
 */
export function resizeRowsCpu(data: Uint8Array, width: number, height: number, outWidth: number): Float32Array {
  const { taps, index, weight } = resizeTaps(width, outWidth, { kind: 'opencv-cubic' });
  const f = Math.fround;
  const out = new Float32Array(height * outWidth * 3);
  for (let y = 0; y < height; y++) {
    const row = y * width * 3;
    const o = y * outWidth * 3;
    for (let ox = 0; ox < outWidth; ox++) {
      for (let c = 0; c < 3; c++) {
        let r = 0;
        for (let b = 0; b < taps; b++) {
          r = f(r + f(weight[ox * taps + b]! * data[row + index[ox * taps + b]! * 3 + c]!));
        }
        out[o + ox * 3 + c] = r;
      }
    }
  }
  return out;
}
