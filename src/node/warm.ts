// Which devices compile the first prediction's shaders (src/midas/warm.ts) in Node.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import type { MidasConfig } from '../midas/config.js';
import type { Precision } from '../midas/network.js';
import { modelShaders, warmShaders } from '../midas/warm.js';
import { Runtime } from '../nn/runtime.js';
import { adapterKey } from './tuning.js';
import { midasHome } from './weights.js';

/** More helpers than this gain little: a model has about a dozen long shaders. */
const MAX_HELPERS = 3;

/**
 * Helper devices worth opening on `rt`'s adapter: lavapipe compiles each pipeline at
 * its first dispatch on the device's own thread and keeps the result in Mesa's disk
 * cache, where another device of the process finds it; so one helper per spare core,
 * unless the shaders were compiled before (`compiledBefore`: they are in the cache,
 * and looking them up twice, on a helper and then on the device, costs more than it
 * saves). Other drivers compile when the pipeline is created, or share nothing: none.
 * $MIDAS_WARM_HELPERS sets the number (0: the main device compiles everything).
 */
export function warmHelpers(rt: Runtime, compiledBefore = false): number {
  const asked = process.env['MIDAS_WARM_HELPERS'];
  if (asked !== undefined && asked !== '') {
    const n = Number(asked);
    if (!Number.isInteger(n) || n < 0) throw new Error(`MIDAS_WARM_HELPERS must be a whole number of helper devices (got '${asked}')`);
    return n;
  }
  if (compiledBefore || !/llvmpipe/i.test(rt.adapterName)) return 0;
  if (/^(1|true|yes)$/i.test(process.env['MESA_SHADER_CACHE_DISABLE'] ?? '')) return 0;
  return Math.max(0, Math.min(MAX_HELPERS, availableParallelism() - 1));
}

/**
 * Opens the helpers and submits every warm-up dispatch, then returns: the compiling
 * goes on in the driver's threads while the caller reads and uploads the weights.
 * `done` resolves once all are compiled and the helpers are closed; it never rejects
 * (a failed warm-up leaves the shaders to compile at their first real dispatch).
 * `helpers`: how many helper devices it opened (none where `warmMarker` says these
 * shaders were compiled before).
 */
export async function startWarmUp(
  rt: Runtime,
  gpu: GPU | undefined,
  config: MidasConfig,
  size: number,
  precision: Precision,
): Promise<{ done: Promise<void>; helpers: number }> {
  if (precision !== 'f32' && !rt.features.f16) return { done: Promise.resolve(), helpers: 0 }; // refused by name later
  let shaders: string[];
  try {
    shaders = modelShaders(rt, config, size, precision);
  } catch {
    // A size whose activations exceed the adapter's limits: predict refuses such an
    // image by name (checkInputFits), and smaller images need other shaders anyway.
    return { done: Promise.resolve(), helpers: 0 };
  }
  const marker = warmMarker(rt, shaders);
  const wanted = warmHelpers(rt, existsSync(marker));
  const helpers: Runtime[] = [];
  try {
    if (gpu) for (let i = wanted; i > 0; i--) helpers.push(await Runtime.create(gpu));
  } catch {
    // No second device on this adapter: the main one compiles everything.
  }
  const done = warmShaders(rt, shaders, helpers)
    .then(() => rememberWarm(marker))
    .catch(() => undefined)
    .finally(() => {
      for (const h of helpers) h.destroy();
    });
  return { done, helpers: helpers.length };
}

/**
 * A file in $MIDAS_HOME/warm whose presence says these shaders were compiled on this
 * adapter with this shader cache before (its name: a hash of them). A cache cleared
 * since costs one run without helpers; that run fills the cache again.
 */
export function warmMarker(rt: Runtime, shaders: readonly string[]): string {
  const h = createHash('sha256');
  h.update(`${adapterKey(rt)}\n${process.env['MESA_SHADER_CACHE_DIR'] ?? ''}\n${process.env['XDG_CACHE_HOME'] ?? ''}\n`);
  for (const s of shaders) h.update(s);
  return path.join(midasHome(), 'warm', h.digest('hex').slice(0, 40));
}

function rememberWarm(marker: string): void {
  try {
    mkdirSync(path.dirname(marker), { recursive: true });
    writeFileSync(marker, '');
  } catch {
    // A read-only home: every run then opens its helpers.
  }
}
