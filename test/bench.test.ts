// The benches still run and write their JSON (smoke tests: no timing is asserted), the
// e2e bench's peers (ONNX Runtime's WebGPU and CPU EPs on the network PyTorch exports)
// produce their columns with outputs that agree with ours, and the e2e bench's MAC
// counts (bench/macs.ts, from the architecture) match SPEC and what the network's
// dispatches report.

import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FMA_PROBE, FMA_ROLLED, fmaShader } from '../bench/ceiling.js';
import { ablateLoads } from '../bench/kernels.js';
import { threadUsage } from '../bench/machine.js';
import { chooseTile, conv2dTiled, packConv } from '../src/kernels/conv2d_tiled.js';
import { labelMacs, macsTotals, networkMacs, NETWORK_STAGES, stageOf, type NetworkStage } from '../bench/macs.js';
import { MIDAS_SMALL, MIDAS_V2, type MidasConfig } from '../src/midas/config.js';
import { MidasNet } from '../src/midas/network.js';
import { Runtime } from '../src/nn/runtime.js';
import { testRuntime } from './gpu.js';
import { runNode } from './spawn.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

async function bench(args: string[]): Promise<Record<string, any>> {
  expect(existsSync(path.join(ROOT, 'dist/bench/main.js')), 'run `npm run build` first (npm test does)').toBe(true);
  const json = path.join(mkdtempSync(path.join(os.tmpdir(), 'midas-bench-')), 'out.json');
  const r = await runNode([path.join(ROOT, 'dist/bench/main.js'), ...args, '--json', json], { timeout: 300_000 });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(readFileSync(json, 'utf8'));
}

// The ceiling is FLOPs counted over time: a probe that did less work than counted would
// inflate it (and deflate every share). Each chain must end where `iters x unroll`
// steps of a = a * 0.999 + 0.001 take it (fused or not, within 1e-5).
describe('the FMA ceiling probes', () => {
  for (const shape of [FMA_PROBE, FMA_ROLLED]) {
    it(`${shape.chains} chains x ${shape.unroll} fmas per loop iteration do iters x ${shape.unroll} steps per chain`, async () => {
      const rt = await testRuntime();
      const iters = 50;
      const params = new ArrayBuffer(16);
      new Uint32Array(params, 0, 1)[0] = iters;
      new Float32Array(params, 4, 1)[0] = 0.5;
      const out = rt.empty([64 * 4]);
      rt.dispatch({ label: 'fma probe check', pipeline: rt.pipeline(fmaShader(shape.chains, shape.unroll)), buffers: [out], uniforms: params, workgroups: [1] });
      const got = await out.read();
      out.dispose();
      const f = Math.fround;
      let worst = 0;
      for (let i = 0; i < 64; i++) {
        const s = f(0.5 * (i & 7));
        for (let j = 0; j < 4; j++) {
          let sum = 0;
          for (let a = 0; a < shape.chains; a++) {
            let v = f(f(s + j) + f(a / 10));
            for (let k = 0; k < iters * shape.unroll; k++) v = f(f(v * f(0.999)) + f(0.001));
            sum = a === 0 ? v : f(sum + v);
          }
          worst = Math.max(worst, Math.abs(got[i * 4 + j]! - sum) / Math.abs(sum));
        }
      }
      expect(worst).toBeLessThan(1e-5);
    });
  }
});

it('npm run bench -- kernels --quick runs and reports the ceilings and the headline conv', async () => {
  const out = await bench(['kernels', '--quick', '--no-tfjs']);
  expect(out.ceilings.fmaGflops).toBeGreaterThan(0);
  expect(out.ceilings.fmaRolledGflops).toBeGreaterThan(0);
  expect(out.ceilings.fmaProbe).toBe(`${FMA_PROBE.chains} chains x ${FMA_PROBE.unroll} fmas per loop iteration`);
  expect(out.ceilings.copyGBps).toBeGreaterThan(0);
  const headline = out.rows.find((row: { name: string; impl: string }) => row.name.includes('256->256 @96') && row.impl === 'tiled');
  expect(headline, 'the 3x3 256->256 conv at 96x96 row').toBeDefined();
  expect(headline.gflops).toBeGreaterThan(0);
});

