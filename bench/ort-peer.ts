// The peers of `bench e2e` that run the same network on the same weights: PyTorch
// (bench/torch_e2e.py) and ONNX Runtime node, on its WebGPU execution provider (its own
// Dawn, on the same lavapipe adapter as ours) and on its CPU EP. Everything they share
// goes through one temporary folder:
//
//   weights.safetensors  our random weights (bench/random-weights.ts), which torch_e2e.py
//                        loads instead of drawing its own: one model for all of them
//   input-S.bin          our network input at S (the hub transform's output read back
//                        from the GPU, f32 NCHW), the same values for every peer
//   torch-S.bin          PyTorch's model(x) on it; midas-S.onnx: the network exported by
//                        torch.onnx.export at S (written by torch_e2e.py --share)
//   ort-EP-S.bin         ORT's depth on it (bench/ort-run.ts)
//
// The folder holds a few hundred MiB (v2: 400 MiB of weights, and as much per exported
// size) and is removed when the bench ends.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Runtime } from '../src/nn/runtime.js';
import { preprocess, type RgbImage } from '../src/midas/transform.js';
import type { OrtRun } from './ort-run.js';

export type { OrtRun } from './ort-run.js';
export type OrtEp = OrtRun['ep'];
export const ORT_EPS: readonly OrtEp[] = ['webgpu', 'cpu'];

/**
 * Largest |difference| / the reference's range allowed between two f32 depth maps of
 * the same network on the same input. Ours against PyTorch measures about 1e-5 on v2
 * (test/e2e-fullsize.test.ts: 8.4e-6); ORT's kernels sum in other orders too, so ten
 * times that is a real agreement in f32 and far below any wrong weight, layout or op
 * (those show up at 1e-2 to 1).
 */
export const OUTPUT_TOLERANCE = 1e-4;

/**
 * Time each ORT peer may take per size after its warm-up: the runs are cut to what fits
 * (at least 1). ORT's WebGPU EP on lavapipe takes many times ours (its generic conv
 * shaders are not built for an 8-wide CPU "GPU"), and v2 at 384 would otherwise add
 * minutes to the bench for no more information.
 */
export const ORT_BUDGET_MS = 60_000;

const RUNNER = fileURLToPath(new URL('./ort-run.js', import.meta.url));

export function shareDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'midas-e2e-peers-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Our network's input for `image` at `size` (the hub transform on the GPU, as predict
 * runs it), read back and written as f32 NCHW: the tensor every peer's network gets.
 */
export async function writeNetworkInput(gpu: GPU, image: RgbImage, size: number, file: string): Promise<void> {
  const rt = await Runtime.create(gpu);
  try {
    const x = preprocess(rt, image, size);
    const [, h, w, c] = x.shape as [number, number, number, number];
    if (h !== size || w !== size || c !== 3) throw new Error(`network input is ${x.shape.join('x')}, not 1x${size}x${size}x3`);
    const nhwc = await x.read();
    x.dispose();
    const nchw = new Float32Array(nhwc.length);
    for (let p = 0; p < h * w; p++) for (let k = 0; k < 3; k++) nchw[k * h * w + p] = nhwc[3 * p + k]!;
    writeFileSync(file, nchw);
  } finally {
    rt.destroy();
  }
}

export const readF32 = (file: string): Float32Array => {
  const b = readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

/** max |a - ref| / (max ref - min ref); Infinity when the lengths differ. */
export function relativeError(a: Float32Array, ref: Float32Array): number {
  if (a.length !== ref.length) return Infinity;
  let lo = Infinity;
  let hi = -Infinity;
  let err = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!;
    lo = Math.min(lo, r);
    hi = Math.max(hi, r);
    const d = Math.abs(a[i]! - r);
    err = Number.isNaN(d) ? Infinity : Math.max(err, d);
  }
  return err / (hi - lo);
}

export interface OrtOutcome {
  run: OrtRun | null;
  /** Why there is no run (the child's exit and last stderr lines). */
  note: string;
  /** ORT warned that some nodes were not placed on the EP asked for (they run on its CPU EP). */
  cpuFallback: boolean;
}

const FALLBACK = 'Some nodes were not assigned to the preferred execution providers';

