// The tile tuner: candidates, the choice, where the choices are kept, and that a tuned
// network computes what the built-in one does.

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtinTile, chooseTile, DEFAULT_TILE, subgroupWidth, tileCandidates, tileKey, tilesInUse, useTiles } from '../src/kernels/conv2d_tiled.js';
import { tuneConv, type ConvSpec } from '../src/kernels/tuner.js';
import { MIDAS_V2 } from '../src/midas/config.js';
import { tiledConvs, tuneNetwork } from '../src/midas/tune.js';
import { summarize } from '../src/midas/summary.js';
import { Runtime } from '../src/nn/runtime.js';
import { nodeGpu } from '../src/node/gpu.js';
import { loadMidas } from '../src/node/load.js';
import { adapterKey, readTuning, saveTuning, tuningFile } from '../src/node/tuning.js';
import { plainRuntime, testRuntime } from './gpu.js';
import { maxAbsDiff } from './reference.js';
import { REDUCED, REDUCED_WEIGHTS } from './reduced.js';
import { runNode } from './spawn.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
let rt: Runtime;
let rtPlain: Runtime;
let dir: string;
const savedHome = process.env['MIDAS_HOME'];

beforeAll(async () => {
  rt = await testRuntime();
  rtPlain = await plainRuntime();
  dir = mkdtempSync(path.join(os.tmpdir(), 'midas-tune-'));
  process.env['MIDAS_HOME'] = path.join(dir, 'home');
});
afterAll(() => {
  if (savedHome === undefined) delete process.env['MIDAS_HOME'];
  else process.env['MIDAS_HOME'] = savedHome;
  rmSync(dir, { recursive: true, force: true });
});

const small: ConvSpec = { key: 'test.conv', shape: [64, 32, 1, 1], groups: 1, input: [1, 12, 12, 32], stride: 1, padding: 0 };

describe('candidates and choice', () => {
  it('with subgroups: the wide tiles and 4x8; without: 4x8, and staged in workgroup memory where the input is vec4', () => {
    expect(tileCandidates(rt, [64, 32, 1, 1], 1)).toEqual([{ tm: 4, nv: 8 }, { tm: 4, nv: 4 }, { tm: 4, nv: 2 }, { tm: 3, nv: 8 }]);
    expect(tileCandidates(rtPlain, [64, 32, 1, 1], 1)).toEqual([DEFAULT_TILE, { tm: 4, nv: 2, wgK: 32 }, { tm: 4, nv: 4, wgK: 32 }, { tm: 3, nv: 8, wgK: 32 }]);
    expect(tileCandidates(rtPlain, [64, 3, 7, 7], 1)).toEqual([DEFAULT_TILE]); // the stem reads scalars
    // Grouped: only tiles that divide the channels per group (8 here).
    expect(tileCandidates(rt, [256, 8, 3, 3], 32)).toEqual([{ tm: 4, nv: 2 }]);
  });

  it('picks the fastest candidate by the timer, and reports the built-in one', async () => {
    const cands = tileCandidates(rt, small.shape, 1);
    const fake = [5, 3, 9, 4]; // ms per candidate, in candidate order
    let calls = 0;
    const r = await tuneConv(rt, small, {
      runs: 2,
      timer: async (run) => {
        run().dispose();
        return fake[Math.floor(calls++ / 3)]!; // a compile run, then 2 timed, per candidate
      },
    });
    expect(calls).toBe(3 * cands.length);
    expect(r.best).toEqual({ tile: cands[1], ms: 3 });
    expect(r.timed.map((t) => t.ms)).toEqual([3, 4, 5, 9]);
    expect(r.builtin.tile).toEqual(builtinTile(rt, small.shape, 1));
    expect(r.tileKey).toBe('64x32x1x1/g1');
  });

  it('keeps the built-in tile when the fastest is within the margin of it', async () => {
    const cands = tileCandidates(rt, small.shape, 1);
    expect(builtinTile(rt, small.shape, 1)).toEqual(cands[0]);
    for (const [builtinMs, margin, chosen] of [[3.1, undefined, 0], [3.2, undefined, 1], [3.2, 0.1, 0]] as const) {
      const fake = [builtinMs, 3, 9, 4];
      let calls = 0;
      const timer = async (run: () => { dispose(): void }) => (run().dispose(), fake[Math.floor(calls++ / 2)]!);
      const r = await tuneConv(rt, small, { runs: 1, timer, margin });
      expect(r.best.tile).toEqual(cands[chosen]);
    }
  });

  for (const plain of [false, true]) {
    it(`times every candidate on the GPU${plain ? ' (no subgroups)' : ''}`, async () => {
      const r = await tuneConv(plain ? rtPlain : rt, small, { runs: 1 });
      expect(r.timed).toHaveLength(tileCandidates(plain ? rtPlain : rt, small.shape, 1).length);
      for (const t of r.timed) expect(t.ms).toBeGreaterThan(0);
      expect(r.best.ms).toBeLessThanOrEqual(r.builtin.ms);
    });
  }

  it('chooseTile takes a tuned tile for its key, and the built-in one for others or where the tile does not fit', async () => {
    const fresh = await Runtime.create(nodeGpu());
    try {
      useTiles(fresh, [[tileKey([64, 32, 1, 1], 1), { tm: 2, nv: 4 }], [tileKey([256, 8, 3, 3], 32), { tm: 3, nv: 8 }]]);
      expect(chooseTile(fresh, [64, 32, 1, 1], 1)).toEqual({ tm: 2, nv: 4 });
      expect(chooseTile(fresh, [128, 32, 1, 1], 1)).toEqual(builtinTile(fresh, [128, 32, 1, 1], 1));
      // 32 channels per thread do not divide 8 channels per group.
      expect(chooseTile(fresh, [256, 8, 3, 3], 32)).toEqual(builtinTile(fresh, [256, 8, 3, 3], 32));
      expect(tilesInUse(fresh).size).toBe(2);
      expect(tilesInUse(rt).size).toBe(0); // per runtime
    } finally {
      fresh.destroy();
    }
  });
});

