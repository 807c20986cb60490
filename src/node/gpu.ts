// The only place that knows WebGPU comes from Dawn's Node binding.
import { create, globals } from 'webgpu';
import { NoAdapterError } from '../nn/device.js';

// Dawn's GPU object must stay reachable while any device from it is used: when it
// was garbage-collected the process aborted ("futex facility returned an unexpected
// error code"). This module keeps it.
let cached: GPU | undefined;

/**
 * Dawn rounds timestamp queries to 65.536 µs steps by default (a browser's guard
 * against timing attacks); a local process profiling its own kernels wants them exact.
 */
export const DAWN_FLAGS = ['disable-dawn-features=timestamp_quantization'];

/**
 * `navigator.gpu` for Node: installs WebGPU's globals (GPUBufferUsage, …) once and
 * returns Dawn's GPU object.
 */
export function nodeGpu(): GPU {
  if (!cached) {
    Object.assign(globalThis, globals);
    try {
      cached = create(DAWN_FLAGS) as GPU;
    } catch (e) {
      throw new NoAdapterError(`could not load Dawn: ${(e as Error).message}`);
    }
  }
  return cached;
}