/** One EP at one size in a child process (bench/ort-run.ts); its stderr is passed through. */
export function runOrt(ep: OrtEp, size: number, dir: string, runs: number, budgetMs = ORT_BUDGET_MS): Promise<OrtOutcome> {
  const args = [
    RUNNER,
    '--ep', ep,
    '--model', path.join(dir, `midas-${size}.onnx`),
    '--input', path.join(dir, `input-${size}.bin`),
    '--output', path.join(dir, `ort-${ep}-${size}.bin`),
    '--size', String(size),
    '--runs', String(runs),
    '--budget-ms', String(budgetMs),
    '--threads', '2',
  ];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
      process.stderr.write(s);
    });
    child.on('error', (e) => resolve({ run: null, note: `could not start ${RUNNER}: ${e.message}`, cpuFallback: false }));
    child.on('close', (code, signal) => {
      const cpuFallback = stderr.includes(FALLBACK);
      if (code !== 0) {
        const tail = stderr.trim().split('\n').filter((l) => l.trim()).slice(-2).join(' | ');
        resolve({ run: null, note: `ort-run (${ep}, ${size}) failed (exit ${code ?? signal}): ${tail}`, cpuFallback });
        return;
      }
      try {
        resolve({ run: JSON.parse(stdout.trim().split('\n').pop()!) as OrtRun, note: 'ok', cpuFallback });
      } catch (e) {
        resolve({ run: null, note: `ort-run (${ep}, ${size}) printed no JSON: ${(e as Error).message}`, cpuFallback });
      }
    });
  });
}

export interface OrtSizeRun extends OrtRun {
  /** ORT warned that some nodes left the EP asked for (they run on its CPU EP). */
  cpuFallback: boolean;
  /** WebGPU: ORT's Dawn device is lavapipe as ours is (null: ours is not lavapipe, so this cannot tell). */
  sameAdapter: boolean | null;
  /** max |Δ| / range against PyTorch's model(x) on the same input (null: no PyTorch output). */
  errorVsTorch: number | null;
  /** The same against our depth map. */
  errorVsOurs: number | null;
}

/** The peers' side of one size: ORT's runs and every output check. */
export interface PeerSize {
  size: number;
  webgpu: OrtSizeRun | null;
  cpu: OrtSizeRun | null;
  /** Ours against PyTorch's model(x) on the same input (max |Δ| / range; null without it). */
  oursVsTorch: number | null;
  tolerance: number;
  /** Every error measured is within the tolerance, and every ORT run came back. */
  agree: boolean;
  notes: string[];
}

/**
 * After ours and PyTorch (torch_e2e.py --share has exported midas-S.onnx and written
 * torch-S.bin into `dir`): ORT WebGPU then ORT CPU at each size, one child each, never
 * at the same time as anything else, and each output checked against PyTorch's and ours.
 */
