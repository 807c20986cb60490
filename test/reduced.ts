// The reduced networks of test/fixtures/midas (MiDaS v2's structure and keys) and
// test/fixtures/small (MiDaS v2.1 small's), fewer channels and blocks: their configs,
// weights and the generators' manifests.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { MidasConfig, MidasSmallConfig, MidasV2Config } from '../src/midas/config.js';
// @ts-expect-error plain ESM helpers without type declarations
import { reducedArch } from '../examples/web/serve.mjs';

export interface ReducedFixture<C extends MidasConfig = MidasConfig> {
  /** What the tests call it. */
  name: string;
  dir: URL;
  manifest: { size: number; image: [number, number]; state_dict_entries: number; config: Record<string, unknown> };
  config: C;
  /** The weights (a safetensors file PyTorch's side wrote). */
  weights: string;
}

function fixture<C extends MidasConfig>(name: string, folder: string): ReducedFixture<C> {
  const dir = new URL(`./fixtures/${folder}/`, import.meta.url);
  const text = readFileSync(new URL('manifest.json', dir), 'utf8');
  return {
    name,
    dir,
    manifest: JSON.parse(text) as ReducedFixture['manifest'],
    config: reducedArch(text) as C,
    weights: fileURLToPath(new URL('reduced.safetensors', dir)),
  };
}

export const REDUCED_V2 = fixture<MidasV2Config>('MidasNet (reduced v2)', 'midas');
export const REDUCED_SMALL = fixture<MidasSmallConfig>('MidasNet_small (reduced)', 'small');

export const REDUCED_DIR = REDUCED_V2.dir;
export const REDUCED_MANIFEST = REDUCED_V2.manifest;
export const REDUCED: MidasV2Config = REDUCED_V2.config;
export const REDUCED_WEIGHTS = REDUCED_V2.weights;
