// The first prediction's shaders compiled ahead of it. A driver that compiles a
// pipeline at its first dispatch (lavapipe: LLVM, seconds per conv shader) would
// otherwise compile them one after another inside the first forward pass, on one
// thread. Here each shader is dispatched once, empty, as soon as the device is open:
// the compiling overlaps the weights' reading and upload, and shaders split across
// helper devices on the same adapter compile in parallel (each on its own driver
// thread), the main device finding their results in Mesa's on-disk shader cache.
import type { Runtime } from '../nn/runtime.js';
import type { MidasConfig } from './config.js';
import { modelVariants } from './kernel_variants.js';
import type { Precision } from './network.js';

/** The shaders a prediction at `size` runs on `rt` (its tiles, subgroup width and limits), in first-use order. */
export function modelShaders(rt: Runtime, config: MidasConfig, size: number, precision: Precision = 'f32'): string[] {
  return modelVariants(rt, config, size, precision).variants.map((v) => v.shader);
}

/**
 * `codes` in `n` groups of about equal compile cost, taken as the length of the code
 * (the unrolled conv shaders dominate): longest first, each to the lightest group.
 */
export function splitShaders(codes: readonly string[], n: number): string[][] {
  const groups = Array.from({ length: Math.max(1, n) }, () => ({ codes: [] as string[], cost: 0 }));
  for (const code of [...codes].sort((a, b) => b.length - a.length)) {
    const lightest = groups.reduce((a, b) => (b.cost < a.cost ? b : a));
    lightest.codes.push(code);
    lightest.cost += code.length;
  }
  return groups.map((g) => g.codes);
}

/**
 * Compiles `shaders` (see `modelShaders`): a share on `rt` itself and a share on each
 * helper (devices on the same adapter, opened with the same features; the caller
 * destroys them). Resolves when every device has compiled its share.
 */
export async function warmShaders(rt: Runtime, shaders: readonly string[], helpers: readonly Runtime[] = []): Promise<void> {
  const shares = splitShaders(shaders, 1 + helpers.length);
  // Every pipeline first, then the dispatches (see Runtime.prepareWarmUp).
  const submits = [rt, ...helpers].map((device, i) => device.prepareWarmUp(shares[i]!));
  await Promise.all(submits.map((submit) => submit()));
}
