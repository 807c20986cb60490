// One ONNX Runtime peer run for `bench e2e`, in its own process (bench/ort-peer.ts spawns
// one per execution provider and size): ORT's WebGPU EP brings its own Dawn, and two Dawn
// instances in one process (ours and ORT's) would share a process-wide Vulkan loader and
// polling; a child per peer also frees each session's memory before the next.
//
//   node dist/bench/ort-run.js --model midas-S.onnx --ep webgpu|cpu --input input-S.bin
//        --size S --runs N [--budget-ms B] [--threads 2] --output ort-EP-S.bin
//
// Times `session.run({ x })` on our network input (f32 NCHW 1x3xSxS), the network alone,
// as the PyTorch column times `model(x)`: one warm-up, then N runs, fewer when the
// next would end past --budget-ms of timed runs (at least 1). Writes the last run's depth
// (f32 1xSxS) and prints one JSON object (OrtRun) on stdout; progress on stderr.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { watchLoad } from './machine.js';
import { median } from './timing.js';

export interface OrtRun {
  ep: 'webgpu' | 'cpu';
  ortVersion: string;
  size: number;
  /** Runs asked for, and run (fewer where the budget cut them). */
  runsAsked: number;
  runs: number;
  ms: number[];
  medianMs: number;
  minMs: number;
  /** InferenceSession.create: read the file, optimize the graph, place the nodes. */
  createMs: number;
  /** The first run (WebGPU: shader compiles). */
  warmupMs: number;
  /**
   * WebGPU: the names of this process's threads that lavapipe started (`llvmpipe-N`,
   * Mesa's rasterizer threads): non-empty only when ORT's Dawn device is lavapipe, the
   * adapter ours runs on here. Empty on another adapter (or the CPU EP).
   */
  lavapipeThreads: string[];
  outputDims: number[];
  /** CPU share other processes took during the timed runs (ORT's threads, lavapipe's included, are this process's). */
  othersCpuShare: number | null;
}

const threadNames = (): string[] => {
  try {
    return readdirSync('/proc/self/task').map((t) => readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim());
  } catch {
    return []; // not Linux
  }
};

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    ep: { type: 'string' },
    input: { type: 'string' },
    size: { type: 'string' },
    runs: { type: 'string', default: '3' },
    'budget-ms': { type: 'string', default: 'Infinity' },
    threads: { type: 'string', default: '2' },
    output: { type: 'string' },
  },
});
const ep = a.ep;
if (ep !== 'webgpu' && ep !== 'cpu') throw new Error('--ep webgpu|cpu');
if (!a.model || !a.input || !a.output || !a.size) throw new Error('--model, --input, --size and --output are needed');
const size = Number(a.size);
const runsAsked = Number(a.runs);
const budgetMs = Number(a['budget-ms']);
const log = (s: string) => process.stderr.write(`  [ORT ${ep} ${size}] ${s}\n`);
const now = () => performance.now();

let t = now();
const session = await ort.InferenceSession.create(a.model, {
  executionProviders: [ep],
  // The CPU EP on as many threads as PyTorch (torch.set_num_threads(2)); for WebGPU it
  // only runs the few nodes left on the CPU, if any.
  intraOpNumThreads: Number(a.threads),
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  // Warnings stay on: ORT says so when nodes fall back from the WebGPU EP to the CPU
  // (the parent looks for that line).
  logSeverityLevel: 2,
});
const createMs = now() - t;
const bytes = readFileSync(a.input);
const data = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
if (data.length !== 3 * size * size) throw new Error(`${a.input}: ${data.length} floats, not 3x${size}x${size}`);
const x = new ort.Tensor('float32', data, [1, 3, size, size]);
const outName = session.outputNames[0]!;

const run = async () => {
  const t0 = now();
  const out = await session.run({ [session.inputNames[0]!]: x });
  const ms = now() - t0;
  return { ms, depth: out[outName]! };
};
const warm = await run();
log(`session ${(createMs / 1000).toFixed(1)} s, warm-up ${warm.ms.toFixed(0)} ms`);
// Not judged by the warm-up: on the WebGPU EP it compiles every shader (20 s for the
// small network at 64 on lavapipe, against 0.35 s a run after it).
const ms: number[] = [];
let last = warm.depth;
let spent = 0;
const watch = watchLoad();
while (ms.length < runsAsked && (ms.length === 0 || spent + ms.at(-1)! <= budgetMs)) {
  const r = await run();
  ms.push(r.ms);
  spent += r.ms;
  last = r.depth;
  log(`run ${ms.length}/${runsAsked}: ${r.ms.toFixed(0)} ms`);
}
const runs = ms.length;
const { othersCpuShare } = watch();
const depth = last.data as Float32Array;
writeFileSync(a.output, new Uint8Array(depth.buffer, depth.byteOffset, depth.byteLength));
const result: OrtRun = {
  ep,
  ortVersion: ort.env.versions.node ?? ort.env.versions.common,
  size,
  runsAsked,
  runs,
  ms,
  medianMs: median(ms),
  minMs: Math.min(...ms),
  createMs,
  warmupMs: warm.ms,
  lavapipeThreads: threadNames().filter((n) => n.startsWith('llvmpipe')),
  outputDims: [...last.dims],
  othersCpuShare,
};
await session.release();
process.stdout.write(JSON.stringify(result) + '\n');
