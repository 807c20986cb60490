// `midas info --check` as a user runs it: the default model's kernels on lavapipe and
// on SwiftShader (4-lane subgroups, no shader-f16), and a kernel made to fail.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertSwiftShader, midasTwoAdapters } from './two-adapters.js';

let home: string;
beforeAll(() => {
  assertSwiftShader();
  home = mkdtempSync(path.join(os.tmpdir(), 'midas-check-'));
});
afterAll(() => rmSync(home, { recursive: true, force: true }));

const midas = (args: string[], env?: Record<string, string>) => midasTwoAdapters(args, home, env);

/** The lines of a check's report: a header, the adapter's label, one per variant, the verdict. */
function report(stdout: string) {
  const lines = stdout.trim().split('\n');
  return { head: lines[0]!, variants: lines.slice(2, -1), verdict: lines.at(-1)! };
}

// A cold Mesa shader cache makes lavapipe compile every variant first: minutes.
const SLOW = 600_000;

describe('midas info --check', () => {
  for (const [adapter, model, expected] of [
    ['llvmpipe', 'v2', /llvmpipe \(LLVM/],
    ['swiftshader', 'v2', /SwiftShader Device/],
    ['swiftshader', 'small', /SwiftShader Device/],
  ] as const) {
    it(`--model ${model} passes on ${adapter}, a line per kernel variant with its error and tolerance`, async () => {
      const r = await midas(['info', '--check', '--adapter', adapter, '--model', model]);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const { head, variants, verdict } = report(r.stdout);
      expect(head).toMatch(new RegExp(`^checking MiDaS ${model === 'v2' ? 'v2 ' : 'v2.1 small'}.* at ${model === 'v2' ? 384 : 256}x\\d+, f32, on `));
      expect(head).toMatch(expected);
      expect(variants.length).toBeGreaterThan(8);
      for (const l of variants) expect(l).toMatch(/^pass {2}\S.* x\d+ +1x\d+x\d+x\d+ +error \S+ +tolerance \S+$/);
      if (model === 'small') expect(variants.some((l) => /^pass {2}depthwise /.test(l))).toBe(true);
      expect(verdict).toMatch(new RegExp(`^pass: all ${variants.length} kernel variants \\(\\d+ dispatches of a prediction\\) on .*\\(\\d+\\.\\d s\\)$`));
    }, SLOW);
  }

  it('a kernel that computes wrongly (MIDAS_CHECK_BREAK) fails by name, exit 1; --json says the same', async () => {
    const r = await midas(['info', '--check', '--adapter', 'llvmpipe'], { MIDAS_CHECK_BREAK: 'maxpool2d' });
    expect(r.status).toBe(1);
    const { variants, verdict } = report(r.stdout);
    expect(variants.filter((l) => l.startsWith('FAIL'))).toEqual([expect.stringMatching(/^FAIL {2}maxpool2d 3x3\/2 +x1 +1x\d+x\d+x64 +error \d\.\de\+0 +tolerance 0$/)]);
    expect(verdict).toMatch(/^FAIL: 1 of \d+ kernel variants .* on llvmpipe \(LLVM [^)]*\): maxpool2d 3x3\/2 \(/);
    const j = await midas(['info', '--check', '--adapter', 'llvmpipe', '--json'], { MIDAS_CHECK_BREAK: 'maxpool2d' });
    expect(j.status).toBe(1);
    const out = JSON.parse(j.stdout) as { ok: boolean; model: string; variants: { name: string; ok: boolean }[] };
    expect(out.ok).toBe(false);
    expect(out.variants.filter((v) => !v.ok).map((v) => v.name)).toEqual(['maxpool2d 3x3/2']);
  }, SLOW);

  it('refuses what cannot be checked: f16 on SwiftShader (exit 1), check options without --check (exit 2)', async () => {
    const f16 = await midas(['info', '--check', '--adapter', 'swiftshader', '--precision', 'f16']);
    expect(f16.status).toBe(1);
    expect(f16.stderr).toMatch(/^midas info: precision 'f16' needs the shader-f16 feature, which google \/ swiftshader .* does not have$/);
    const stray = await midas(['info', '--model', 'small']);
    expect([stray.status, stray.stderr]).toEqual([2, 'midas info: --model applies to --check only']);
  }, SLOW);
});