describe('the network', () => {
  it('lists one tiled conv per weight shape, at the site with the most work, with every module it sets', () => {
    const specs = tiledConvs(rt, MIDAS_V2, 384);
    const keys = specs.map((s) => tileKey(s.shape, s.groups));
    expect(new Set(keys).size).toBe(keys.length);
    const byKey = new Map(specs.map((s) => [s.key, s]));
    expect(byKey.get('pretrained.layer3.0.conv3')).toMatchObject({ shape: [1024, 1024, 1, 1], input: [1, 24, 24, 1024], stride: 1 });
    // layer2's grouped 3x3 runs once at stride 2 (layer2.0) and 3 times at stride 1: tuned at stride 1.
    expect(specs.find((s) => keys[specs.indexOf(s)] === '512x16x3x3/g32')).toMatchObject({ stride: 1, input: [1, 48, 48, 512] });
    // The 3x3 256->256 convs of layer1_rn and all four refinenets share a shape: tuned at 96x96, where most of their work is.
    const rcu = specs.find((s) => keys[specs.indexOf(s)] === '256x256x3x3/g1')!;
    expect(rcu).toMatchObject({ key: 'scratch.layer1_rn', input: [1, 96, 96, 256] });
    expect(rcu.keys).toContain('scratch.refinenet4.resConfUnit2.conv1');
    expect(rcu.keys).toHaveLength(1 + 2 + 3 * 4); // two convs per unit; refinenet4 runs one of its two units
    // The naive kernel's convs (none in MiDaS v2 at 384) are not listed; every conv is.
    expect(specs.reduce((n, s) => n + s.keys.length, 0)).toBe(summarize(MIDAS_V2, 384, 384).rows.filter((r) => r.op.startsWith('conv2d')).length);
  });

  it('where the rows kernel can run a conv, it is a candidate beside the GEMM tiles', async () => {
    expect(tileCandidates(rt, [64, 32, 3, 3], 1, true)).toEqual([...tileCandidates(rt, [64, 32, 3, 3], 1), { tm: 4, nv: 8, rows: true }]);
    const spec: ConvSpec = { key: 'test.rows', shape: [32, 16, 3, 3], groups: 1, input: [1, 8, 16, 16], stride: 1, padding: 1 };
    const r = await tuneConv(rt, spec, { runs: 1 });
    expect(r.rowsCan).toBe(true);
    expect(r.timed).toHaveLength(5);
    expect(r.timed.filter((t) => t.tile.rows)).toHaveLength(1);
    // A width the subgroup width does not divide (12 on lavapipe's 8 lanes, 6 on SwiftShader's 4): GEMM only.
    const sg = subgroupWidth(rt);
    expect((await tuneConv(rt, { ...spec, input: [1, 8, sg + sg / 2, 16] }, { runs: 1 })).rowsCan).toBe(false);
  });

  it('tuneNetwork with `only` tunes the weight shapes of the modules under that key, reporting each', async () => {
    const seen: number[] = [];
    const { results, tiles } = await tuneNetwork(rt, REDUCED, 64, { only: 'pretrained.layer3', runs: 1, onConv: (done, total) => seen.push(done, total) });
    const expected = tiledConvs(rt, REDUCED, 64).filter((s) => s.keys.some((k) => k.startsWith('pretrained.layer3.')));
    expect(results.map((r) => r.tileKey)).toEqual(expected.map((s) => tileKey(s.shape, s.groups)));
    expect(seen).toEqual(expected.flatMap((_, i) => [i + 1, expected.length]));
    expect([...tiles.keys()]).toEqual(results.map((r) => r.tileKey));
  });

  it('a network on tuned tiles computes what it does on the built-in ones', async () => {
    const a = await loadMidas({ weights: REDUCED_WEIGHTS, config: REDUCED, size: 128, tune: false });
    const other = await Runtime.create(nodeGpu());
    // Every GEMM conv on a tile other than its built-in one.
    useTiles(other, tiledConvs(other, REDUCED, 128).map((s) => {
      const cands = tileCandidates(other, s.shape, s.groups);
      const builtin = builtinTile(other, s.shape, s.groups);
      return [tileKey(s.shape, s.groups), cands.find((t) => t.nv !== builtin.nv || t.tm !== builtin.tm)!] as const;
    }));
    const b = await loadMidas({ weights: REDUCED_WEIGHTS, config: REDUCED, size: 128, runtime: other, tune: false });
    try {
      const img = { data: new Uint8Array(70 * 50 * 3).map((_, i) => (i * 13) % 256), width: 70, height: 50, channels: 3 as const };
      const [da, db] = [(await a.predict(img)).depth, (await b.predict(img)).depth];
      const range = Math.max(...da) - Math.min(...da);
      expect(maxAbsDiff(da, db) / range).toBeLessThan(1e-5); // only the summation order differs
    } finally {
      a.dispose();
      b.dispose();
      other.destroy();
    }
  });
});

