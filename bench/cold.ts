// `bench e2e --cold`: the first prediction a new user waits for. A fresh process
// (bench/cold-child.ts) loads random weights from a safetensors file in the page cache
// and predicts once and again, with MESA_SHADER_CACHE_DIR pointed at an empty folder:
// every shader is compiled, as on a machine that has never run the model. Then the same
// process again on the folder that run filled (what every later run pays: a few
// rounds, alternated, the median reported). Both with loadMidas's shader warm-up and
// without it (each with its own empty folder), so the compile share and what the
// warm-up saves are differences of columns of one run. The filled-cache rounds also
// run with the convs' weights re-laid out on the main thread rather than in
// loadMidas's packing thread (src/node/conv_packer.ts): what that thread saves.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MODELS, type ModelName } from '../src/midas/models.js';
import type { ColdRun } from './cold-child.js';
import { watchLoad, type MachineLoad } from './machine.js';
import { randomWeights, writeWeights } from './random-weights.js';
import { fmt, table, writeJson } from './report.js';
import { median } from './timing.js';

export interface ColdOptions {
  model: ModelName;
  size: number;
  json: string;
  command: string;
  /** Filled-cache runs of each kind, alternated (the median is reported). */
  rounds: number;
  /**
   * Start from this shader cache folder instead of an empty one (the bench's smoke test
   * runs on the cache the suite has filled). The report then says so: it is no first run.
   */
  cacheDir?: string;
}

export interface ColdResult {
  command: string;
  date: string;
  model: ModelName;
  size: number;
  /** Set when the first run started from this cache folder rather than an empty one. */
  cacheDir: string | null;
  /** Empty cache, warm-up on (loadMidas's default): the first run. */
  cold: ColdRun;
  /** The cache `cold` filled, warm-up on: every later run (of `rounds`, the run with the median time to the first depth map). */
  warmCache: ColdRun;
  /** The same two without the warm-up (shaders compiled inside the first predict). */
  coldNoWarmUp: ColdRun;
  warmCacheNoWarmUp: ColdRun;
  /** Every filled-cache run's time to the first depth map, in order. */
  warmCacheFirstDepth: number[];
  warmCacheNoWarmUpFirstDepth: number[];
  /** The filled cache with the warm-up, the convs' weights re-laid out on the main thread (the median run). */
  warmCacheMainThreadPacking: ColdRun;
  /** Filled cache, warm-up on: weights ready (ms, in run order) with the packing thread (`warmCache`'s rounds) and with the main thread packing. */
  weightsReadyRounds: { packingThread: number[]; mainThread: number[] };
  load: MachineLoad;
}

const CHILD = fileURLToPath(new URL('./cold-child.js', import.meta.url));

/** The cold-start targets of issue 17: the first depth map, and the weights on the GPU from a cached file. */
export const COLD_TARGET_MS = { toFirstDepth: 15_000, weightsReady: 1_500 } as const;

