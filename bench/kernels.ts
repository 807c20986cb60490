// `bench kernels`: every WGSL kernel at the shapes MiDaS v2 runs for a 384x384 input
// (SPEC §2), and MiDaS v2.1 small's depthwise and 1x1 convs at 256x256 (SPEC §8),
// against the adapter's measured FMA ceiling and copy bandwidth. Depthwise convs do
// too little arithmetic per byte for the FMA ceiling to bound them: their rows are
// judged by GB/s against the copy bandwidth (%copy) and leave %FMA blank.
import { Runtime } from '../src/nn/runtime.js';
import type { Tensor } from '../src/nn/tensor.js';
import { conv2dNaive } from '../src/kernels/conv2d.js';
import { chooseTile, conv2dTiled, disposePacked, packConv, tiledSupports, type TileConfig } from '../src/kernels/conv2d_tiled.js';
import { maxpool2d } from '../src/kernels/maxpool2d.js';
import { depthwiseBytes, depthwiseConv2d, depthwiseTile, disposeDepthwise, packDepthwise } from '../src/kernels/depthwise.js';
import { samePadding, type Pad4 } from '../src/kernels/common.js';
import { convGeometry } from '../src/kernels/conv2d.js';
import { resize2d, upsample2x } from '../src/kernels/resize.js';
import { batchnorm2d, IMAGENET_MEAN, IMAGENET_STD, normalize } from '../src/kernels/channelwise.js';
import { add, relu } from '../src/kernels/elementwise.js';
import { measureCeilings, type CeilingResult } from './ceiling.js';
import { benchGpu } from './gpu.js';
import { waitQuiet, watchLoad, type MachineLoad } from './machine.js';
import { measure, median, type Measurement, type RunResult, type TimingMethod } from './timing.js';
import { fmt, table, writeJson, type Column } from './report.js';
import { loadTfjsPeer, measureTfjsConv, tfjsAllocatedBytes, tfjsLiveTensors, trimTfjs, type TfjsPeer } from './tfjs-peer.js';

export interface KernelsOptions {
  json: string;
  quick: boolean;
  /** Only cases whose group or name contains this (case-insensitive). */
  filter?: string;
  /** Await the GPU at once instead of sleeping first (slower on lavapipe: see waitGpu). */
  spin?: boolean;
  /** Do not ask for timestamp queries: time by wall clock. */
  noTimestamps?: boolean;
  /** Before each case, wait up to this many seconds for other processes to leave the CPU. */
  waitQuietS?: number;
  /**
   * Run the tfjs WebGPU backend's conv2d as a same-adapter peer after ours on every
   * groups=1 conv (with `quick`, the headline only). Default: true, unless the
   * environment sets MIDAS_BENCH_NO_TFJS=1.
   */
  tfjs?: boolean;
}

/** A naive conv expected to run longer than this (one run) is skipped. */
const NAIVE_BUDGET_MS = 3000;
/**
 * Kernels shorter than this are timed in batches of back-to-back dispatches in one
 * submit (as a forward pass runs them), about this long per batch.
 */
const BATCH_MS = 50;
/** A tfjs conv estimated to run longer than this (one run) is skipped. */
const TFJS_BUDGET_MS = 6000;
/**
 * tfjs's rate before any tfjs case ran, FLOP/ms: its 3x3 convs over 0.1 GFLOP ran at
 * 4-10 GFLOP/s on a 2-core lavapipe (napped; the low end with other processes busy).
 */
const TFJS_FIRST_RATE = 4e6;

interface ConvCase {
  kind: 'conv';
  group: string;
  name: string;
  /** Input side (square) and channels. */
  size: number;
  cin: number;
  cout: number;
  k: number;
  stride: number;
  groups: number;
  bias?: boolean;
  reluInput?: boolean;
  relu?: boolean;
  relu6?: boolean;
  quick?: boolean;
  headline?: boolean;
  tile?: TileConfig;
  /** Bench only the tiled kernel (the tile sweep). */
  tiledOnly?: boolean;
  /** No tfjs peer row (its fused conv is only timed with ReLU or none). */
  noPeer?: boolean;
  /** What the loads cost: the tiled kernel with its loads rewritten (`ablateLoads`; results wrong on purpose). */
  ablate?: Ablation;
}

/**
 * How `ablateLoads` rewrites the GEMM kernel's loads: activations (x), weights (w) or
 * both read from one fixed address (which the compiler hoists out of the loop); or
 * read from workgroup memory at the same lane- and step-dependent addresses (-wg:
 * what a kernel staging them there would pay to read them, without the staging); or
 * every load kept and a workgroup barrier added to each step (what staging would pay
 * to synchronise, once per step).
 */
type Ablation = 'x' | 'w' | 'xw' | 'x-wg' | 'w-wg' | 'xw-wg' | 'barrier';
const ABLATION_TEXT: Record<Ablation, string> = {
  x: 'activations from one address',
  w: 'weights from one address',
  xw: 'activations and weights from one address',
  'x-wg': 'activations from workgroup memory',
  'w-wg': 'weights from workgroup memory',
  'xw-wg': 'activations and weights from workgroup memory',
  barrier: 'every load, plus a workgroup barrier each step',
};

/** A depthwise conv (groups = channels), with BN folded into a bias and ReLU6, as MiDaS_small runs it. */
interface DepthwiseCase {
  kind: 'dw';
  group: string;
  name: string;
  /** Input side (square) and channels. */
  size: number;
  c: number;
  k: number;
  stride: number;
  quick?: boolean;
}

interface OpSetup {
  shape: string;
  /** Compulsory traffic: every input element read once, every output written once. */
  bytes: number;
  run: () => RunResult;
  dispose: () => void;
}

interface OpCase {
  kind: 'op';
  group: string;
  name: string;
  quick?: boolean;
  setup: (rt: Runtime) => OpSetup;
}

type Case = ConvCase | DepthwiseCase | OpCase;

export interface KernelRow {
  group: string;
  name: string;
  /** `tiled` / `naive` for convs, `wgsl` for the other kernels, `tfjs` for the peer. */
  impl: string;
  shape: string;
  headline?: boolean;
  flop?: number;
  bytes: number;
  method?: TimingMethod;
  /** Whether each run slept before awaiting the GPU (see waitGpu). */
  nap?: boolean;
  /** Timed calls (samples). */
  runs?: number;
  /** Calls per submit. */
  batch?: number;
  passes?: number;
  medianMs?: number;
  minMs?: number;
  wallMedianMs?: number;
  /** From the median time. */
  gflops?: number;
  gbps?: number;
  pctFma?: number;
  pctCopy?: number;
  /** What bounds the kernel: 'copy' rows are judged against the copy bandwidth only (no %FMA). */
  roofline?: 'fma' | 'copy';
  /**
   * Ours: max |tiled - naive| / max |naive| where both ran. tfjs rows: max |tfjs - ours| /
   * max |ours|, ours being `vs`.
   */
  relDiff?: number;
  /** The impl a tfjs row is compared with (`tiled`, or `naive` where tiled did not run). */
  vs?: string;
  /**
   * Our time / tfjs's time for this conv (under 1: ours is faster), both by `ratioBy`;
   * on the tfjs row and on the row it was compared with.
   */
  oursOverTfjs?: number;
  /** Which figures the ratio divides: the medians (same method), or wall medians where the methods differ. */
  ratioBy?: TimingMethod;
  /** tfjs rows: the programs tfjs ran per call (from tf.time). */
  tfjsPrograms?: string[] | null;
  /** tfjs rows: the warm-up call's wall time (pipeline compile and input upload included). */
  tfjsWarmupMs?: number;
  skipped?: string;
  /** CPU share other processes took while this row ran (see MachineLoad). */
  othersCpuShare?: number | null;
  samplesMs?: number[];
  wallSamplesMs?: number[];
}

