// The tuner's choices on disk: `$MIDAS_HOME/tuning.json`, one set of tiles per
// adapter (its name and subgroup sizes), so an adapter is tuned once per machine.
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import type { TileConfig } from '../kernels/conv2d_tiled.js';
import type { Runtime } from '../nn/runtime.js';
import { writeFileAtomic } from './outputs.js';
import { midasHome } from './weights.js';

const FORMAT = 'midas-webgpu tuning 1';

export interface AdapterTuning {
  /** Tiles by `tileKey` (weight shape and groups). */
  tiles: Record<string, TileConfig>;
  /** When and at which input size they were last tuned. */
  tuned: string;
  size: number;
}

interface TuningFile {
  format: typeof FORMAT;
  adapters: Record<string, AdapterTuning>;
}

export function tuningFile(): string {
  return path.join(midasHome(), 'tuning.json');
}

/** What the choices are kept under: the adapter, and the subgroup sizes the kernels were chosen for. */
export function adapterKey(rt: Runtime): string {
  return `${rt.adapterName} | subgroups ${rt.subgroupMinSize}-${rt.subgroupMaxSize}`;
}

function isTile(t: unknown): t is TileConfig {
  const o = t as Record<string, unknown>;
  const int = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;
  return typeof t === 'object' && t !== null && int(o['tm']) && (o['tm'] as number) >= 1 && int(o['nv']) && (o['nv'] as number) >= 1 &&
    (o['wgK'] === undefined || (int(o['wgK']) && (o['wgK'] as number) % 4 === 0)) &&
    (o['rows'] === undefined || typeof o['rows'] === 'boolean');
}

function readFile(file: string): TuningFile {
  if (!existsSync(file)) return { format: FORMAT, adapters: {} };
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not a tuning file (${(e as Error).message}); delete it and run \`midas tune\` again`);
  }
  const f = parsed as Partial<TuningFile>;
  if (f?.format !== FORMAT || typeof f.adapters !== 'object' || f.adapters === null) {
    throw new Error(`${file}: not a tuning file of this version (format '${String(f?.format)}', expected '${FORMAT}'); delete it and run \`midas tune\` again`);
  }
  for (const [adapter, a] of Object.entries(f.adapters)) {
    for (const [key, tile] of Object.entries(a?.tiles ?? {})) {
      if (!isTile(tile)) throw new Error(`${file}: adapter '${adapter}', '${key}': not a tile (${JSON.stringify(tile)}); delete the file and run \`midas tune\` again`);
    }
  }
  return f as TuningFile;
}

/** This adapter's tuned tiles, or undefined if it was never tuned here. */
export function readTuning(rt: Runtime, file = tuningFile()): AdapterTuning | undefined {
  return readFile(file).adapters[adapterKey(rt)];
}

/**
 * Adds `tiles` to this adapter's entry (replacing those of the same keys) and writes
 * the file whole with `writeFileAtomic` (temporary file, fsync, rename), so a crash
 * never leaves half of one.
 */
export async function saveTuning(rt: Runtime, tiles: ReadonlyMap<string, TileConfig>, size: number, file = tuningFile()): Promise<AdapterTuning> {
  const all = readFile(file);
  const key = adapterKey(rt);
  const entry: AdapterTuning = {
    tiles: { ...all.adapters[key]?.tiles, ...Object.fromEntries(tiles) },
    tuned: new Date().toISOString(),
    size,
  };
  all.adapters[key] = entry;
  await fs.mkdir(path.dirname(file), { recursive: true });
  writeFileAtomic(file, new TextEncoder().encode(`${JSON.stringify(all, null, 2)}\n`), { overwrite: true });
  return entry;
}