export async function runOrtPeers(opts: {
  dir: string;
  sizes: readonly number[];
  runsFor: (size: number) => number;
  /** Our depth map at a size (the bench's last run on the same image). */
  ours: (size: number) => Float32Array | undefined;
  /** Our adapter's name: lavapipe's contains "llvmpipe". */
  adapter: string;
  /** Waits for a quiet CPU before each child. */
  quiet: () => Promise<unknown>;
}): Promise<PeerSize[]> {
  const out: PeerSize[] = [];
  const oursIsLavapipe = /llvmpipe/i.test(opts.adapter);
  for (const size of opts.sizes) {
    const file = (name: string) => path.join(opts.dir, name);
    const torch = existsSync(file(`torch-${size}.bin`)) ? readF32(file(`torch-${size}.bin`)) : null;
    const ours = opts.ours(size) ?? null;
    const p: PeerSize = {
      size,
      webgpu: null,
      cpu: null,
      oursVsTorch: ours && torch ? relativeError(ours, torch) : null,
      tolerance: OUTPUT_TOLERANCE,
      agree: true,
      notes: [],
    };
    if (!existsSync(file(`midas-${size}.onnx`))) {
      p.notes.push(`no ONNX export at ${size} (torch_e2e.py --share did not write it)`);
      p.agree = false;
      out.push(p);
      continue;
    }
    for (const ep of ORT_EPS) {
      await opts.quiet();
      process.stderr.write(`ONNX Runtime ${ep} EP at ${size}x${size}, in a child process...\n`);
      const o = await runOrt(ep, size, opts.dir, opts.runsFor(size));
      if (!o.run) {
        p.notes.push(o.note);
        p.agree = false;
        continue;
      }
      const depth = readF32(file(`ort-${ep}-${size}.bin`));
      const r: OrtSizeRun = {
        ...o.run,
        cpuFallback: o.cpuFallback,
        sameAdapter: ep === 'webgpu' && oursIsLavapipe ? o.run.lavapipeThreads.length > 0 : null,
        errorVsTorch: torch ? relativeError(depth, torch) : null,
        errorVsOurs: ours ? relativeError(depth, ours) : null,
      };
      if (r.sameAdapter === false) p.notes.push(`ORT's WebGPU device at ${size} is not lavapipe (no llvmpipe threads in its process)`);
      if ((r.othersCpuShare ?? 0) > 0.1) p.notes.push(`BUSY: other processes took ${Math.round(100 * r.othersCpuShare!)}% of the CPU during ORT ${ep}'s runs at ${size}: its time is inflated`);
      if (r.runs < r.runsAsked) p.notes.push(`ORT ${ep} at ${size}: ${r.runs} of ${r.runsAsked} runs (warm-up ${Math.round(r.warmupMs)} ms; ${ORT_BUDGET_MS / 1000} s budget)`);
      p[ep] = r;
    }
    const errors = [p.oursVsTorch, p.webgpu?.errorVsTorch, p.webgpu?.errorVsOurs, p.cpu?.errorVsTorch, p.cpu?.errorVsOurs];
    if (errors.some((e) => e !== null && e !== undefined && !(e <= OUTPUT_TOLERANCE))) p.agree = false;
    out.push(p);
  }
  return out;
}

const sci = (e: number | null | undefined) => (e === null || e === undefined ? '-' : e.toExponential(1));

/** The bench's text about the peers: what ORT ran, and the output checks per size. */
export function peerLines(peers: readonly PeerSize[], note: string): string[] {
  if (!peers.length) return [`ONNX Runtime: ${note}`];
  const any = peers.flatMap((p) => [p.webgpu, p.cpu]).find((r) => r) ?? null;
  const webgpu = peers.map((p) => p.webgpu).filter((r): r is OrtSizeRun => r !== null);
  const lines = [
    `ONNX Runtime node ${any?.ortVersion ?? '?'}: session.run on our network input (the network alone, like PyTorch's model(x)), each EP in its own ` +
      `process after ours and PyTorch; runs cut to what fits in ${ORT_BUDGET_MS / 1000} s a size. WebGPU EP: ` +
      (webgpu.length
        ? `${webgpu.every((r) => r.sameAdapter) ? 'on lavapipe, as ours (llvmpipe threads in its process)' : webgpu.some((r) => r.sameAdapter === false) ? 'NOT on lavapipe' : 'adapter not checked (ours is not lavapipe)'}; ` +
          `${webgpu.some((r) => r.cpuFallback) ? 'ORT left some nodes on its CPU EP' : 'every node on the WebGPU EP (no fallback warning)'}`
        : 'no run'),
  ];
  for (const p of peers) {
    lines.push(
      `outputs at ${p.size} (max|Δ| / range, tolerance ${p.tolerance.toExponential(0)}): ours vs PyTorch ${sci(p.oursVsTorch)}; ` +
        `ORT WebGPU vs PyTorch ${sci(p.webgpu?.errorVsTorch)}, vs ours ${sci(p.webgpu?.errorVsOurs)}; ` +
        `ORT CPU vs PyTorch ${sci(p.cpu?.errorVsTorch)}, vs ours ${sci(p.cpu?.errorVsOurs)} ${p.agree ? '(agree)' : '(DISAGREE)'}` +
        ['webgpu', 'cpu']
          .map((ep) => p[ep as OrtEp])
          .filter((r): r is OrtSizeRun => r !== null)
          .map((r) => `; ${r.ep} session ${(r.createMs / 1000).toFixed(1)} s, warm-up ${Math.round(r.warmupMs)} ms, ${r.runs} run(s)`)
          .join(''),
    );
    for (const n of p.notes) lines.push(`  ${n}`);
  }
  return lines;
}