describe('saved tunings', () => {
  it('saves by adapter, merges later tunings, and reads back', async () => {
    const file = path.join(dir, 'a', 'tuning.json');
    expect(readTuning(rt, file)).toBeUndefined();
    await saveTuning(rt, new Map([['64x32x1x1/g1', { tm: 2, nv: 4 }]]), 128, file);
    await saveTuning(rt, new Map([['8x8x3x3/g1', { tm: 4, nv: 2, wgK: 8 }], ['16x8x3x3/g1', { tm: 3, nv: 4, rows: false }]]), 256, file);
    await saveTuning(rtPlain, new Map([['64x32x1x1/g1', { tm: 4, nv: 2, wgK: 32 }]]), 128, file);
    const saved = readTuning(rt, file)!;
    expect(saved.tiles).toEqual({ '64x32x1x1/g1': { tm: 2, nv: 4 }, '8x8x3x3/g1': { tm: 4, nv: 2, wgK: 8 }, '16x8x3x3/g1': { tm: 3, nv: 4, rows: false } });
    expect(saved.size).toBe(256);
    expect(readTuning(rtPlain, file)!.tiles).toEqual({ '64x32x1x1/g1': { tm: 4, nv: 2, wgK: 32 } });
    expect(adapterKey(rt)).not.toBe(adapterKey(rtPlain));
  });

  it('a file that is not a tuning: one line naming it', () => {
    const file = path.join(dir, 'bad.json');
    writeFileSync(file, '{"format": "midas-webgpu tuning 1", "adapters": {"x": {"tiles": {"k": {"tm": 0, "nv": 2}}}}}');
    expect(() => readTuning(rt, file)).toThrow(new RegExp(`^${file}: adapter 'x', 'k': not a tile`));
    writeFileSync(file, '{"format": "midas-webgpu tuning 1", "adapters": {"x": {"tiles": {"k": {"tm": 3, "nv": 2, "rows": "no"}}}}}');
    expect(() => readTuning(rt, file)).toThrow(new RegExp(`^${file}: adapter 'x', 'k': not a tile`));
    writeFileSync(file, 'not json');
    expect(() => readTuning(rt, file)).toThrow(new RegExp(`^${file}: not a tuning file`));
  });

  it('loadMidas({ tune: true }) tunes and saves once; later loads use the saved tiles', async () => {
    expect(existsSync(tuningFile())).toBe(false);
    const a = await loadMidas({ weights: REDUCED_WEIGHTS, config: REDUCED, size: 64, tune: true });
    const saved = readTuning(a.runtime)!;
    expect(Object.keys(saved.tiles).sort()).toEqual(tiledConvs(a.runtime, REDUCED, 64).map((s) => tileKey(s.shape, s.groups)).sort());
    expect(Object.fromEntries(tilesInUse(a.runtime))).toEqual(saved.tiles);
    a.dispose();
    const before = readFileSync(tuningFile(), 'utf8');
    const b = await loadMidas({ weights: REDUCED_WEIGHTS, config: REDUCED, size: 64 });
    expect(Object.fromEntries(tilesInUse(b.runtime))).toEqual(saved.tiles);
    b.dispose();
    const c = await loadMidas({ weights: REDUCED_WEIGHTS, config: REDUCED, size: 64, tune: false });
    expect(tilesInUse(c.runtime).size).toBe(0);
    c.dispose();
    expect(readFileSync(tuningFile(), 'utf8')).toBe(before); // not tuned again
  });
});

