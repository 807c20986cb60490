// The benches' input picture: smooth gradients with a little deterministic noise, so
// that the transform and the network see natural-looking, reproducible pixels.
import type { RgbImage } from '../src/midas/transform.js';

export function testImage(size: number): RgbImage {
  const data = new Uint8Array(size * size * 3);
  let s = 0x2545f491;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      const n = (s >>> 0) % 32;
      const i = 3 * (y * size + x);
      data[i] = (((255 * x) / size) | 0) ^ n;
      data[i + 1] = (((255 * y) / size) | 0) ^ n;
      data[i + 2] = ((128 + 100 * Math.sin((x + y) / 17)) | 0) ^ n;
    }
  }
  return { data, width: size, height: size };
}