export async function runCold(opts: ColdOptions): Promise<ColdResult> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'midas-cold-'));
  try {
    const weightsFile = path.join(dir, 'weights.safetensors');
    writeWeights(randomWeights(MODELS[opts.model].config), weightsFile);
    readFileSync(weightsFile); // into the page cache, as a second run finds it
    const load = watchLoad();
    const caches = { on: opts.cacheDir ?? path.join(dir, 'mesa-cache'), off: opts.cacheDir ?? path.join(dir, 'mesa-cache-no-warm-up') };
    const first = opts.cacheDir ? `the shader cache in ${opts.cacheDir}` : 'an empty Mesa shader cache';
    process.stderr.write(`${opts.model} at ${opts.size} with the shader warm-up: first run on ${first}...\n`);
    const cold = await child(weightsFile, opts.size, caches.on, true);
    process.stderr.write(`${opts.model} at ${opts.size} without the warm-up: first run on ${first}...\n`);
    const coldNoWarmUp = await child(weightsFile, opts.size, caches.off, false);
    // The filled caches: cheap runs, alternated, the median kept (the host drifts by
    // a quarter from process to process).
    const on: ColdRun[] = [];
    const off: ColdRun[] = [];
    const mainPacking: ColdRun[] = [];
    for (let round = 1; round <= opts.rounds; round++) {
      process.stderr.write(`filled caches, round ${round} of ${opts.rounds}: with and without the warm-up, and packing on the main thread...\n`);
      on.push(await child(weightsFile, opts.size, caches.on, true));
      off.push(await child(weightsFile, opts.size, caches.off, false));
      mainPacking.push(await child(weightsFile, opts.size, caches.on, true, ['--main-thread-packing']));
    }
    const result: ColdResult = {
      command: opts.command,
      date: new Date().toISOString(),
      model: opts.model,
      size: opts.size,
      cacheDir: opts.cacheDir ?? null,
      cold,
      warmCache: medianRun(on),
      coldNoWarmUp,
      warmCacheNoWarmUp: medianRun(off),
      warmCacheFirstDepth: on.map((r) => r.toFirstDepth),
      warmCacheNoWarmUpFirstDepth: off.map((r) => r.toFirstDepth),
      warmCacheMainThreadPacking: medianRun(mainPacking),
      weightsReadyRounds: { packingThread: on.map((r) => r.weightsReady), mainThread: mainPacking.map((r) => r.weightsReady) },
      load: load(),
    };
    console.log(report(result));
    writeJson(opts.json, result);
    console.log(`\nwritten: ${opts.json}`);
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The run whose time to the first depth map is the median (the lower middle one of an even count). */
function medianRun(runs: readonly ColdRun[]): ColdRun {
  const sorted = [...runs].sort((a, b) => a.toFirstDepth - b.toFirstDepth);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

function child(weightsFile: string, size: number, cacheDir: string, warmUp: boolean, flags: string[] = []): Promise<ColdRun> {
  return new Promise((resolve, reject) => {
    // The parent's own Vulkan cache settings must not leak in: the child sees only this folder.
    // $MIDAS_HOME too: the warm-up's marker (src/node/warm.ts) lives with the bench's cache.
    const env = { ...process.env, MESA_SHADER_CACHE_DIR: cacheDir, MESA_SHADER_CACHE_DISABLE: 'false', MIDAS_HOME: path.join(path.dirname(weightsFile), 'home') };
    const p = spawn(process.execPath, [CHILD, weightsFile, String(size), String(Date.now()), ...(warmUp ? [] : ['--no-warm-up']), ...flags], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d));
    p.stderr.on('data', (d: Buffer) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(`cold-child failed (exit ${code}): ${err.trim().split('\n').pop()}`));
      resolve(JSON.parse(out.trim().split('\n').pop()!) as ColdRun);
    });
  });
}