// ---- the cases -------------------------------------------------------------------

const conv = (group: string, name: string, c: Omit<ConvCase, 'kind' | 'group' | 'name'>): ConvCase => ({
  kind: 'conv', group, name, ...c,
});

function convCases(): ConvCase[] {
  const cases: ConvCase[] = [
    conv('stem', 'conv1 7x7/2 3->64', { size: 384, cin: 3, cout: 64, k: 7, stride: 2, groups: 1, quick: true }),
  ];
  // ResNeXt-101 32x8d: width = out = 4 * planes; the stride-2 grouped conv opens layers 2-4.
  const stages = [
    { name: 'layer1', inC: 64, width: 256, inSize: 96, stride: 1 },
    { name: 'layer2', inC: 256, width: 512, inSize: 96, stride: 2 },
    { name: 'layer3', inC: 512, width: 1024, inSize: 48, stride: 2 },
    { name: 'layer4', inC: 1024, width: 2048, inSize: 24, stride: 2 },
  ];
  for (const s of stages) {
    const out = s.inSize / s.stride;
    cases.push(
      conv(s.name, `conv1 1x1 ${s.inC}->${s.width} (block 1)`, { size: s.inSize, cin: s.inC, cout: s.width, k: 1, stride: 1, groups: 1, relu: true }),
      conv(s.name, `conv2 3x3/${s.stride} g32 ${s.width} (block 1)`, { size: s.inSize, cin: s.width, cout: s.width, k: 3, stride: s.stride, groups: 32, relu: true }),
    );
    if (s.stride !== 1) {
      cases.push(conv(s.name, `conv2 3x3 g32 ${s.width} (blocks 2+)`, { size: out, cin: s.width, cout: s.width, k: 3, stride: 1, groups: 32, relu: true, quick: s.name === 'layer3' }));
    }
    cases.push(
      conv(s.name, `conv3 1x1 ${s.width}->${s.width} (= conv1 of blocks 2+)`, { size: out, cin: s.width, cout: s.width, k: 1, stride: 1, groups: 1, quick: s.name === 'layer3' }),
      conv(s.name, `downsample 1x1/${s.stride} ${s.inC}->${s.width}`, { size: s.inSize, cin: s.inC, cout: s.width, k: 1, stride: s.stride, groups: 1 }),
    );
  }
  cases.push(
    conv('decoder', 'layer4_rn 3x3 2048->256', { size: 12, cin: 2048, cout: 256, k: 3, stride: 1, groups: 1 }),
    conv('decoder', 'layer3_rn 3x3 1024->256', { size: 24, cin: 1024, cout: 256, k: 3, stride: 1, groups: 1 }),
    conv('decoder', 'layer2_rn 3x3 512->256', { size: 48, cin: 512, cout: 256, k: 3, stride: 1, groups: 1 }),
    conv('decoder', 'RCU 3x3 256->256 @12', { size: 12, cin: 256, cout: 256, k: 3, stride: 1, groups: 1, bias: true, reluInput: true }),
    conv('decoder', 'RCU 3x3 256->256 @24', { size: 24, cin: 256, cout: 256, k: 3, stride: 1, groups: 1, bias: true, reluInput: true, quick: true }),
    conv('decoder', 'RCU 3x3 256->256 @48', { size: 48, cin: 256, cout: 256, k: 3, stride: 1, groups: 1, bias: true, reluInput: true }),
    conv('decoder', '3x3 256->256 @96 (layer1_rn, RCU path1)', { size: 96, cin: 256, cout: 256, k: 3, stride: 1, groups: 1, bias: true, reluInput: true, quick: true, headline: true }),
    // The rows kernel on the headline conv, beside the GEMM that runs it by default (TileConfig.rows).
    conv('decoder', '3x3 256->256 @96 on the rows kernel', { size: 96, cin: 256, cout: 256, k: 3, stride: 1, groups: 1, bias: true, reluInput: true, tile: { tm: 4, nv: 8, rows: true }, tiledOnly: true }),
    conv('decoder', 'output_conv.0 3x3 256->128 @192', { size: 192, cin: 256, cout: 128, k: 3, stride: 1, groups: 1, bias: true }),
    conv('decoder', 'output_conv.2 3x3 128->32 @384 +relu', { size: 384, cin: 128, cout: 32, k: 3, stride: 1, groups: 1, bias: true, relu: true }),
    conv('decoder', 'output_conv.4 1x1 32->1 @384 +relu', { size: 384, cin: 32, cout: 1, k: 1, stride: 1, groups: 1, bias: true, relu: true, quick: true }),
  );
  return cases;
}

/**
 * Tile shapes (pixels x 4*nv channels per thread) on layer3's 1x1 1024->1024 conv at
 * 24x24, the shape that takes the most time at 384. Full runs only.
 */
function tileSweep(): ConvCase[] {
  const tiles: TileConfig[] = [
    { tm: 1, nv: 4 }, { tm: 2, nv: 8 }, { tm: 3, nv: 4 }, { tm: 3, nv: 8 }, { tm: 4, nv: 2 }, { tm: 4, nv: 4 }, { tm: 4, nv: 8 }, { tm: 5, nv: 8 },
  ];
  return tiles.map((tile) =>
    conv('tile-sweep', `1x1 1024->1024 @24 tm${tile.tm} nv${tile.nv}`, { size: 24, cin: 1024, cout: 1024, k: 1, stride: 1, groups: 1, tile, tiledOnly: true }),
  );
}

/**
 * What the loads cost the GEMM kernel (full runs only): the 1x1 1024->1024 conv at
 * 24x24 and the headline 3x3, each as is and with its activation loads, its weight
 * loads or both read from one fixed address, which the compiler then hoists out of the
 * loop: what is left is the arithmetic, the subgroup broadcasts and the loop. Then the
 * two parts of staging operands in workgroup memory, the usual GPU design: the same
 * loads from workgroup memory, and a barrier each step of 4 input channels.
 */
