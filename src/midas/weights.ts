// From a parsed safetensors file to the network's weights, checked against the
// architecture first so a wrong file fails with the list of differences.
import type { Weights, WeightEntry } from '../nn/module.js';
import { checkWeights, type SafetensorsFile } from '../nn/safetensors.js';
import { MIDAS_V2, type MidasConfig } from './config.js';
import { MidasNet } from './network.js';

/** Every key MidasNet reads, with its shape (no `num_batches_tracked`). */
export function expectedShapes(config: MidasConfig = MIDAS_V2): Map<string, readonly number[]> {
  return new MidasNet(config).stateShapes();
}

/**
 * The file's tensors as float32 (views over the file's bytes for F32; decoded for
 * F16), after checking every expected key is there with its shape and nothing else is.
 */
export function midasWeights(file: SafetensorsFile, config: MidasConfig = MIDAS_V2): Weights {
  const expected = expectedShapes(config);
  checkWeights(file, expected);
  const out = new Map<string, WeightEntry>();
  for (const [name, shape] of expected) out.set(name, { shape, data: file.float32(name) });
  return out;
}
