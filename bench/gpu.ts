// The GPU object the benches run on: the library's own (timestamps unquantized, see
// DAWN_FLAGS in src/node/gpu.ts).
import { DAWN_FLAGS, nodeGpu } from '../src/node/gpu.js';

export const BENCH_DAWN_FLAGS = DAWN_FLAGS;

export function benchGpu(): { gpu: GPU; flags: string[] } {
  return { gpu: nodeGpu(), flags: DAWN_FLAGS };
}