describe('midas tune', () => {
  /** `midas <args>` on the reduced network with MIDAS_HOME=home. */
  const midas = async (args: string[], home: string) => {
    writeFileSync(path.join(dir, 'arch.json'), JSON.stringify(REDUCED));
    const env = { ...process.env, MIDAS_ARCH: path.join(dir, 'arch.json'), MIDAS_HOME: home };
    const r = await runNode([path.join(ROOT, 'bin/midas.js'), ...args], { env, timeout: 300_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr.split('\n').filter((l) => !l.startsWith('Warning: maxDynamic')).join('\n') };
  };

  it('times each conv, prints a line per conv and saves the tiles', async () => {
    const home = path.join(dir, 'cli-home');
    const r = await midas(['tune', '--size', '64', '--only', 'pretrained.layer3', '--runs', '1'], home);
    expect(r.stderr.trim()).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^tuning MidasNet \(MIDAS_ARCH=.*\) for .* \| subgroups \d+-\d+ at 64x64$/);
    expect(lines.slice(1, -1).every((l) => /^pretrained\.layer3\.\S+ +\d+x\d+x\dx\d\/g\d+ +built-in \d+x\d+.*best \d+x\d+.* \d+\.\d\dx$/.test(l))).toBe(true);
    expect(lines.at(-1)).toMatch(new RegExp(`^saved ${lines.length - 2} tiles in ${path.join(home, 'tuning.json')}; `));
    const saved = JSON.parse(readFileSync(path.join(home, 'tuning.json'), 'utf8'));
    expect(Object.values(saved.adapters).map((a) => Object.keys((a as { tiles: object }).tiles).length)).toEqual([lines.length - 2]);
  });

  it('midas info says whether this adapter has saved tiles', async () => {
    const home = path.join(dir, 'cli-home'); // tuned by the test above
    const r = await midas(['info'], home);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^tuning: +\\d+ conv tiles saved \\d{4}-\\d\\d-\\d\\d at 64x64 \\(${path.join(home, 'tuning.json')}\\)$`, 'm'));
    const j = JSON.parse((await midas(['info', '--json'], home)).stdout);
    expect(j.tuning).toMatchObject({ size: 64, file: path.join(home, 'tuning.json') });
    expect(j.subgroups).toEqual([rt.subgroupMinSize, rt.subgroupMaxSize]); // [8, 8] on lavapipe, [4, 4] on SwiftShader
    const none = await midas(['info'], path.join(dir, 'empty-home'));
    expect(none.stdout).toMatch(/^tuning: +none saved for this adapter/m);
  });

  for (const [what, args, msg] of [
    ['--runs 0', ['--runs', '0'], /--runs must be a positive integer \(got '0'\)/],
    ['a key that runs no tiled conv', ['--size', '64', '--only', 'nothing.here'], /^midas tune: no conv of the network runs a tiled kernel under 'nothing.here' at 64x64/],
  ] as const) {
    it(`${what}: one line, non-zero exit, nothing saved`, async () => {
      const home = path.join(dir, `cli-bad-${what.length}`);
      const r = await midas(['tune', ...args], home);
      expect(r.status).not.toBe(0);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(msg);
      expect(existsSync(path.join(home, 'tuning.json'))).toBe(false);
    });
  }
});
