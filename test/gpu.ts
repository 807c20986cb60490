// One runtime for a test file. No adapter is a failure, not a skip: the error
// says what to install.
import { Runtime } from '../src/nn/runtime.js';
import { nodeGpu } from '../src/node/gpu.js';

let shared: Promise<Runtime> | undefined;

export function testRuntime(): Promise<Runtime> {
  shared ??= Runtime.create(nodeGpu()).then(expectedAdapter);
  return shared;
}

/**
 * $MIDAS_TEST_ADAPTER (set by test/swiftshader.mjs): the device must be that adapter,
 * so a run meant for SwiftShader that opened another driver fails instead of passing.
 */
function expectedAdapter(rt: Runtime): Runtime {
  const want = process.env['MIDAS_TEST_ADAPTER'];
  if (want && !rt.adapterName.toLowerCase().includes(want.toLowerCase())) {
    throw new Error(`MIDAS_TEST_ADAPTER=${want} but the tests opened '${rt.adapterName}'`);
  }
  return rt;
}

let plain: Promise<Runtime> | undefined;

/** A second device without the subgroups feature: kernels take their portable paths. */
export function plainRuntime(): Promise<Runtime> {
  plain ??= Runtime.create(nodeGpu(), { wantFeatures: { subgroups: false } }).then(expectedAdapter);
  return plain;
}

/**
 * What f16 storage meets on an adapter without shader-f16 (SwiftShader, compatibility
 * mode): `Runtime.upload` refuses it by name. A test that needs shader-f16 asserts
 * this refusal there instead of the f16 result.
 */
export const F16_REFUSED = /upload: f16 tensors need the adapter's shader-f16 feature/;
