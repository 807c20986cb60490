// The reduced MidasNet of test/fixtures/midas (MiDaS v2's structure and keys, fewer
// channels and blocks): its config, weights and the generator's manifest.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { MidasConfig } from '../src/midas/config.js';

export const REDUCED_DIR = new URL('./fixtures/midas/', import.meta.url);

export const REDUCED_MANIFEST = JSON.parse(readFileSync(new URL('manifest.json', REDUCED_DIR), 'utf8')) as {
  config: { blocks: number[]; planes: number[]; stem: number; groups: number; width_per_group: number; features: number; head: number[] };
  size: number;
  image: [number, number];
  state_dict_entries: number;
};

const c = REDUCED_MANIFEST.config;
export const REDUCED: MidasConfig = {
  blocks: c.blocks as unknown as MidasConfig['blocks'],
  planes: c.planes as unknown as MidasConfig['planes'],
  stemChannels: c.stem,
  groups: c.groups,
  widthPerGroup: c.width_per_group,
  features: c.features,
  head: c.head as unknown as MidasConfig['head'],
};

/** The reduced network's weights (a safetensors file PyTorch's side wrote). */
export const REDUCED_WEIGHTS = fileURLToPath(new URL('reduced.safetensors', REDUCED_DIR));
