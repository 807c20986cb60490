// The only place that knows WebGPU comes from Dawn's Node binding.
import os from 'node:os';
import path from 'node:path';
import { create, globals } from 'webgpu';
import { NoAdapterError } from '../nn/device.js';

// Dawn's GPU object must stay reachable while any device from it is used: when it
// was garbage-collected the process aborted ("futex facility returned an unexpected
// error code"). This module keeps every one it made, one per adapter flag.
const instances = new Map<string, GPU>();

/**
 * Dawn rounds timestamp queries to 65.536 µs steps by default (a browser's guard
 * against timing attacks); a local process profiling its own kernels wants them exact.
 */
export const DAWN_FLAGS = ['disable-dawn-features=timestamp_quantization'];

/**
 * `navigator.gpu` for Node: installs WebGPU's globals (GPUBufferUsage, …) once and
 * returns Dawn's GPU object. With `adapterName`, a GPU object whose requestAdapter
 * returns only the first adapter (in Dawn's order) whose Dawn name contains it, case
 * sensitive: Dawn's `adapter=` flag (see src/node/adapters.ts for names and matching).
 * One Dawn instance per name, kept for the life of the process.
 */
export function nodeGpu(adapterName?: string): GPU {
  const key = adapterName ?? '';
  let gpu = instances.get(key);
  if (!gpu) {
    separateLavapipeCache(process.env);
    Object.assign(globalThis, globals);
    try {
      gpu = create(adapterName === undefined ? DAWN_FLAGS : [...DAWN_FLAGS, `adapter=${adapterName}`]) as GPU;
    } catch (e) {
      throw new NoAdapterError(`could not load Dawn: ${(e as Error).message}`);
    }
    instances.set(key, gpu);
  }
  return gpu;
}

/**
 * Mesa's on-disk shader cache does not tell lavapipe's vector widths apart: with
 * LP_NATIVE_VECTOR_WIDTH changed, lavapipe loads shaders compiled for the other width
 * and runs them with the wrong subgroup size (seen with Mesa 25.0.7: a shader compiled
 * at 512 bits ran with 16 lanes in a 256-bit process), so the conv kernels' weight
 * sharing computes wrong results. Where the width is set and the cache folder is
 * not, each width gets a cache folder of its own. Mesa reads both variables when
 * Dawn first opens the driver, so this runs before Dawn's instance is created.
 */
export function separateLavapipeCache(env: NodeJS.ProcessEnv): void {
  const width = env['LP_NATIVE_VECTOR_WIDTH'];
  if (!width || env['MESA_SHADER_CACHE_DIR']) return;
  const base = env['XDG_CACHE_HOME'] || path.join(os.homedir(), '.cache');
  env['MESA_SHADER_CACHE_DIR'] = path.join(base, `mesa_shader_cache_lp${width.replace(/[^0-9]/g, '')}`);
}
