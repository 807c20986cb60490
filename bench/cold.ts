// `bench e2e --cold`: the first prediction a new user waits for. A fresh process
// (bench/cold-child.ts) loads random weights from a safetensors file in the page cache
// and predicts once and again, with MESA_SHADER_CACHE_DIR pointed at an empty folder:
// every shader is compiled, as on a machine that has never run the model. Then the same
// process again on the folder that run filled (the warm-cache row: what every later run
// pays), so the compile share is the difference of two columns of one run.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MODELS, type ModelName } from '../src/midas/models.js';
import type { ColdRun } from './cold-child.js';
import { watchLoad, type MachineLoad } from './machine.js';
import { writeWeights } from './ort-peer.js';
import { randomWeights } from './random-weights.js';
import { fmt, table, writeJson } from './report.js';

export interface ColdOptions {
  model: ModelName;
  size: number;
  json: string;
  command: string;
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
  cold: ColdRun;
  warmCache: ColdRun;
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
    const cache = opts.cacheDir ?? path.join(dir, 'mesa-cache');
    const load = watchLoad();
    process.stderr.write(`${opts.model} at ${opts.size}: first run with ${opts.cacheDir ? `the shader cache in ${opts.cacheDir}` : 'an empty Mesa shader cache'}...\n`);
    const cold = await child(weightsFile, opts.size, cache);
    process.stderr.write('the same with the cache it filled...\n');
    const warmCache = await child(weightsFile, opts.size, cache);
    const result: ColdResult = {
      command: opts.command,
      date: new Date().toISOString(),
      model: opts.model,
      size: opts.size,
      cacheDir: opts.cacheDir ?? null,
      cold,
      warmCache,
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

function child(weightsFile: string, size: number, cacheDir: string): Promise<ColdRun> {
  return new Promise((resolve, reject) => {
    // The parent's own Vulkan cache settings must not leak in: the child sees only this folder.
    const env = { ...process.env, MESA_SHADER_CACHE_DIR: cacheDir, MESA_SHADER_CACHE_DISABLE: 'false' };
    const p = spawn(process.execPath, [CHILD, weightsFile, String(size), String(Date.now())], { env, stdio: ['ignore', 'pipe', 'pipe'] });
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
  type Row = { step: string; cold: number; warm: number };
  const s = (run: ColdRun) => run.steps;
  const rows: Row[] = [
    { step: 'process start (Node, modules)', cold: r.cold.processStart, warm: r.warmCache.processStart },
    { step: 'read weights (page cache)', cold: s(r.cold).readWeights, warm: s(r.warmCache).readWeights },
    { step: 'open device', cold: s(r.cold).openDevice, warm: s(r.warmCache).openDevice },
    { step: 'fold BN (CPU)', cold: s(r.cold).foldBatchNorm, warm: s(r.warmCache).foldBatchNorm },
    { step: 're-lay out, queue weights', cold: s(r.cold).packAndQueue, warm: s(r.warmCache).packAndQueue },
    { step: 'wait for upload', cold: s(r.cold).uploadWait, warm: s(r.warmCache).uploadWait },
    { step: 'first predict (pipelines, compile, forward)', cold: s(r.cold).firstPredict, warm: s(r.warmCache).firstPredict },
    { step: '= to the first depth map', cold: r.cold.toFirstDepth, warm: r.warmCache.toFirstDepth },
    { step: 'weights ready (read to uploaded)', cold: r.cold.weightsReady, warm: r.warmCache.weightsReady },
    { step: 'second predict (no compiling)', cold: s(r.cold).secondPredict, warm: s(r.warmCache).secondPredict },
  ];
  const compile = s(r.cold).firstPredict - s(r.cold).secondPredict;
  const lines = [
    `bench e2e --cold: ${MODELS[r.model].title} at ${r.size}x${r.size}, random weights, on ${r.cold.adapter}`,
    `command: ${r.command}   (${r.date.slice(0, 10)})`,
    ...(r.cacheDir ? [`NOT a first run: the first column started from the shader cache in ${r.cacheDir} (--cache-dir)`] : []),
    '',
    table(rows, [
      { title: 'step', value: (x) => x.step, align: 'left' },
      { title: 'empty cache ms', value: (x) => fmt(x.cold, 4) },
      { title: 'warm cache ms', value: (x) => fmt(x.warm, 4) },
    ]),
    '',
    `pipelines: ${r.cold.pipelines.created} from ${r.cold.pipelines.shaders} shaders, created in ${fmt(r.cold.pipelines.ms, 3)} ms (host side;` +
      ` lavapipe compiles at the first dispatch): the first predict spends ${fmt(compile, 3)} ms more than the second` +
      ` with an empty cache, ${fmt(s(r.warmCache).firstPredict - s(r.warmCache).secondPredict, 3)} ms with a warm one`,
    `targets: first depth map <= ${COLD_TARGET_MS.toFirstDepth / 1000} s with an empty cache: ${fmt(r.cold.toFirstDepth / 1000, 3)} s` +
      ` (${r.cold.toFirstDepth <= COLD_TARGET_MS.toFirstDepth ? 'met' : 'missed'}); weights ready <= ${COLD_TARGET_MS.weightsReady / 1000} s:` +
      ` ${fmt(r.warmCache.weightsReady / 1000, 3)} s (${r.warmCache.weightsReady <= COLD_TARGET_MS.weightsReady ? 'met' : 'missed'})`,
    `other processes used ${r.load.othersCpuShare === null ? '?' : (100 * r.load.othersCpuShare).toFixed(0)}% of the CPU meanwhile`,
  ];
  return lines.join('\n');
}
