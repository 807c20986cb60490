// Choosing the adapter (--adapter, MIDAS_ADAPTER, loadMidas({ adapter })) and
// `midas info --all`, with both software Vulkan drivers of this machine listed:
// lavapipe and SwiftShader (VK_ADD_DRIVER_FILES, in child processes).
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdapterNotFoundError, listAdapters, parseAdapterList } from '../src/node/adapters.js';
import { loadMidas } from '../src/node/load.js';
import { REDUCED, REDUCED_WEIGHTS } from './reduced.js';
import { testRuntime } from './gpu.js';
import { assertSwiftShader, midasTwoAdapters } from './two-adapters.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

let home: string;
beforeAll(() => {
  expect(existsSync(path.join(ROOT, 'dist/src/cli/main.js')), 'run `npm run build` first (npm test does)').toBe(true);
  assertSwiftShader();
  home = mkdtempSync(path.join(os.tmpdir(), 'midas-adapters-'));
});
afterAll(() => rmSync(home, { recursive: true, force: true }));

const midasBoth = (args: string[], env?: Record<string, string>) => midasTwoAdapters(args, home, env);

describe("Dawn's adapter list", () => {
  it('is read from the message Dawn rejects an unknown adapter= name with', () => {
    const message = [
      'no suitable backends found',
      'Available adapters:',
      " * backend: 'vulkan', name: 'SwiftShader Device (Subzero)'",
      " * backend: 'vulkan', name: 'llvmpipe (LLVM 15.0.6, 256 bits)'",
    ].join('\n');
    expect(parseAdapterList(message)).toEqual([
      { backend: 'vulkan', name: 'SwiftShader Device (Subzero)' },
      { backend: 'vulkan', name: 'llvmpipe (LLVM 15.0.6, 256 bits)' },
    ]);
    expect(() => parseAdapterList("unrecognised backend 'x'")).toThrow(/cannot list the WebGPU adapters: Dawn answered 'unrecognised backend 'x''/);
  });
});

describe('midas info --all with lavapipe and SwiftShader', () => {
  it('lists both with features, subgroup sizes and limits, and says which the defaults open and why', async () => {
    const r = await midasBoth(['info', '--all']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^2 adapter\(s\), in Dawn's order:/);
    const swift = /^\d\. SwiftShader Device \(Subzero\) {2}\[vulkan, software\]/m;
    const lava = /^\d\. llvmpipe \(LLVM [^)]*\) {2}\[vulkan, software\]/m;
    expect(r.stdout).toMatch(swift);
    expect(r.stdout).toMatch(lava);
    expect(r.stdout).toMatch(/^ {3}subgroups: 4-4 lanes$/m);
    expect(r.stdout).toMatch(/^ {3}subgroups: 8-8 lanes$/m);
    expect(r.stdout).toMatch(/^ {3}limits: +maxStorageBufferBindingSize 1 GiB, .*maxComputeInvocationsPerWorkgroup 256,/m);
    // Dawn lists the added driver first; both are CPU adapters, so it is the default.
    expect(r.stdout).toMatch(/^1\. SwiftShader Device \(Subzero\) .*<- the default$/m);
    expect(r.stdout).toMatch(/^default: SwiftShader Device \(Subzero\)\. openDevice asks Dawn for a 'high-performance' adapter at core feature level .*every adapter here is a software one/m);
  });

  it('with no driver at all: the no-adapter error, exit 1', async () => {
    const r = await midasBoth(['info', '--all'], { VK_ICD_FILENAMES: path.join(home, 'no-driver.json'), VK_ADD_DRIVER_FILES: '' });
    expect(r.status).toBe(1);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('midas'))).toEqual([expect.stringMatching(/^midas info: no WebGPU adapter found \(Dawn lists none\)\. On a machine without a GPU install/)]);
  });

  it('--json: the same as data, lavapipe with shader-f16, SwiftShader without', async () => {
    const j = JSON.parse((await midasBoth(['info', '--all', '--json'])).stdout) as {
      adapters: { name: string; features: string[]; subgroups: number[]; fallback: boolean; limits: Record<string, number> }[];
      defaultIndex: number;
      why: string;
    };
    const names = j.adapters.map((a) => a.name);
    expect(names).toHaveLength(2);
    const swift = j.adapters.find((a) => a.name.startsWith('SwiftShader'))!;
    const lava = j.adapters.find((a) => a.name.startsWith('llvmpipe'))!;
    expect(swift.features).not.toContain('shader-f16');
    expect(lava.features).toContain('shader-f16');
    expect([swift.subgroups, lava.subgroups]).toEqual([[4, 4], [8, 8]]);
    expect(lava.limits['maxStorageBufferBindingSize']).toBe(128 * 2 ** 20);
    expect(j.adapters[j.defaultIndex]!.name).toBe(swift.name);
    expect(j.why).toMatch(/software/);
  });
});