it('npm run bench -- e2e --model small runs (64x64, one run) with MACs that agree, depthwise rows in GB/s and the ONNX Runtime columns', async () => {
  const out = await bench(['e2e', '--model', 'small', '--quick', '--no-torch', '--wait-quiet', '0', '--sizes', '64']);
  expect(out.model).toBe('small');
  const [r] = out.sizes;
  expect(r.size).toBe(64);
  expect(r.medianMs).toBeGreaterThan(0);
  expect(r.macs.total).toBe(macsTotals(networkMacs(MIDAS_SMALL, 64, 64)).total);
  expect(r.depthRange[1]).toBeGreaterThan(r.depthRange[0]);
  if (r.profile) {
    // Every run carries timestamp queries where the adapter has them.
    expect(r.macs.fromDispatches).toBe(r.macs.total);
    const dw = r.profile.kernels.filter((k: { kind: string }) => k.kind.startsWith('depthwise'));
    expect(dw.length).toBeGreaterThan(0);
    for (const k of dw) expect(k.gbps).toBeGreaterThan(0);
    const stages = r.profile.breakdown.map((b: { name: string }) => b.name);
    for (const s of NETWORK_STAGES) expect(stages).toContain(s);
  }
  // --no-torch leaves PyTorch untimed, but it still exports the network for ORT (default on).
  expect(out.ort.note).toBe('ok');
  expect(out.ort.onnxOpset).toBe(17);
  const p = r.peers;
  for (const ep of ['webgpu', 'cpu']) {
    expect(p[ep], ep).not.toBeNull();
    expect(p[ep].runs).toBe(1);
    expect(p[ep].medianMs).toBeGreaterThan(0);
    expect(p[ep].outputDims).toEqual([1, 64, 64]);
    expect(p[ep].errorVsTorch).toBeLessThanOrEqual(p.tolerance);
    expect(p[ep].errorVsOurs).toBeLessThanOrEqual(p.tolerance);
  }
  // ORT's own Dawn opens the adapter ours runs on (lavapipe here: its threads in ORT's process).
  if (/llvmpipe/i.test(out.adapter)) expect(p.webgpu.sameAdapter).toBe(true);
  expect(p.oursVsTorch).toBeLessThanOrEqual(p.tolerance);
  expect(p.agree).toBe(true);
  expect(r.ortWebgpuRatio).toBeCloseTo(r.medianMs / p.webgpu.medianMs, 6);
  expect(r.ortCpuRatio).toBeCloseTo(r.medianMs / p.cpu.medianMs, 6);
}, 300_000);

it('npm run bench -- e2e --video runs (small at 64, 3 frames): frames/s of predict and predictFrames, decode and encode shares', async () => {
  const out = await bench(['e2e', '--video', '--model', 'small', '--sizes', '64', '--frames', '3', '--wait-quiet', '0']);
  expect(out.frames).toBe(3);
  expect(out.results).toHaveLength(1);
  const [r] = out.results;
  expect([r.model, r.size, r.frames]).toEqual(['small', 64, 3]);
  for (const k of ['decode', 'loop', 'pipelined', 'colour', 'encode', 'streamed']) expect(r.ms[k], k).toBeGreaterThan(0);
  expect(r.loopRuns).toHaveLength(1);
  expect(r.fps.pipelined).toBeCloseTo((1000 * 3) / r.ms.pipelined, 6);
  expect(r.gain).toBeCloseTo(r.ms.loop / r.ms.pipelined, 6);
  const sequential = r.ms.decode + r.ms.pipelined + r.ms.colour + r.ms.encode;
  expect(r.share.decode).toBeCloseTo(r.ms.decode / sequential, 6);
  expect(r.share.encode).toBeCloseTo(r.ms.encode / sequential, 6);
});

