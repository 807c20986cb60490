// The kernel bench still runs and writes its JSON (a smoke test: no timing is asserted).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

it('npm run bench -- kernels --quick runs and reports the ceilings and the headline conv', () => {
  expect(existsSync(path.join(ROOT, 'dist/bench/main.js')), 'run `npm run build` first (npm test does)').toBe(true);
  const json = path.join(mkdtempSync(path.join(os.tmpdir(), 'midas-bench-')), 'kernels.json');
  const r = spawnSync(process.execPath, [path.join(ROOT, 'dist/bench/main.js'), 'kernels', '--quick', '--no-tfjs', '--json', json], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  expect(r.status, r.stderr).toBe(0);
  const out = JSON.parse(readFileSync(json, 'utf8'));
  expect(out.ceilings.fmaGflops).toBeGreaterThan(0);
  expect(out.ceilings.copyGBps).toBeGreaterThan(0);
  const headline = out.rows.find((row: { name: string; impl: string }) => row.name.includes('256->256 @96') && row.impl === 'tiled');
  expect(headline, 'the 3x3 256->256 conv at 96x96 row').toBeDefined();
  expect(headline.gflops).toBeGreaterThan(0);
});