function report(r: ColdResult): string {
  type Step = keyof ColdRun['steps'];
  const runs = [r.cold, r.coldNoWarmUp, r.warmCache, r.warmCacheNoWarmUp];
  const step = (title: string, key: Step) => ({ title, values: runs.map((run) => run.steps[key]) });
  const rows: { title: string; values: number[] }[] = [
    { title: 'process start (Node, modules)', values: runs.map((run) => run.processStart) },
    step('read the header (which network)', 'readHeader'),
    step('open the device', 'openDevice'),
    step('start the shader warm-up', 'startWarmUp'),
    step('open the weights file (page cache)', 'openWeights'),
    step('read BN and biases, fold BN (CPU)', 'foldBatchNorm'),
    step('read, re-lay out, queue conv weights', 'packAndQueue'),
    step('wait for the upload', 'uploadWait'),
    step('wait for the warm-up to compile', 'compileWait'),
    step('first predict', 'firstPredict'),
    { title: '= to the first depth map', values: runs.map((run) => run.toFirstDepth) },
    { title: 'weights ready (read to uploaded)', values: runs.map((run) => run.weightsReady) },
    step('second predict (no compiling)', 'secondPredict'),
  ];
  const compiled = (run: ColdRun) => run.toFirstDepth - r.warmCache.toFirstDepth;
  const lines = [
    `bench e2e --cold: ${MODELS[r.model].title} at ${r.size}x${r.size}, random weights, on ${r.cold.adapter}`,
    `command: ${r.command}   (${r.date.slice(0, 10)})`,
    ...(r.cacheDir ? [`NOT a first run: the first runs started from the shader cache in ${r.cacheDir} (--cache-dir)`] : []),
    '',
    table(rows, [
      { title: 'ms', value: (x) => x.title, align: 'left' },
      { title: 'empty cache', value: (x) => fmt(x.values[0], 4) },
      { title: 'no warm-up', value: (x) => fmt(x.values[1], 4) },
      { title: `filled, median of ${r.warmCacheFirstDepth.length}`, value: (x) => fmt(x.values[2], 4) },
      { title: 'no warm-up', value: (x) => fmt(x.values[3], 4) },
    ]),
    '',
    `filled caches, to the first depth map (ms, in run order): with the warm-up ${r.warmCacheFirstDepth.map((v) => fmt(v, 4)).join(', ')};` +
      ` without ${r.warmCacheNoWarmUpFirstDepth.map((v) => fmt(v, 4)).join(', ')}`,
    `warm-up: ${r.cold.pipelines.shaders} shaders, ${r.cold.helpers} helper device(s) with an empty cache, ${r.warmCache.helpers} with the filled one; pipelines created in` +
      ` ${fmt(r.cold.pipelines.ms, 3)} ms (host side). An empty cache costs ${fmt(compiled(r.cold) / 1000, 3)} s with the warm-up,` +
      ` ${fmt(compiled(r.coldNoWarmUp) / 1000, 3)} s without (to the first depth map, over the filled cache's run with the warm-up)`,
    `targets: first depth map <= ${COLD_TARGET_MS.toFirstDepth / 1000} s with an empty cache: ${fmt(r.cold.toFirstDepth / 1000, 3)} s` +
      ` (${r.cold.toFirstDepth <= COLD_TARGET_MS.toFirstDepth ? 'met' : 'missed'}); weights ready <= ${COLD_TARGET_MS.weightsReady / 1000} s:` +
      ` ${fmt(r.warmCache.weightsReady / 1000, 3)} s (${r.warmCache.weightsReady <= COLD_TARGET_MS.weightsReady ? 'met' : 'missed'})`,
    weightsLine(r),
    weightsThreadLine(r),
    `other processes used ${r.load.othersCpuShare === null ? '?' : (100 * r.load.othersCpuShare).toFixed(0)}% of the CPU meanwhile`,
  ];
  return lines.join('\n');
}

/** What the main thread spent on the weights in the median filled-cache runs, with the packing thread and without. */
function weightsThreadLine(r: ColdResult): string {
  const of = (run: ColdRun) => {
    const u = run.weightsMainThread;
    if (!u) return 'not counted (no /proc/thread-self/stat)';
    return `${u.minorFaults} page faults, CPU ${fmt(u.userMs, 3)} ms user + ${fmt(u.systemMs, 3)} ms system of its ${fmt(run.weightsReady, 4)} ms`;
  };
  return `weights, main thread: with the packing thread ${of(r.warmCache)}; packing itself ${of(r.warmCacheMainThreadPacking)}`;
}

/** The packing thread against the main thread packing, from the same rounds (alternated). */
function weightsLine(r: ColdResult): string {
  const { packingThread, mainThread } = r.weightsReadyRounds;
  const list = (v: readonly number[]) => v.map((x) => fmt(x, 4)).join(', ');
  return (
    `weights ready, filled cache (ms, in run order): packing thread ${list(packingThread)}; main thread packing ${list(mainThread)};` +
    ` medians ${fmt(median(packingThread), 4)} / ${fmt(median(mainThread), 4)} = ${fmt(median(packingThread) / median(mainThread), 3)}`
  );
}
