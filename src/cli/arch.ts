import { readFileSync } from 'node:fs';
import { MIDAS_V2, type MidasConfig } from '../midas/config.js';

/**
 * `MIDAS_ARCH=file.json`: a MidasConfig of another shape (the tests' reduced
 * networks). Unset: MiDaS v2.
 */
export function archFromEnv(): MidasConfig {
  const file = process.env['MIDAS_ARCH'];
  if (!file) return MIDAS_V2;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as MidasConfig;
  } catch (e) {
    throw new Error(`MIDAS_ARCH=${file}: ${(e as Error).message}`);
  }
}