function loadAblation(): ConvCase[] {
  const shapes = [
    { label: '1x1 1024->1024 @24', size: 24, cin: 1024, cout: 1024, k: 1, bias: false },
    { label: '3x3 256->256 @96', size: 96, cin: 256, cout: 256, k: 3, bias: true },
  ];
  return shapes.flatMap((s) =>
    ([undefined, 'x', 'w', 'xw', 'x-wg', 'w-wg', 'xw-wg', 'barrier'] as const).map((ablate) =>
      conv('loads', `${s.label}${ablate ? `, ${ABLATION_TEXT[ablate]}` : ', as is'}`, {
        size: s.size, cin: s.cin, cout: s.cout, k: s.k, stride: 1, groups: 1, bias: s.bias, tiledOnly: true, ...(ablate ? { ablate } : {}),
      }),
    ),
  );
}

/**
 * The GEMM shader with the loads `ablate` names rewritten (see `Ablation`): read from
 * one fixed address (x[i] for pixel i, w[r] for slice r), or from a workgroup array
 * at the same address modulo its length. Throws where the shader has none of them (the
 * pattern is the subgroup path's: without subgroups each lane loads every weight
 * itself).
 */
export function ablateLoads(code: string, ablate: Ablation): string {
  let out = code;
  const swap = (re: RegExp, to: string, what: string) => {
    const next = out.replace(re, to);
    if (next === out) throw new Error(`no ${what} in this shader (the subgroup GEMM path's)`);
    out = next;
  };
  const activations = /x\[off(\d+) \+ ci \/ 4u\]/g;
  const weights = /w\[(wr \+ wj(\d+) \* p\.cout_pad4 \+ wq\d+)\]/g;
  if (ablate === 'barrier') {
    swap(/(for \(var ci = 0u; ci < p\.cin_g; ci \+= 4u\) \{)/, '$1\n          workgroupBarrier();', 'step loop of 4 input channels');
    return out;
  }
  const wg = ablate.endsWith('-wg');
  const arrays: string[] = [];
  const uses: string[] = [];
  if (ablate.startsWith('x')) {
    swap(activations, wg ? `xs[(off$1 + ci / 4u) & ${WG_ARRAY - 1}u]` : 'x[$1u]', 'activation loads');
    if (wg) arrays.push(`var<workgroup> xs: array<vec4<f32>, ${WG_ARRAY}>;`);
  }
  if (ablate.includes('w')) {
    const type = /var<storage, read> w: array<(vec4<f(?:16|32)>)>/.exec(out)?.[1] ?? 'vec4<f32>';
    swap(weights, wg ? `ws[($1) & ${WG_ARRAY - 1}u]` : 'w[$2u]', 'weight loads');
    if (wg) arrays.push(`var<workgroup> ws: array<${type}, ${WG_ARRAY}>;`);
  }
  if (wg) {
    // A binding no longer read would leave the pipeline's layout: each keeps one read.
    if (!/\bx\[/.test(out)) uses.push('_ = x[0];');
    if (!/\bw\[/.test(out)) uses.push('_ = w[0];');
    out = out.replace('@compute', `${arrays.join('\n')}\n@compute`).replace(/(fn main\([^\n]*\{)/, `$1\n  ${uses.join(' ')}`);
  }
  return out;
}

/** vec4s per workgroup array of the -wg ablations (8 KB each in f32: both fit lavapipe's 32 KB). */
const WG_ARRAY = 512;

/**
 * MiDaS v2.1 small at 256x256 (SPEC §8): the depthwise convs (TF SAME padding where
 * they stride) and the 1x1 expand (+ReLU6) / project convs around them.
 */
function smallCases(): Case[] {
  const dw = (name: string, size: number, c: number, k: number, stride: number, quick = false): DepthwiseCase => ({
    kind: 'dw', group: 'small dw', name, size, c, k, stride, quick,
  });
  const pw = (name: string, size: number, cin: number, cout: number, relu6: boolean, quick = false): ConvCase =>
    conv('small 1x1', name, { size, cin, cout, k: 1, stride: 1, groups: 1, relu6, noPeer: true, quick });
  return [
    dw('layer1.3.0 conv_dw k3/1 32 @128', 128, 32, 3, 1),
    dw('layer1.4.0 conv_dw k3/2 144 @128->64', 128, 144, 3, 2, true),
    dw('layer1.4.1 conv_dw k3/1 192 @64', 64, 192, 3, 1),
    dw('layer2.0.0 conv_dw k5/2 192 @64->32', 64, 192, 5, 2),
    dw('layer2.0.1 conv_dw k5/1 288 @32', 32, 288, 5, 1),
    dw('layer3.0.0 conv_dw k3/2 288 @32->16', 32, 288, 3, 2),
    dw('layer3.0.1 conv_dw k3/1 576 @16', 16, 576, 3, 1),
    dw('layer3.1.x conv_dw k5/1 816 @16', 16, 816, 5, 1, true),
    dw('layer4.0.0 conv_dw k5/2 816 @16->8', 16, 816, 5, 2),
    dw('layer4.0.x conv_dw k5/1 1392 @8', 8, 1392, 5, 1, true),
    dw('layer4.1.0 conv_dw k3/1 1392 @8', 8, 1392, 3, 1),
    pw('layer1.4.0 conv_pw 24->144 @128 +relu6', 128, 24, 144, true),
    pw('layer3.1.0 conv_pw 96->576 @16 +relu6', 16, 96, 576, true, true),
    pw('layer3.1.0 conv_pwl 576->136 @16', 16, 576, 136, false),
    pw('layer4.0.x conv_pw 232->1392 @8 +relu6', 8, 232, 1392, true, true),
    pw('layer4.0.x conv_pwl 1392->232 @8', 8, 1392, 232, false),
    pw('layer4.1.0 conv_pwl 1392->384 @8', 8, 1392, 384, false),
  ];
}

function opCases(): OpCase[] {
  const F = 4;
  return [
    {
      kind: 'op', group: 'pool', name: 'maxpool 3x3/2', quick: true,
      setup: (rt) => {
        const x = randomTensor(rt, [1, 192, 192, 64]);
        return { shape: '192x192x64 -> 96x96x64', bytes: (192 * 192 + 96 * 96) * 64 * F, run: () => maxpool2d(rt, x), dispose: () => x.dispose() };
      },
    },
    {
      kind: 'op', group: 'resize', name: 'bilinear x2 align_corners=True', quick: true,
      setup: (rt) => {
        const x = randomTensor(rt, [1, 96, 96, 256]);
        return { shape: '96x96x256 -> 192x192', bytes: (96 * 96 + 192 * 192) * 256 * F, run: () => upsample2x(rt, x, true), dispose: () => x.dispose() };
      },
    },
    {
      kind: 'op', group: 'resize', name: 'bilinear x2 align_corners=False',
      setup: (rt) => {
        const x = randomTensor(rt, [1, 192, 192, 128]);
        return { shape: '192x192x128 -> 384x384', bytes: (192 * 192 + 384 * 384) * 128 * F, run: () => upsample2x(rt, x, false), dispose: () => x.dispose() };
      },
    },
    {
      kind: 'op', group: 'resize', name: 'bicubic (output to image size)',
      setup: (rt) => {
        const x = randomTensor(rt, [1, 384, 384, 1]);
        return {
          shape: '384x384x1 -> 1213x1546', bytes: (384 * 384 + 1213 * 1546) * F,
          run: () => resize2d(rt, x, 1213, 1546, { kind: 'bicubic', alignCorners: false }),
          dispose: () => x.dispose(),
        };
      },
    },
    {
      kind: 'op', group: 'resize', name: 'opencv-cubic (input transform)', quick: true,
      setup: (rt) => {
        const x = randomTensor(rt, [1, 1213, 1546, 3]);
        return {
          shape: '1213x1546x3 -> 384x480', bytes: (1213 * 1546 + 384 * 480) * 3 * F,
          run: () => resize2d(rt, x, 384, 480, { kind: 'opencv-cubic' }),
          dispose: () => x.dispose(),
        };
      },
    },
    {
      kind: 'op', group: 'channelwise', name: 'batchnorm2d', quick: true,
      setup: (rt) => {
        const x = randomTensor(rt, [1, 96, 96, 256]);
        const bn = {
          weight: randomTensor(rt, [256]),
          bias: randomTensor(rt, [256]),
          runningMean: randomTensor(rt, [256]),
          runningVar: rt.upload(new Float32Array(256).fill(1), [256]),
        };
        return {
          shape: '96x96x256', bytes: 2 * x.byteLength,
          run: () => batchnorm2d(rt, x, bn),
          dispose: () => [x, ...Object.values(bn)].forEach((t) => t.dispose()),
        };
      },
    },
    {
      kind: 'op', group: 'channelwise', name: 'normalize (mean/std)', quick: true,
      setup: (rt) => {
        const x = randomTensor(rt, [1, 384, 480, 3]);
        return { shape: '384x480x3', bytes: 2 * x.byteLength, run: () => normalize(rt, x, IMAGENET_MEAN, IMAGENET_STD), dispose: () => x.dispose() };
      },
    },
    {
      kind: 'op', group: 'elementwise', name: 'relu', quick: true,
      setup: (rt) => {
        const x = randomTensor(rt, [1, 96, 96, 256]);
        return { shape: '96x96x256', bytes: 2 * x.byteLength, run: () => relu(rt, x), dispose: () => x.dispose() };
      },
    },
    {
      kind: 'op', group: 'elementwise', name: 'add', quick: true,
      setup: (rt) => {
        const a = randomTensor(rt, [1, 96, 96, 256]);
        const b = randomTensor(rt, [1, 96, 96, 256]);
        return { shape: '96x96x256', bytes: 3 * a.byteLength, run: () => add(rt, a, b), dispose: () => (a.dispose(), b.dispose()) };
      },
    },
  ];
}

// ---- helpers ----------------------------------------------------------------------------

let seed = 0x12345678;
/** Deterministic values in [-scale, scale) (xorshift32). */
function randomData(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = ((s >>> 0) / 4294967296 * 2 - 1) * scale;
  }
  seed = s;
  return a;
}

function randomTensor(rt: Runtime, shape: number[], scale = 1): Tensor {
  return rt.upload(randomData(shape.reduce((a, b) => a * b, 1), scale), shape);
}

function convGeom(c: ConvCase) {
  const pad = (c.k - 1) / 2;
  const out = Math.floor((c.size + 2 * pad - c.k) / c.stride) + 1;
  const macs = out * out * c.cout * (c.cin / c.groups) * c.k * c.k;
  const bytes = 4 * (c.size * c.size * c.cin + c.cout * (c.cin / c.groups) * c.k * c.k + out * out * c.cout + (c.bias ? c.cout : 0));
  return { pad, out, macs, flop: 2 * macs, bytes };
}

function convShape(c: ConvCase, out: number): string {
  return `${c.size}x${c.size}x${c.cin} -> ${out}x${out}x${c.cout}`;
}

async function maxRelDiff(a: Tensor, b: Tensor): Promise<number> {
  return relDiff(await a.read(), await b.read());
}

/** max |x - y| / max |y| (y the reference). */
function relDiff(x: Float32Array, y: Float32Array): number {
  if (x.length !== y.length) return NaN;
  let num = 0;
  let den = 0;
  for (let i = 0; i < x.length; i++) {
    num = Math.max(num, Math.abs(x[i]! - y[i]!));
    den = Math.max(den, Math.abs(y[i]!));
  }
  return den > 0 ? num / den : num;
}

function fillRow(row: KernelRow, m: Measurement, ceil: CeilingResult): void {
  row.method = m.method;
  row.nap = m.nap;
  row.runs = m.wallMs.length * m.batch;
  row.batch = m.batch;
  row.passes = m.passes;
  row.medianMs = m.median;
  row.minMs = m.min;
  row.wallMedianMs = median(m.wallMs);
  row.samplesMs = m.ms;
  row.wallSamplesMs = m.wallMs;
  row.gbps = row.bytes / m.median / 1e6;
  row.pctCopy = (100 * row.gbps) / ceil.copy.rate;
  if (row.flop !== undefined) {
    row.gflops = row.flop / m.median / 1e6;
    if (row.roofline !== 'copy') row.pctFma = (100 * row.gflops) / ceil.fma.rate;
  }
}

function progress(row: KernelRow): void {
  const what = row.skipped
    ? `skipped: ${row.skipped}`
    : `${fmt(row.medianMs)} ms` + (row.gflops !== undefined ? `, ${fmt(row.gflops)} GFLOP/s` : `, ${fmt(row.gbps)} GB/s`);
  process.stderr.write(`  ${row.group} | ${row.name} | ${row.impl}: ${what}\n`);
}

/**
 * A depthwise case: the depthwise kernel, then the naive conv (groups = C) on the same
 * data for the result check. GB/s from compulsory bytes (`depthwiseBytes`).
 */
async function runDepthwise(
  rt: Runtime, c: DepthwiseCase, ceil: CeilingResult, quick: boolean, nap: boolean, useTs: boolean,
): Promise<KernelRow[]> {
  const pad: Pad4 | number = c.stride === 2 ? samePadding(c.size, c.size, c.k, c.stride) : (c.k - 1) / 2;
  const shape = [c.c, 1, c.k, c.k] as const;
  const w = randomData(c.c * c.k * c.k, 1 / c.k);
  const b = randomData(c.c, 0.1);
  const x = rt.upload(randomData(c.size * c.size * c.c), [1, c.size, c.size, c.c]);
  const g = convGeometry(x, shape, { stride: c.stride, padding: pad, groups: c.c });
  const t = depthwiseTile(g);
  const base = {
    group: c.group, name: c.name, shape: `${c.size}x${c.size}x${c.c} -> ${g.oh}x${g.ow}x${c.c}`,
    flop: 2 * g.oh * g.ow * c.c * c.k * c.k, bytes: depthwiseBytes(g), roofline: 'copy' as const,
  };
  const opts = { stride: c.stride, padding: pad, relu6: true };
  const repeats = { minRuns: quick ? 1 : 5, maxRuns: quick ? 1 : 30, targetMs: quick ? 0 : 500, keepWarmup: true, nap, batchTargetMs: BATCH_MS };

  const packed = packDepthwise(rt, w, shape, b);
  const watch = watchLoad();
  const m = await measure(rt, () => depthwiseConv2d(rt, x, packed, opts), repeats, useTs);
  const row: KernelRow = { ...base, impl: `depthwise ${t.tx}x${t.ty}/${t.wc}x${t.wx}x${t.wy}` };
  fillRow(row, m, ceil);
  row.othersCpuShare = watch().othersCpuShare;
  const y = m.kept as Tensor;
  disposeDepthwise(packed);

  const wt = rt.upload(w, shape);
  const bt = rt.upload(b, [c.c]);
  const naiveWatch = watchLoad();
  const mn = await measure(rt, () => conv2dNaive(rt, x, wt, { ...opts, groups: c.c, bias: bt }), { ...repeats, maxRuns: quick ? 1 : 5 }, useTs);
  const naiveRow: KernelRow = { ...base, impl: 'naive' };
  fillRow(naiveRow, mn, ceil);
  naiveRow.othersCpuShare = naiveWatch().othersCpuShare;
  const yn = mn.kept as Tensor;
  row.relDiff = naiveRow.relDiff = await maxRelDiff(y, yn);
  for (const tensor of [x, wt, bt, y, yn]) tensor.dispose();
  return [row, naiveRow];
}

// ---- the run ------------------------------------------------------------------------------

export async function runKernels(opts: KernelsOptions): Promise<void> {
  const started = performance.now();
  const stopWatch = watchLoad();
  const { gpu, flags } = benchGpu();
  const rt = await Runtime.create(gpu, opts.noTimestamps ? { wantFeatures: { timestamps: false } } : undefined);
  process.stderr.write(`adapter: ${rt.adapterName}\n`);

  let waitedMs = 0;
  if (opts.waitQuietS) waitedMs += (await waitQuiet(opts.waitQuietS * 1000)) ?? 0;
  process.stderr.write('measuring ceilings...\n');
  const nap = !opts.spin;
  let ceil = await measureCeilings(rt, opts.quick, nap);
  const useTs = ceil.timing.useTimestamps;
  process.stderr.write(
    `  FMA ${fmt(ceil.fma.rate)} GFLOP/s (${fmt(ceil.fmaSpin.rate)} awaited at once; ${fmt(ceil.fmaRolled.rate)} with one fma per chain per loop iteration), copy ${fmt(ceil.copy.rate)} GB/s; ` +
      `timing by ${useTs ? 'timestamp queries' : `wall clock (${ceil.timing.note})`}\n`,
  );

  const filter = opts.filter?.toLowerCase();
  const selected = (c: Case) =>
    (!opts.quick || c.quick === true) && (!filter || `${c.group} ${c.name}`.toLowerCase().includes(filter));
  const cases: Case[] = [...convCases(), ...(opts.quick ? [] : [...tileSweep(), ...loadAblation()]), ...smallCases(), ...opCases()].filter(selected);

  const rows: KernelRow[] = [];
  // The slowest rates seen so far (FLOP/ms), to size repeats and to skip slow naive
  // runs; tiny convs (under 0.1 GFLOP) do not count.
  let tiledRate = 5e6;
  let naiveRate = 1e6;
  let tiledSeen = false;
  let naiveSeen = false;

  // The tfjs peer: loaded at its first case (after our first case has run).
  const tfjsOn = opts.tfjs ?? process.env.MIDAS_BENCH_NO_TFJS !== '1';
  const tfjsWanted = (c: ConvCase) => tfjsOn && c.groups === 1 && !c.tiledOnly && !c.noPeer && (!opts.quick || c.headline === true);
  let tfjs: TfjsPeer | undefined;
  let tfjsError: string | undefined;
  let tfjsLoadMs: number | undefined;
  /** tfjs rates (FLOP/ms) of cases over 0.1 GFLOP: the median sizes the skip, the fastest the first nap. */
  const tfjsRates: number[] = [];

  const runTfjs = async (
    c: ConvCase,
    g: ReturnType<typeof convGeom>,
    base: Pick<KernelRow, 'group' | 'name' | 'shape' | 'flop' | 'bytes' | 'headline'>,
    xData: Float32Array,
    w: Float32Array,
    b: Float32Array | undefined,
    ours: { row: KernelRow; out: Float32Array } | undefined,
  ): Promise<KernelRow> => {
    const row: KernelRow = { ...base, impl: 'tfjs' };
    if (!tfjs && !tfjsError) {
      const t0 = performance.now();
      try {
        tfjs = await loadTfjsPeer(gpu);
        tfjsLoadMs = performance.now() - t0;
        const where = tfjs.adapter === rt.adapterName ? 'the same adapter' : `ANOTHER adapter: ${tfjs.adapter}`;
        process.stderr.write(`  tfjs peer: ${tfjs.version} on ${where} (loaded in ${fmt(tfjsLoadMs)} ms)\n`);
      } catch (e) {
        tfjsError = (e as Error).message;
        process.stderr.write(`  tfjs peer unavailable: ${tfjsError}\n`);
      }
    }
    if (!tfjs) {
      row.skipped = `tfjs unavailable: ${tfjsError}`;
      return row;
    }
    const rate = tfjsRates.length ? median(tfjsRates) : TFJS_FIRST_RATE;
    const est = g.flop / rate;
    if (est > TFJS_BUDGET_MS) {
      row.skipped = `tfjs est. ${fmt(est / 1000, 2)} s per run (at ${fmt(rate / 1e6)} GFLOP/s) > ${TFJS_BUDGET_MS / 1000} s`;
      return row;
    }
    if (opts.waitQuietS) waitedMs += (await waitQuiet(opts.waitQuietS * 1000)) ?? 0;
    const watch = watchLoad();
    const m = await measureTfjsConv(
      tfjs,
      {
        size: c.size, cin: c.cin, cout: c.cout, k: c.k, stride: c.stride, pad: g.pad,
        x: xData, weight: w, bias: b, reluInput: c.reluInput, relu: c.relu,
      },
      {
        // One call per submit (tfjs submits each timed program on its own).
        minRuns: opts.quick ? 1 : c.headline ? 3 : est > 2000 ? 2 : 3,
        maxRuns: opts.quick ? 1 : c.headline ? 3 : est > 2000 ? 2 : 5,
        targetMs: 1000,
        nap,
        timestamps: useTs,
        estimateMs: tfjsRates.length ? g.flop / Math.max(...tfjsRates) : undefined,
      },
    );
    row.othersCpuShare = watch().othersCpuShare;
    // One call per submit: a batch of 1, as many passes as tfjs ran programs.
    fillRow(row, { ...m, batch: 1, passes: m.programs?.length ?? 1 }, ceil);
    row.tfjsPrograms = m.programs;
    row.tfjsWarmupMs = m.warmupMs;
    if (g.flop >= 1e8) tfjsRates.push(g.flop / m.median);
    if (ours) {
      row.vs = ours.row.impl;
      row.relDiff = relDiff(m.output, ours.out);
      const same = ours.row.method === row.method;
      const a = same ? ours.row.medianMs : ours.row.wallMedianMs;
      const t = same ? row.medianMs : row.wallMedianMs;
      if (a !== undefined && t !== undefined) {
        row.oursOverTfjs = a / t;
        row.ratioBy = same ? row.method : 'wall';
        ours.row.oursOverTfjs = row.oursOverTfjs;
        ours.row.ratioBy = row.ratioBy;
      }
    }
    await trimTfjs(tfjs);
    const live = tfjsLiveTensors(tfjs);
    if (live !== 0) process.stderr.write(`  warning: ${live} tfjs tensor(s) still live after the case\n`);
    return row;
  };

  for (const c of cases) {
    if (opts.waitQuietS) waitedMs += (await waitQuiet(opts.waitQuietS * 1000)) ?? 0;
    if (c.kind === 'conv') {
      const g = convGeom(c);
      const tile = c.tile ?? chooseTile(rt, [c.cout, c.cin / c.groups, c.k, c.k], c.groups);
      const base = { group: c.group, name: c.name, shape: convShape(c, g.out), flop: g.flop, bytes: g.bytes, headline: c.headline };
      const w = randomData(c.cout * (c.cin / c.groups) * c.k * c.k, 1 / Math.sqrt((c.cin / c.groups) * c.k * c.k));
      const b = c.bias ? randomData(c.cout, 0.1) : undefined;
      const xData = randomData(c.size * c.size * c.cin);
      const x = rt.upload(xData, [1, c.size, c.size, c.cin]);
      const convOpts = { stride: c.stride, padding: g.pad, reluInput: c.reluInput, relu: c.relu, relu6: c.relu6 };

      // tiled
      let yTiled: Tensor | undefined;
      /** Our output to compare tfjs's with, and the row it came from. */
      let ours: { row: KernelRow; out: Float32Array } | undefined;
      const tiledRow: KernelRow = { ...base, impl: c.tile ? (tile.rows ? 'rows' : `tiled ${tile.tm}x${tile.nv}`) : 'tiled' };
      if (!tiledSupports([c.cout, c.cin / c.groups, c.k, c.k], c.groups, tile)) {
        tiledRow.skipped = `tiled kernel does not support ${c.cout / c.groups} channels per group`;
      } else {
        const packed = packConv(rt, w, [c.cout, c.cin / c.groups, c.k, c.k], c.groups, b, tile);
        const ablate = c.ablate;
        const pipeline = rt.pipeline.bind(rt);
        const run = ablate
          ? () => {
              rt.pipeline = (code, ...rest) => pipeline(ablateLoads(code, ablate), ...rest);
              try {
                return conv2dTiled(rt, x, packed, convOpts);
              } finally {
                rt.pipeline = pipeline;
              }
            }
          : () => conv2dTiled(rt, x, packed, convOpts);
        const watch = watchLoad();
        const est = g.flop / tiledRate;
        // The headline case gets 3 runs whatever it costs; the rest 3-5 runs or ~1 s.
        const repeats = {
          minRuns: opts.quick ? 1 : c.headline ? 3 : est > 1000 ? 1 : 3,
          maxRuns: opts.quick ? 1 : c.headline ? 3 : est > 1000 ? 2 : 5,
          targetMs: 1000,
          keepWarmup: true, // for the comparison with the naive kernel below
          nap,
          batchTargetMs: BATCH_MS,
        };
        let m: Measurement | undefined;
        try {
          m = await measure(rt, run, repeats, useTs);
        } catch (e) {
          // An ablation where the shader has no such loads (no subgroups) is a skipped row.
          if (!ablate) throw e;
          tiledRow.skipped = (e as Error).message;
        }
        if (m) {
          yTiled = m.kept as Tensor;
          fillRow(tiledRow, m, ceil);
          tiledRow.othersCpuShare = watch().othersCpuShare;
          if (g.flop >= 1e8 && !ablate) {
            tiledRate = tiledSeen ? Math.min(tiledRate, g.flop / m.median) : g.flop / m.median;
            tiledSeen = true;
          }
        }
        disposePacked(packed);
        // Fresh (zeroed) buffers for the naive run: a failed naive dispatch must not
        // leave a pooled buffer holding the tiled kernel's result.
        await rt.sync();
        rt.trim();
      }
      rows.push(tiledRow);
      progress(tiledRow);

      // naive
      if (!c.tiledOnly) {
        const naiveRow: KernelRow = { ...base, impl: 'naive' };
        const est = g.flop / naiveRate;
        if (est > NAIVE_BUDGET_MS) {
          naiveRow.skipped = `est. ${fmt(est / 1000, 2)} s per run > ${NAIVE_BUDGET_MS / 1000} s`;
        } else {
          const wt = rt.upload(w, [c.cout, c.cin / c.groups, c.k, c.k]);
          const bt = b ? rt.upload(b, [c.cout]) : undefined;
          const run = () => conv2dNaive(rt, x, wt, { ...convOpts, groups: c.groups, bias: bt });
          const watch = watchLoad();
          const repeats = { minRuns: 1, maxRuns: opts.quick ? 1 : est > 1000 ? 1 : 3, targetMs: 1000, keepWarmup: true, nap, batchTargetMs: BATCH_MS };
          const m = await measure(rt, run, repeats, useTs);
          const y = m.kept as Tensor;
          fillRow(naiveRow, m, ceil);
          naiveRow.othersCpuShare = watch().othersCpuShare;
          if (g.flop >= 1e8) {
            naiveRate = naiveSeen ? Math.min(naiveRate, g.flop / m.median) : g.flop / m.median;
            naiveSeen = true;
          }
          if (yTiled) {
            naiveRow.relDiff = await maxRelDiff(yTiled, y);
            tiledRow.relDiff = naiveRow.relDiff;
          } else if (tfjsWanted(c)) {
            ours = { row: naiveRow, out: await y.read() };
          }
          y.dispose();
          wt.dispose();
          bt?.dispose();
        }
        rows.push(naiveRow);
        progress(naiveRow);
      }
      if (yTiled && tfjsWanted(c)) ours = { row: tiledRow, out: await yTiled.read() };
      yTiled?.dispose();
      x.dispose();

      // tfjs, after ours (our tensors are gone, our queue is idle)
      if (tfjsWanted(c)) {
        await rt.sync();
        rt.trim();
        const row = await runTfjs(c, g, base, xData, w, b, ours);
        rows.push(row);
        progress(row);
      }
    } else if (c.kind === 'dw') {
      rows.push(...(await runDepthwise(rt, c, ceil, opts.quick, nap, useTs)));
      rows.slice(-2).forEach(progress);
    } else {
      const s = c.setup(rt);
      const row: KernelRow = { group: c.group, name: c.name, impl: 'wgsl', shape: s.shape, bytes: s.bytes };
      const watch = watchLoad();
      const repeats = { minRuns: opts.quick ? 1 : 3, maxRuns: opts.quick ? 1 : 20, targetMs: opts.quick ? 0 : 500, nap, batchTargetMs: BATCH_MS };
      const m = await measure(rt, s.run, repeats, useTs);
      fillRow(row, m, ceil);
      row.othersCpuShare = watch().othersCpuShare;
      s.dispose();
      rows.push(row);
      progress(row);
    }
    await rt.sync();
    rt.trim();
  }

  // The machine's speed drifts (a shared host): measured again at the end, the best of
  // the two is the ceiling, so a slow moment at the start cannot inflate the shares.
  process.stderr.write('measuring ceilings again...\n');
  const ceilStart = ceil;
  const ceilEnd = await measureCeilings(rt, opts.quick, nap);
  ceil = {
    ...ceil,
    fma: ceilEnd.fma.rate > ceil.fma.rate ? ceilEnd.fma : ceil.fma,
    fmaSpin: ceilEnd.fmaSpin.rate > ceil.fmaSpin.rate ? ceilEnd.fmaSpin : ceil.fmaSpin,
    fmaRolled: ceilEnd.fmaRolled.rate > ceil.fmaRolled.rate ? ceilEnd.fmaRolled : ceil.fmaRolled,
    copy: ceilEnd.copy.rate > ceil.copy.rate ? ceilEnd.copy : ceil.copy,
  };
  for (const row of rows) {
    if (row.gbps !== undefined) row.pctCopy = (100 * row.gbps) / ceil.copy.rate;
    if (row.gflops !== undefined && row.roofline !== 'copy') row.pctFma = (100 * row.gflops) / ceil.fma.rate;
  }
  const ceilTries = { fmaGflops: [ceilStart.fma.rate, ceilEnd.fma.rate], copyGBps: [ceilStart.copy.rate, ceilEnd.copy.rate] };

  const seconds = (performance.now() - started) / 1000;
  if (opts.waitQuietS) process.stderr.write(`waited ${(waitedMs / 1000).toFixed(1)} s in all for a quiet CPU\n`);
  const load = stopWatch();
  const tfjsTiming = tfjs && useTs && tfjs.timestamps
    ? "tf.time kernelMs (tfjs's own timestamp queries, one compute pass per program, summed)"
    : 'wall clock (submit, then queue.onSubmittedWorkDone)';
  const tfjsWait = !nap
    ? '--spin: awaited at once'
    : tfjs && useTs && tfjs.timestamps
      ? 'each run blocks the main thread (Atomics.wait) ~90% of the expected time once the conv is submitted ' +
        "(tf.time's timestamp readback is pending from then on: a timer sleep would let Dawn poll), then awaits"
      : 'each run submits, sleeps ~90% of the expected time (nothing pending), then awaits, as ours';
  const tfjsLine = !tfjsOn
    ? 'off'
    : tfjs
      ? `${tfjs.version} on ${tfjs.adapter === rt.adapterName ? 'the same adapter' : `ANOTHER adapter (${tfjs.adapter})`} ` +
        `(its own device), after ours per shape; timing: ${tfjsTiming}; ${tfjsWait}`
      : tfjsError
        ? `unavailable: ${tfjsError}`
        : 'no groups=1 conv selected';
  console.log(header(rt, ceil, ceilTries, flags, opts, load, tfjsLine));
  console.log(table(rows, COLUMNS));
  console.log(footer(rows, seconds));

  writeJson(opts.json, {
    bench: 'kernels',
    date: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    machineLoad: load,
    quick: opts.quick,
    filter: opts.filter ?? null,
    adapter: rt.adapterName,
    features: rt.features,
    limits: rt.limits,
    dawnFlags: flags,
    timing: ceil.timing,
    nap,
    ceilings: {
      fmaGflops: ceil.fma.rate,
      fmaMs: ceil.fma.ms,
      fmaFlop: ceil.fma.flop,
      fmaSamplesMs: ceil.fma.measurement.ms,
      fmaAwaitedAtOnceGflops: ceil.fmaSpin.rate,
      fmaAwaitedAtOnceSamplesMs: ceil.fmaSpin.measurement.ms,
      fmaProbe: `${ceil.fma.chains} chains x ${ceil.fma.unroll} fmas per loop iteration`,
      fmaRolledGflops: ceil.fmaRolled.rate,
      copyGBps: ceil.copy.rate,
      copyMs: ceil.copy.ms,
      copyBytes: ceil.copy.bytes,
      copySamplesMs: ceil.copy.measurement.ms,
      /** At the start and at the end of the run; the best of each counts. */
      tries: ceilTries,
    },
    notes: [
      'GFLOP/s and GB/s use the median time; GFLOP = 2 * MACs; GB = compulsory bytes (inputs read once, outputs written once).',
      '%FMA is against the measured FMA ceiling, %copy against the measured copy bandwidth (read + write bytes).',
      'Rows with roofline "copy" (depthwise convs) have no %FMA: they are judged by %copy.',
      `Naive convs estimated to take over ${NAIVE_BUDGET_MS / 1000} s per run are skipped.`,
      'impl "tfjs": the peer, see "tfjs"; oursOverTfjs = our time / tfjs time for the same conv (under 1: ours is faster), ' +
        'on the tfjs row and on the row it was compared with (vs); relDiff on a tfjs row = max|tfjs - ours| / max|ours|.',
    ],
    tfjs: {
      enabled: tfjsOn,
      version: tfjs?.version ?? null,
      adapter: tfjs?.adapter ?? null,
      sameAdapter: tfjs ? tfjs.adapter === rt.adapterName : null,
      error: tfjsError ?? null,
      loadMs: tfjsLoadMs ?? null,
      timing: tfjs ? tfjsTiming : null,
      wait: tfjs ? tfjsWait : null,
      budgetMs: TFJS_BUDGET_MS,
      notes: [
        'Same Dawn GPU object as ours (navigator.gpu = nodeGpu()), same process, same adapter; tfjs opens its own device.',
        'tf.fused.conv2d with NHWC input, HWIO filter (transposed from our OIHW), symmetric numeric padding (PyTorch), ' +
          'bias and output relu fused; relu of the input (ours fuses it) is applied once before timing.',
        'Only groups=1 convs (tf.conv2d has no grouped conv); with --quick the headline only; ' +
          'runs after ours for each shape, its tensors disposed and its pooled buffers freed after each.',
        `A tfjs case estimated over ${TFJS_BUDGET_MS / 1000} s per run (FLOP / median tfjs rate so far) is skipped.`,
        'One untimed warm-up call per shape (pipeline compile, input upload), then the timed calls, one per submit.',
      ],
      allocatedBytesAtEnd: tfjs ? tfjsAllocatedBytes(tfjs) : null,
    },
    seconds,
    waitedForQuietSeconds: opts.waitQuietS ? waitedMs / 1000 : null,
    rows,
  });
  process.stderr.write(`wrote ${opts.json}\n`);
  rt.destroy();
}

const COLUMNS: Column<KernelRow>[] = [
  { title: 'group', value: (r) => r.group, align: 'left' },
  { title: 'kernel', value: (r) => (r.headline ? `* ${r.name}` : r.name), align: 'left' },
  { title: 'impl', value: (r) => r.impl, align: 'left' },
  { title: 'shape', value: (r) => r.shape, align: 'left' },
  { title: 'GFLOP', value: (r) => (r.flop !== undefined ? fmt(r.flop / 1e9) : '') },
  { title: 'n', value: (r) => (r.skipped ? '' : r.batch && r.batch > 1 ? `${r.runs}/${r.batch}` : String(r.runs)) },
  { title: 'med ms', value: (r) => fmt(r.medianMs) },
  { title: 'min ms', value: (r) => fmt(r.minMs) },
  { title: 'wall ms', value: (r) => fmt(r.wallMedianMs) },
  { title: 'GFLOP/s', value: (r) => fmt(r.gflops) },
  { title: '%FMA', value: (r) => (r.pctFma !== undefined ? r.pctFma.toFixed(1) : r.roofline === 'copy' ? '-' : '') },
  { title: 'GB/s', value: (r) => fmt(r.gbps) },
  { title: '%copy', value: (r) => (r.pctCopy !== undefined ? r.pctCopy.toFixed(1) : '') },
  { title: 'other%', value: (r) => (r.othersCpuShare != null ? (100 * r.othersCpuShare).toFixed(0) : '') },
  { title: 'note', value: note, align: 'left' },
];

function note(r: KernelRow): string {
  if (r.skipped) return `skipped: ${r.skipped}`;
  const diff = (d: number) => (d === 0 ? 'identical' : `rel diff ${d.toExponential(1)}`);
  if (r.impl === 'tfjs') {
    if (r.oursOverTfjs === undefined) return r.relDiff !== undefined ? `vs ${r.vs}: ${diff(r.relDiff)}` : '';
    const by = r.ratioBy !== r.method ? ` (${r.ratioBy})` : '';
    return `ours/tfjs ${fmt(r.oursOverTfjs)}${by}; vs ${r.vs}: ${r.relDiff !== undefined ? diff(r.relDiff) : '?'}`;
  }
  if (r.relDiff !== undefined && r.impl !== 'naive') return `vs naive: ${diff(r.relDiff)}`;
  return '';
}

function header(rt: Runtime, ceil: CeilingResult, tries: { fmaGflops: number[]; copyGBps: number[] }, flags: string[], opts: KernelsOptions, load: MachineLoad, tfjsLine: string): string {
  const f = rt.features;
  const feats = [f.f16 && 'shader-f16', f.timestamps && 'timestamp-query', f.subgroups && 'subgroups'].filter(Boolean).join(', ');
  const t = ceil.timing;
  return [
    `midas-webgpu kernel bench${opts.quick ? ' (--quick)' : ''}`,
    `adapter:  ${rt.adapterName}`,
    `features: ${feats || 'none'}${flags.length ? `; dawn flags: ${flags.join(' ')}` : ''}`,
    `timing:   ${t.useTimestamps ? `timestamp queries (GPU pass time; resolution ${t.granularityNs} ns)` : `wall clock around rt.sync() (${t.note})`}`,
    `ceilings: FMA ${fmt(ceil.fma.rate)} GFLOP/s (${fmt(ceil.fma.flop / 1e9)} GFLOP in ${fmt(ceil.fma.ms)} ms, best run; ${ceil.fma.chains} vec4 chains x ${ceil.fma.unroll} fmas per loop iteration, ${fmt(ceil.fmaRolled.rate)} with one per chain per iteration); ` +
      `copy ${fmt(ceil.copy.rate)} GB/s (${ceil.copy.bytes / 2 ** 20} MiB read+write in ${fmt(ceil.copy.ms)} ms, best run); ` +
      `the better of the start and the end of the run (FMA ${tries.fmaGflops.map((v) => fmt(v)).join(' and ')}, copy ${tries.copyGBps.map((v) => fmt(v)).join(' and ')})`,
    ceil.nap
      ? `waiting:  each run sleeps ~90% of its expected time before awaiting the GPU (our awaits poll gently, ` +
        `src/nn/wait.ts; tfjs's do not; FMA awaited at once: ${fmt(ceil.fmaSpin.rate)} GFLOP/s)`
      : `waiting:  --spin: runs await the GPU at once (Dawn polls on the main thread meanwhile)`,
    `peer:     tfjs ${tfjsLine}`,
    `machine:  ${load.cores} CPU cores; other processes used ${load.othersCpuShare === null ? '?' : `${(100 * load.othersCpuShare).toFixed(0)}%`} of them during the run` +
      ((load.othersCpuShare ?? 0) > 0.1 && !opts.waitQuietS ? ' -- BUSY: timings are skewed (lavapipe computes on the same CPU)' : ''),
    ...(opts.waitQuietS ? [`          (that includes the waits: --wait-quiet ${opts.waitQuietS} let each case wait for a quiet CPU first; see other% per row)`] : []),
    '',
  ].join('\n');
}

function footer(rows: KernelRow[], seconds: number): string {
  const lines = [
    '',
    '* = headline case. GFLOP/s and GB/s from the median; GB = compulsory bytes (inputs once + outputs once).',
    'other% = CPU share other processes took while the row ran (lavapipe shares the CPU: over ~10% skews the row).',
    '%FMA "-" = a depthwise conv, judged by %copy only: GB = input + output + weights once, as for the other kernels.',
    'n = timed calls (/ calls per submit, when short kernels were batched back to back).',
    'wall ms = record + submit + wait, per call (a batch\'s wall time / its calls). rel diff = max|tiled - naive| / max|naive| where both ran.',
  ];
  if (rows.some((r) => r.roofline === 'copy')) {
    lines.push('depthwise AxB/CxDxE = A x B output pixels per thread, workgroups of C channel units x D x E such blocks (depthwiseTile).');
  }
  if (rows.some((r) => r.impl === 'tfjs')) {
    lines.push(
      'tfjs = the peer: tfjs-backend-webgpu conv2d (tf.fused.conv2d, NHWC / HWIO, bias and output relu fused; relu of the input',
      '  applied once before timing), same adapter, own device, after ours; "ours/tfjs" = our time / tfjs\'s (under 1: ours faster),',
      '  against the row it names; rel diff = max|tfjs - ours| / max|ours|.',
    );
  }
  const skipped = rows.filter((r) => r.skipped);
  const skippedNaive = skipped.filter((r) => r.impl === 'naive').length;
  const skippedTfjs = skipped.filter((r) => r.impl === 'tfjs').length;
  if (skippedNaive) lines.push(`${skippedNaive} naive run(s) skipped as too slow (see "skipped").`);
  if (skippedTfjs) lines.push(`${skippedTfjs} tfjs run(s) skipped (see "skipped").`);
  if (skipped.length > skippedNaive + skippedTfjs) lines.push(`${skipped.length - skippedNaive - skippedTfjs} other run(s) skipped (see "skipped").`);
  const busy = rows.filter((r) => (r.othersCpuShare ?? 0) > 0.1);
  if (busy.length) lines.push(`${busy.length} row(s) ran while other processes took over 10% of the CPU (other%): treat them with care.`);
  lines.push(`total ${seconds.toFixed(1)} s`);
  return lines.join('\n');
}
