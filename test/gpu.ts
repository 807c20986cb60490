// One runtime for a test file. No adapter is a failure, not a skip: the error
// says what to install.
import { Runtime } from '../src/nn/runtime.js';
import { nodeGpu } from '../src/node/gpu.js';

let shared: Promise<Runtime> | undefined;

export function testRuntime(): Promise<Runtime> {
  shared ??= Runtime.create(nodeGpu());
  return shared;
}

let plain: Promise<Runtime> | undefined;

/** A second device without the subgroups feature: kernels take their portable paths. */
export function plainRuntime(): Promise<Runtime> {
  plain ??= Runtime.create(nodeGpu(), { wantFeatures: { subgroups: false } });
  return plain;
}
