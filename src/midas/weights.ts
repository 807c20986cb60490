// From a parsed safetensors file to the network's weights, checked against the
// architecture first so a wrong file fails with the list of differences.
import type { Weights, WeightEntry } from '../nn/module.js';
import { checkWeights, type TensorSource } from '../nn/safetensors.js';
import { isSmall, MIDAS_V2, type MidasConfig } from './config.js';
import { architectureName, configIs, detectArchitecture, MODELS, modelOfArchitecture, type ModelInfo, type ModelName } from './models.js';
import { MidasNet } from './network.js';

/** Every key MidasNet reads, with its shape (no `num_batches_tracked`). */
export function expectedShapes(config: MidasConfig = MIDAS_V2): Map<string, readonly number[]> {
  return new MidasNet(config).stateShapes();
}

/**
 * The file's tensors (see `TensorSource.entry`), after checking every expected key is
 * there with its shape and nothing else is.
 */
export function midasWeights(file: TensorSource, config: MidasConfig = MIDAS_V2): Weights {
  const expected = expectedShapes(config);
  checkWeights(file.shapes(), expected, { what: file.what });
  const out = new Map<string, WeightEntry>();
  for (const name of expected.keys()) out.set(name, file.entry(name));
  return out;
}

/**
 * The model a weights file (its tensor `names`) is run as. A `config` (tests' reduced
 * networks) is taken as given, if the file's architecture is the config's. Otherwise the architecture is read from the file's keys: a `model` name of
 * the other architecture is refused, naming both; without a name, the file decides
 * (v2 for a ResNeXt file: v2 and v2.1 large share the network and the transform).
 * A file of neither architecture runs as `model` (default v2), and the key check
 * then lists what differs.
 */
export function modelForWeights(
  names: Iterable<string>,
  source: string,
  model?: ModelName,
  config?: MidasConfig,
): { info: ModelInfo; config: MidasConfig } {
  const arch = detectArchitecture(names);
  if (config) {
    // A reduced network: its own architecture must still be the file's.
    const info = model ? MODELS[model] : isSmall(config) ? MODELS.small : MODELS.v2;
    if (arch && !configIs(config, arch)) {
      throw new Error(`${source} holds a ${architectureName(modelOfArchitecture(arch).config)} checkpoint, but the given config is ${architectureName(config)}`);
    }
    return { info, config };
  }
  const named = MODELS[model ?? 'v2'];
  if (arch && model && !configIs(named.config, arch)) {
    const held = modelOfArchitecture(arch);
    throw new Error(
      `${source} holds a ${architectureName(held.config)} checkpoint, but model '${model}' is ${architectureName(named.config)}` +
        ` (use model '${held.name}', or name no model to take the file's)`,
    );
  }
  const info = arch && !model ? modelOfArchitecture(arch) : named;
  return { info, config: info.config };
}
