// Loading the model for a command: which model (--model, MIDAS_ARCH, or the weights
// file's architecture), weights resolved (downloaded, converted) with progress bars
// on a terminal and one-line notes of what happens.
import type { MidasConfig } from '../midas/config.js';
import { MODELS, type ModelInfo } from '../midas/models.js';
import type { Precision } from '../midas/network.js';
import { modelForWeights } from '../midas/weights.js';
import { loadMidas, type MidasModel } from '../node/load.js';
import { resolveWeights, safetensorsNames } from '../node/weights.js';
import type { CliModel } from './arch.js';
import { ProgressBar } from './progress.js';

/** A model ready to load: converted weights on disk, and the network they run as. */
export interface ResolvedModel {
  weights: string;
  info: ModelInfo;
  config: MidasConfig;
}

/**
 * The weights file (downloading the model's official checkpoint, or converting a
 * `.pt`, with progress bars) and the model it runs as; a `--model` that disagrees with
 * the file is an error naming both, before anything reaches the GPU.
 */
export async function resolveModel(weights: string | undefined, m: CliModel, quiet: boolean): Promise<ResolvedModel> {
  const download = new ProgressBar({ label: 'downloading', total: 0, unit: 'bytes' });
  const convert = new ProgressBar({ label: 'converting', total: 0, unit: 'bytes' });
  try {
    const file = await resolveWeights(weights, {
      log: quiet ? undefined : (line) => console.error(line),
      onDownload: quiet ? undefined : (done, total) => download.update(done, '', total),
      onConvert: quiet ? undefined : (p) => convert.update(p.bytesDone, `${p.tensorsDone}/${p.tensorsTotal} tensors`, p.bytesTotal),
    }, MODELS[m.name ?? 'v2'].checkpoint);
    const { info, config } = modelForWeights(await safetensorsNames(file), weights ?? file, m.name, m.config);
    return { weights: file, info, config };
  } finally {
    download.clear();
    convert.clear();
  }
}

export interface CliLoadOptions {
  /** The transform's side; default the model's. */
  size?: number;
  precision?: Precision;
  /** Dawn's name of the adapter to run on (see `cliAdapter`); default Dawn's first. */
  adapter?: string;
}

export async function loadWithProgress(r: ResolvedModel, o: CliLoadOptions = {}): Promise<MidasModel> {
  return loadMidas({ weights: r.weights, model: r.info.name, config: r.config, size: o.size ?? r.info.size, precision: o.precision, adapter: o.adapter });
}
