// `midas summary`: the network layer by layer, and with --profile, each layer's GPU time.
import type { Weights, WeightEntry } from '../nn/module.js';
import type { MidasConfig } from '../midas/config.js';
import { ADAPTER_OPTION, ADAPTER_USAGE, cliGpu } from './adapter.js';
import { cliModel, MODEL_OPTION, MODEL_USAGE, modelTitle, modelWithoutWeights } from './arch.js';
import { MidasNet } from '../midas/network.js';
import { summarize, type Summary } from '../midas/summary.js';
import { midasWeights, modelForWeights } from '../midas/weights.js';
import { Runtime } from '../nn/runtime.js';
import { readSafetensors, resolveWeights } from '../node/weights.js';
import { quietly } from '../nn/wait.js';
import { UsageError, type Command } from './command.js';
import { parseOptions, parseSize } from './main.js';

const USAGE = `Usage: midas summary [--model NAME] [--size N] [--weights FILE] [--profile [--adapter TEXT]] [--json]

One row per kernel the network runs, in forward order: the checkpoint key of the
module, the op (BatchNorm is folded into the conv before it, ReLUs and residual adds
run in the conv's write, as at run time), output shape, parameters and MACs, for a
square N x N input. Needs no weights and no GPU.

Options:
${MODEL_USAGE}
  -s, --size N       input side, a multiple of 32 (default: the model's, 384 or 256)
  -w, --weights FILE check these weights against the architecture (and profile with them)
      --profile      run the network on the GPU and time every layer with timestamp
                     queries (random weights unless --weights is given); on an adapter
                     without them, each stage on the CPU clock
      --no-timestamps  with --profile: time stages on the CPU clock even where the
                     adapter has timestamp queries
${ADAPTER_USAGE} (with --profile)
      --json         machine-readable output`;

