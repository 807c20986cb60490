// What runs, layer by layer: a forward pass on a meta runtime (no GPU, no weights)
// records every dispatch with its checkpoint key, output shape and MACs.
import { Conv2d, BatchNorm2d } from '../nn/layers.js';
import type { Module } from '../nn/module.js';
import { Runtime, type DispatchRecord } from '../nn/runtime.js';
import { numel } from '../nn/tensor.js';
import { MIDAS_V2, type MidasConfig } from './config.js';
import { largestActivation, MidasNet } from './network.js';

export interface SummaryRow {
  /** Checkpoint key prefix of the module (`pretrained.layer2.0.conv2`). */
  key: string;
  /** The kernel and its fused work, e.g. `conv2d_tiled 3x3/2 g32 256->512 @48x48 [relu]`. */
  op: string;
  /** NHWC output shape. */
  output: readonly number[];
  /** Learned parameters this row applies (a conv's, plus the BatchNorm folded into it). */
  params: number;
  macs: number;
}

export interface Summary {
  input: readonly [number, number];
  rows: SummaryRow[];
  /** All learned parameters (weights and biases; BN running statistics are buffers, not parameters). */
  params: number;
  /** BN running statistics (and num_batches_tracked) in a checkpoint. */
  buffers: number;
  macs: number;
  /** Bytes of the largest single activation and of all live tensors at the worst moment (weights included). */
  largestActivationBytes: number;
  peakLiveBytes: number;
  weightBytes: number;
}

function learned(m: Module): number {
  let n = 0;
  for (const [k, s] of m.stateShapes()) if (k.endsWith('weight') || k.endsWith('bias')) n += numel(s);
  return n;
}

/**
 * The network as it runs on `height x width` (multiples of 32), BN folded as at load
 * time. Kernels are chosen as for a device with these subgroup sizes (default: none,
 * the portable kernels; with subgroups, the GEMM kernel's wide tiles).
 */
export function summarize(
  config: MidasConfig = MIDAS_V2,
  height = 384,
  width = 384,
  subgroups: { subgroupMinSize: number; subgroupMaxSize: number } = { subgroupMinSize: 0, subgroupMaxSize: 0 },
): Summary {
  const rt = Runtime.meta({}, subgroups);
  const net = new MidasNet(config);
  net.fuse();
  net.upload(rt);
  const weightBytes = rt.stats().liveBytes;
  const byKey = new Map<string, Module>();
  for (const m of net.modules()) byKey.set(m.key, m);
  const x = rt.empty([1, height, width, 3]);
  const { depth } = net.forward(x);
  x.dispose();
  depth.dispose();
  const rows = (rt.records ?? []).map((r: DispatchRecord) => {
    const m = byKey.get(r.scope);
    let params = 0;
    if (m instanceof Conv2d) params = learned(m) + (m.foldedBatchNorm ? learned(m.foldedBatchNorm) : 0);
    else if (m instanceof BatchNorm2d) params = learned(m);
    return { key: r.scope, op: r.kernel, output: r.output, params, macs: r.macs };
  });
  let params = 0;
  let buffers = 0;
  for (const [k, s] of net.stateShapes()) {
    if (k.endsWith('weight') || k.endsWith('bias')) params += numel(s);
    else buffers += numel(s);
  }
  const bnCount = [...net.modules()].filter((m) => m instanceof BatchNorm2d).length;
  return {
    input: [height, width],
    rows,
    params,
    buffers: buffers + bnCount, // + num_batches_tracked, one number per BN
    macs: rows.reduce((a, r) => a + r.macs, 0),
    largestActivationBytes: largestActivation(config, height, width) * 4,
    peakLiveBytes: rt.stats().peakLiveBytes,
    weightBytes,
  };
}
