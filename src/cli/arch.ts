// Which network a command runs: `--model` names one of the hub family; `MIDAS_ARCH`
// (tests) gives a config of another shape; with neither, a given weights file's
// architecture decides, else MiDaS v2.
import { readFileSync } from 'node:fs';
import type { MidasConfig } from '../midas/config.js';
import { MODEL_NAMES, MODELS, type ModelInfo, type ModelName } from '../midas/models.js';
import { UsageError } from './command.js';

/** The `--model` option's usage line, shared by every command that takes it. */
export const MODEL_USAGE = `  -m, --model NAME   v2 (ResNeXt-101, 384), v2.1 (v2.1 large, 384) or small (v2.1 small,
                     EfficientNet-Lite3, 256); picks the official checkpoint and the size
                     (default: the architecture of --weights, else v2)`;

/** The `--model` option for parseOptions. */
export const MODEL_OPTION = { model: { type: 'string', short: 'm' } } as const;

export interface CliModel {
  /** `--model`, if given. */
  name?: ModelName;
  /** `MIDAS_ARCH=file.json`, if set: a config of another shape (the tests' reduced networks). */
  config?: MidasConfig;
}

/** Reads `--model` (a usage error for an unknown name) and `MIDAS_ARCH`. */
export function cliModel(values: Record<string, unknown>): CliModel {
  const name = values['model'] as string | undefined;
  if (name !== undefined && !(MODEL_NAMES as readonly string[]).includes(name)) {
    throw new UsageError(`unknown --model '${name}' (choose from ${MODEL_NAMES.join(', ')})`);
  }
  return { name: name as ModelName | undefined, config: archFromEnv() };
}

/** The model to run without weights to look at: `--model`, else v2; its config, or MIDAS_ARCH's. */
export function modelWithoutWeights(m: CliModel): { info: ModelInfo; config: MidasConfig } {
  const info = MODELS[m.name ?? 'v2'];
  return { info, config: m.config ?? info.config };
}

/** What a command says it runs: the model's title, or the MIDAS_ARCH file's network. */
export function modelTitle(m: CliModel, info: ModelInfo): string {
  return m.config ? `MidasNet (MIDAS_ARCH=${process.env['MIDAS_ARCH']})` : info.title;
}

function archFromEnv(): MidasConfig | undefined {
  const file = process.env['MIDAS_ARCH'];
  if (!file) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as MidasConfig;
  } catch (e) {
    throw new Error(`MIDAS_ARCH=${file}: ${(e as Error).message}`);
  }
}