const fmt = (n: number) => n.toLocaleString('en-US');
const si = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} G` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : `${n}`);

/** Random weights of the right shapes (timing does not depend on the values). */
function randomWeights(net: MidasNet): Weights {
  const out = new Map<string, WeightEntry>();
  let seed = 1;
  for (const [key, shape] of net.stateShapes()) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const fanIn = shape.length === 4 ? n / shape[0]! : 1;
    const scale = key.endsWith('running_var') ? 0 : Math.sqrt(1 / fanIn);
    for (let i = 0; i < n; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      data[i] = (seed / 2 ** 32 - 0.5) * scale + (key.endsWith('running_var') ? 1 : 0);
    }
    out.set(key, { shape, data });
  }
  return out;
}

interface Profiled {
  ms: number[];
  totalMs: number;
}

async function profile(gpu: GPU, config: MidasConfig, size: number, weightsPath: string | undefined, expectedRows: number, timestamps: boolean): Promise<Profiled | string> {
  const rt = await Runtime.create(gpu, { wantFeatures: { timestamps } });
  try {
    const net = new MidasNet(config);
    net.prepare(rt, weightsPath ? midasWeights(readSafetensors(weightsPath), config) : randomWeights(net));
    const x = rt.upload(new Float32Array(size * size * 3), [1, size, size, 3]);
    net.forward(x).depth.dispose(); // warm-up: pipelines compiled, buffers pooled
    await rt.sync();
    if (!rt.startProfile()) {
      // No timestamp queries: submit each top-level module on its own and note when
      // the queue reports it done, on the CPU's clock.
      const marks: Promise<[string, number]>[] = [];
      const t0 = performance.now();
      net.forward(x, new Set(), (key) => {
        rt.flush();
        marks.push(quietly(() => rt.device.queue.onSubmittedWorkDone()).then(() => [key, performance.now()]));
      }).depth.dispose();
      const done = await Promise.all(marks);
      let prev = t0;
      const parts = done.map(([key, t]) => {
        const line = `${key} ${(t - prev).toFixed(0)} ms`;
        prev = t;
        return line;
      });
      return `this adapter has no timestamp-query feature: no per-layer times; per stage on the CPU clock: ${parts.join(', ')}; ${(prev - t0).toFixed(0)} ms in all`;
    }
    net.forward(x).depth.dispose();
    const timings = await rt.stopProfile();
    x.dispose();
    net.dispose();
    if (timings.length !== expectedRows) return `profile has ${timings.length} passes, the summary ${expectedRows}: not joined`;
    return { ms: timings.map((t) => t.ms), totalMs: timings.reduce((a, t) => a + t.ms, 0) };
  } finally {
    rt.destroy();
  }
}

function print(s: Summary, prof: Profiled | string | undefined, title: string): void {
  const head = ['#', 'key', 'op', 'output', 'params', 'MACs'];
  if (prof && typeof prof !== 'string') head.push('ms', 'share', 'GFLOP/s');
  const body = s.rows.map((r, i) => {
    const row = [String(i + 1), r.key || '-', r.op.replace(/ @\d+x\d+/, '').replace(/ \[[\dx]+\]/, ''), r.output.join('x'), fmt(r.params), si(r.macs)];
    if (prof && typeof prof !== 'string') {
      const ms = prof.ms[i]!;
      row.push(ms.toFixed(2), `${((100 * ms) / prof.totalMs).toFixed(1)}%`, r.macs ? ((2 * r.macs) / ms / 1e6).toFixed(1) : '');
    }
    return row;
  });
  const widths = head.map((h, c) => Math.max(h.length, ...body.map((r) => r[c]!.length)));
  const line = (r: string[]) => r.map((v, c) => (c >= 4 ? v.padStart(widths[c]!) : v.padEnd(widths[c]!))).join('  ').trimEnd();
  console.log(`${title} at ${s.input[0]}x${s.input[1]} (NHWC; BatchNorm folded into the convs, as it runs)`);
  console.log(line(head));
  for (const r of body) console.log(line(r));
  const [h, w] = s.input;
  console.log('');
  console.log(`parameters: ${fmt(s.params)} (${si(s.params)}) + ${fmt(s.buffers)} BatchNorm buffers = ${fmt(s.params + s.buffers)} numbers in a checkpoint`);
  const used = s.rows.reduce((a, r) => a + r.params, 0);
  if (used !== s.params) {
    console.log(`            ${fmt(s.params - used)} of them are never used: scratch.refinenet4.resConfUnit1 (refinenet4 has one input)`);
  }
  console.log(`compute:    ${si(s.macs)}MAC (${si(2 * s.macs)}FLOP) at ${h}x${w}`);
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  console.log(
    `memory:     weights ${mib(s.weightBytes)}; largest activation ${mib(s.largestActivationBytes)}; ` +
      `peak activations ${mib(s.peakLiveBytes - s.weightBytes)} (${((s.peakLiveBytes - s.weightBytes) / s.largestActivationBytes).toFixed(2)}x the largest)`,
  );
  if (typeof prof === 'string') console.log(`profile:    ${prof}`);
  else if (prof) console.log(`profile:    ${prof.totalMs.toFixed(0)} ms GPU time, ${((2 * s.macs) / prof.totalMs / 1e6).toFixed(1)} GFLOP/s`);
}

export const summaryCommand: Command = {
  name: 'summary',
  summary: 'the network layer by layer: keys, ops, shapes, parameters, MACs (--profile: GPU time)',
  usage: USAGE,
  async run(argv) {
    const { values, positionals } = parseOptions(argv, {
      ...MODEL_OPTION,
      size: { type: 'string', short: 's' },
      weights: { type: 'string', short: 'w' },
      profile: { type: 'boolean' },
      'no-timestamps': { type: 'boolean' },
      ...ADAPTER_OPTION,
      json: { type: 'boolean' },
    });
    if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    if (values['adapter'] !== undefined && !values['profile']) throw new UsageError('--adapter applies to --profile only (the summary itself runs on no GPU)');
    const gpu = values['profile'] ? await cliGpu(values) : undefined;
    const m = cliModel(values);
    let weightsPath: string | undefined;
    let model = modelWithoutWeights(m);
    if (values['weights'] !== undefined) {
      weightsPath = await resolveWeights(values['weights'] as string);
      const file = readSafetensors(weightsPath);
      model = modelForWeights(file.names, weightsPath, m.name, m.config);
      midasWeights(file, model.config); // throws with the differences
    }
    const { config } = model;
    const size = parseSize(values['size'] as string | undefined, model.info.size);
    const s = summarize(config, size, size);
    const prof = values['profile'] ? await profile(gpu!, config, size, weightsPath, s.rows.length, !values['no-timestamps']) : undefined;
    if (values['json']) console.log(JSON.stringify({ ...s, profile: prof }, null, 2));
    else {
      print(s, prof, modelTitle(m, model.info));
      if (weightsPath) console.log(`weights:    ${weightsPath} matches the architecture`);
    }
    return 0;
  },
};
