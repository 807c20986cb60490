// `midas ...` in a child process that sees both software Vulkan drivers of this
// machine: lavapipe (the system's ICD) and SwiftShader (Debian's chromium ships it),
// added with VK_ADD_DRIVER_FILES. Dawn then lists SwiftShader first.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runNode, type Finished } from './spawn.js';

export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const BIN = fileURLToPath(new URL('../bin/midas.js', import.meta.url));

/** Fails (not skips) where SwiftShader is missing, saying what to install. */
export function assertSwiftShader(): void {
  if (!existsSync(SWIFTSHADER_ICD)) throw new Error(`SwiftShader's Vulkan driver ${SWIFTSHADER_ICD} is missing: apt-get install chromium`);
}

/**
 * `node bin/midas.js ...args` with both drivers, $MIDAS_HOME = home, no MIDAS_ADAPTER
 * unless `env` sets one; Dawn's "maxDynamic… artificially reduced" warnings dropped from stderr.
 */
export async function midasTwoAdapters(args: string[], home: string, env: Record<string, string> = {}): Promise<Finished> {
  const base = { ...process.env };
  // Only the system's drivers plus SwiftShader, whatever this process was given.
  delete base['VK_ICD_FILENAMES'];
  delete base['VK_DRIVER_FILES'];
  const r = await runNode([BIN, ...args], {
    env: { ...base, MIDAS_HOME: home, VK_ADD_DRIVER_FILES: SWIFTSHADER_ICD, MIDAS_ADAPTER: '', ...env },
    timeout: 600_000,
  });
  return { ...r, stderr: r.stderr.split('\n').filter((l) => l && !l.startsWith('Warning: maxDynamic')).join('\n') };
}
