// The only place that knows WebGPU comes from Dawn's Node binding.
import { create, globals } from 'webgpu';
import { NoAdapterError } from '../nn/device.js';

let cached: GPU | undefined;

/**
 * `navigator.gpu` for Node: installs WebGPU's globals (GPUBufferUsage, …) once and
 * returns Dawn's GPU object.
 */
export function nodeGpu(): GPU {
  if (!cached) {
    Object.assign(globalThis, globals);
    try {
      cached = create([]) as GPU;
    } catch (e) {
      throw new NoAdapterError(`could not load Dawn: ${(e as Error).message}`);
    }
  }
  return cached;
}