describe('--adapter TEXT and MIDAS_ADAPTER', () => {
  const adapterOf = async (args: string[], env?: Record<string, string>) => JSON.parse((await midasBoth(['info', ...args, '--json'], env)).stdout).adapter as string;

  it('pick the adapter whose name contains TEXT, ignoring case', async () => {
    expect(await adapterOf([])).toMatch(/SwiftShader/); // the default, with both listed
    expect(await adapterOf(['--adapter', 'LLVMPIPE'])).toMatch(/llvmpipe/);
    expect(await adapterOf(['--adapter', 'swiftshader'])).toMatch(/SwiftShader/);
    expect(await adapterOf([], { MIDAS_ADAPTER: 'llvmpipe' })).toMatch(/llvmpipe/);
    // The option wins over the environment; the label (vendor, description) counts too.
    expect(await adapterOf(['--adapter', 'google'], { MIDAS_ADAPTER: 'llvmpipe' })).toMatch(/SwiftShader/);
  });

  it('a TEXT no adapter has: one line naming it and the adapters found, exit 1', async () => {
    for (const args of [['info', '--adapter', 'NVIDIA'], ['tune', '--size', '64', '--adapter', 'NVIDIA']]) {
      const r = await midasBoth(args);
      expect(r.status).toBe(1);
      expect(r.stderr).toBe(`midas ${args[0]}: no WebGPU adapter matches 'NVIDIA' (found: 'SwiftShader Device (Subzero)', 'llvmpipe (LLVM 15.0.6, 256 bits)')`);
    }
    const env = await midasBoth(['info'], { MIDAS_ADAPTER: 'radeon' });
    expect(env.status).toBe(1);
    expect(env.stderr).toMatch(/^midas info: no WebGPU adapter matches 'radeon' \(found: /);
  });

  it('predict fails on an unknown adapter before it looks for weights', async () => {
    const image = path.join(ROOT, 'test/fixtures/images/blocks.jpg');
    const r = await midasBoth(['predict', image, '-o', path.join(home, 'out'), '--adapter', 'nope']);
    expect(r.status).toBe(1);
    // No "downloading ..." line before it, and nothing in $MIDAS_HOME.
    expect(r.stderr).toMatch(/^midas predict: no WebGPU adapter matches 'nope' \(found: [^\n]*\)$/);
    expect(readdirSync(home).filter((f) => f !== 'out')).toEqual([]);
  });

  it('an empty --adapter, and --adapter where no device opens, are usage errors (exit 2)', async () => {
    const empty = await midasBoth(['info', '--adapter', '']);
    expect([empty.status, empty.stderr]).toEqual([2, 'midas info: --adapter needs a name, or a part of one (`midas info --all` lists them)']);
    const summary = await midasBoth(['summary', '--adapter', 'llvmpipe']);
    expect([summary.status, summary.stderr]).toEqual([2, 'midas summary: --adapter applies to --profile only (the summary itself runs on no GPU)']);
  });
});

describe('loadMidas({ adapter })', () => {
  // In this process: whatever drivers the test run was given.
  it('opens the adapter named, ignoring case, and throws AdapterNotFoundError listing those found', async () => {
    const found = await listAdapters();
    expect(found.length).toBeGreaterThan(0);
    const last = found.at(-1)!;
    const model = await loadMidas({ weights: REDUCED_WEIGHTS, config: REDUCED, size: 64, adapter: last.name.toUpperCase(), tune: false });
    try {
      expect(model.runtime.adapterName).toBe(last.label);
    } finally {
      model.dispose();
    }
    const err = await loadMidas({ weights: REDUCED_WEIGHTS, config: REDUCED, size: 64, adapter: 'no such gpu', tune: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterNotFoundError);
    expect((err as Error).message).toBe(`no WebGPU adapter matches 'no such gpu' (found: ${found.map((a) => `'${a.name}'`).join(', ')})`);
  });

  it('refuses adapter and runtime together', async () => {
    const runtime = await testRuntime();
    await expect(loadMidas({ weights: REDUCED_WEIGHTS, config: REDUCED, runtime, adapter: 'llvmpipe' })).rejects.toThrow('loadMidas: give `adapter` or `runtime`, not both');
  });
});