// The kernel bench's load ablation rewrites the GEMM shader's loads by pattern: if the
// kernel's text changes, the rewrite must fail loudly instead of timing the kernel as is.
describe("bench kernels' load ablation", () => {
  const shaderOf = (lanes: number, k: number): string => {
    const rt = Runtime.meta({}, { subgroupMinSize: lanes, subgroupMaxSize: lanes });
    const shape = [64, 64, k, k] as const;
    const packed = packConv(rt, new Float32Array(64 * 64 * k * k), shape, 1, undefined, chooseTile(rt, shape, 1));
    conv2dTiled(rt, rt.empty([1, 8, 8, 64]), packed, { padding: (k - 1) / 2 }).dispose();
    return rt.records![0]!.shader;
  };
  for (const k of [1, 3]) {
    it(`takes every activation and weight load of the ${k}x${k} GEMM shader (8 lanes) from fixed addresses`, () => {
      const code = shaderOf(8, k);
      expect(code).toMatch(/x\[off0 \+ ci \/ 4u\]/);
      const x = ablateLoads(code, 'x');
      expect(x).not.toMatch(/x\[off\d/);
      expect(x).toContain('x[3u]');
      const w = ablateLoads(code, 'w');
      expect(w).not.toMatch(/w\[wr \+/);
      expect(w).toMatch(/x\[off0 \+ ci \/ 4u\]/);
      const both = ablateLoads(code, 'xw');
      expect(both).not.toMatch(/x\[off\d|w\[wr \+/);
    });
  }
  for (const k of [1, 3]) {
    it(`reads the ${k}x${k} GEMM shader's loads from workgroup memory at the same addresses, or adds a barrier each step`, () => {
      const code = shaderOf(8, k);
      const count = (text: string, re: RegExp) => text.match(re)?.length ?? 0;
      const xLoads = count(code, /x\[off\d+ \+ ci \/ 4u\]/g);
      const wLoads = count(code, /w\[wr \+ wj\d+ \* p\.cout_pad4 \+ wq\d+\]/g);
      expect(xLoads).toBe(4);
      expect(wLoads).toBe(4);
      const both = ablateLoads(code, 'xw-wg');
      expect(both).not.toMatch(/x\[off\d|w\[wr \+/);
      expect(count(both, /xs\[\(off\d+ \+ ci \/ 4u\) & 511u\]/g)).toBe(xLoads);
      expect(count(both, /ws\[\(wr \+ wj\d+ \* p\.cout_pad4 \+ wq\d+\) & 511u\]/g)).toBe(wLoads);
      expect(both).toMatch(/var<workgroup> xs: array<vec4<f32>, 512>;\nvar<workgroup> ws: array<vec4<f32>, 512>;\n@compute/);
      // Each binding keeps a read, or the pipeline's layout would lose it.
      expect(both).toContain('_ = x[0]; _ = w[0];');
      const weightsOnly = ablateLoads(code, 'w-wg');
      expect(count(weightsOnly, /x\[off\d+ \+ ci \/ 4u\]/g)).toBe(xLoads);
      expect(weightsOnly).not.toContain('_ = x[0]');
      const barrier = ablateLoads(code, 'barrier');
      expect(count(barrier, /workgroupBarrier\(\);/g)).toBe(1);
      expect(barrier).toMatch(/ci \+= 4u\) \{\n\s*workgroupBarrier\(\);/);
      expect(barrier.replace(/\n\s*workgroupBarrier\(\);/, '')).toBe(code);
    });
  }
  it('rewrites into shaders the device compiles', async () => {
    const rt = await testRuntime();
    for (const k of [1, 3]) {
      for (const ablate of ['x', 'w', 'xw', 'x-wg', 'w-wg', 'xw-wg', 'barrier'] as const) {
        const module = rt.device.createShaderModule({ code: ablateLoads(shaderOf(8, k), ablate) });
        const errors = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error');
        expect(errors.map((m) => m.message), `${k}x${k} ${ablate}`).toEqual([]);
      }
    }
  });
  it('refuses a shader without subgroup weight loads', () => {
    expect(() => ablateLoads(shaderOf(0, 1), 'w')).toThrow(/no weight loads/);
    expect(() => ablateLoads(shaderOf(0, 1), 'w-wg')).toThrow(/no weight loads/);
  });
});

const G = 1e9;
const round3 = (macs: number) => Math.round(macs / 1e6) / 1e3;

/** MACs per stage of a forward pass on a meta runtime: what the dispatches report, and what their labels say. */
function dispatchMacs(c: MidasConfig, size: number): { reported: Record<NetworkStage, number>; labels: number; outside: number } {
  const rt = Runtime.meta();
  const net = new MidasNet(c);
  net.fuse();
  net.upload(rt);
  net.forward(rt.empty([1, size, size, 3])).depth.dispose();
  const reported = Object.fromEntries(NETWORK_STAGES.map((s) => [s, 0])) as Record<NetworkStage, number>;
  let labels = 0;
  let outside = 0;
  for (const r of rt.records ?? []) {
    const stage = stageOf(r.scope);
    if (stage) reported[stage] += r.macs;
    else outside += r.macs;
    labels += labelMacs(`${r.scope}: ${r.kernel}`);
  }
  return { reported, labels, outside };
}

it('npm run bench -- e2e --cold runs (small at 64, from the suite\'s shader cache): every step timed, the totals are their sums, packing thread against main thread', async () => {
  // --cache-dir: an empty cache would compile every shader of the model (minutes on
  // lavapipe): the smoke test checks the plumbing, the bench itself the first run.
  const cacheDir = process.env['MESA_SHADER_CACHE_DIR'] || path.join(os.homedir(), '.cache');
  const out = await bench(['e2e', '--cold', '--model', 'small', '--sizes', '64', '--runs', '2', '--cache-dir', cacheDir]);
  expect(out.model).toBe('small');
  expect(out.cacheDir).toBe(cacheDir);
  for (const run of [out.cold, out.warmCache, out.coldNoWarmUp, out.warmCacheNoWarmUp]) {
    expect(run.size).toBe(64);
    expect(run.processStart).toBeGreaterThan(0);
    for (const [step, ms] of Object.entries(run.steps)) expect(ms, step).toBeGreaterThanOrEqual(0);
    const s = run.steps;
    for (const ms of [s.openWeights, s.openDevice, s.firstPredict, s.secondPredict]) expect(ms).toBeGreaterThan(0);
    expect(run.weightsReady).toBeCloseTo(s.openWeights + s.foldBatchNorm + s.packAndQueue + s.uploadWait, 6);
    const total = run.processStart + s.readHeader + s.openDevice + s.startWarmUp + s.openWeights + s.foldBatchNorm + s.packAndQueue + s.uploadWait + s.compileWait + s.firstPredict;
    expect(run.toFirstDepth).toBeCloseTo(total, 6);
    expect(run.pipelines.created).toBeGreaterThan(5);
    expect(run.pipelines.shaders).toBeLessThanOrEqual(run.pipelines.created);
    // The main thread's counters over the weights (Linux): writing them to fresh GPU buffers faults pages in.
    const u = run.weightsMainThread;
    expect(u).not.toBeNull();
    expect(u.minorFaults).toBeGreaterThan(0);
    expect(u.userMs + u.systemMs).toBeLessThanOrEqual(run.weightsReady + 20); // one thread, 10 ms ticks
  }
  expect(out.cold.warmUp).toBe(true);
  expect(out.coldNoWarmUp.warmUp).toBe(false);
  // loadMidas's packing thread re-lays out the convs' weights; the comparison rows pack on the main thread.
  for (const run of [out.cold, out.warmCache, out.coldNoWarmUp, out.warmCacheNoWarmUp]) expect(run.packedInThread).toBeGreaterThan(20);
  expect(out.warmCacheMainThreadPacking.packedInThread).toBe(0);
  expect(out.weightsReadyRounds.packingThread).toHaveLength(2);
  expect(out.weightsReadyRounds.mainThread).toHaveLength(2);
  expect(out.weightsReadyRounds.mainThread).toContain(out.warmCacheMainThreadPacking.weightsReady);
});

it("bench/machine.ts's threadUsage counts the page faults of the calling thread's first writes", () => {
  const before = threadUsage()!;
  const pages = 4096;
  const fresh = Buffer.allocUnsafeSlow(pages * 4096); // a fresh mapping: its pages are not there until written
  for (let i = 0; i < fresh.length; i += 4096) fresh[i] = 1;
  const after = threadUsage()!;
  expect(after.minorFaults - before.minorFaults).toBeGreaterThanOrEqual(pages * 0.9);
  expect(after.userMs).toBeGreaterThanOrEqual(before.userMs);
  expect(after.systemMs).toBeGreaterThanOrEqual(before.systemMs);
});

describe('bench/macs.ts', () => {
  it('counts MiDaS_small as SPEC §8 does: 4.595 GMAC at 256 (backbone 1.080, decoder 3.515), 10.339 at 384', () => {
    const at256 = macsTotals(networkMacs(MIDAS_SMALL, 256, 256));
    expect([round3(at256.total), round3(at256.encoder), round3(at256.decoder)]).toEqual([4.595, 1.08, 3.515]);
    expect(round3(macsTotals(networkMacs(MIDAS_SMALL, 384, 384)).total)).toBe(10.339);
  });

  it('counts MiDaS v2 at 384 as 103.4 GMAC (encoder 48.2, decoder 55.2)', () => {
    const t = macsTotals(networkMacs(MIDAS_V2, 384, 384));
    expect([t.total, t.encoder, t.decoder].map((v) => Math.round(v / (G / 10)) / 10)).toEqual([103.4, 48.2, 55.2]);
  });

  it.each([
    ['small', MIDAS_SMALL, 256],
    ['small', MIDAS_SMALL, 384],
    ['small', MIDAS_SMALL, 96],
    ['v2', MIDAS_V2, 256],
  ] as const)('%s at %i: the architecture count per stage equals the MACs the dispatches of a meta forward pass report, and their labels', (_name, c, size) => {
    const arch = networkMacs(c, size, size);
    const d = dispatchMacs(c, size);
    expect(d.reported).toEqual(arch);
    expect(d.outside).toBe(0);
    expect(d.labels).toBe(macsTotals(arch).total);
  });
});
