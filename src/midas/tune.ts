// Tuning the network's convolutions on one adapter: which convs the implicit GEMM
// runs at a given input size (from a forward pass on a meta runtime), each timed with
// every candidate tile (src/kernels/tuner.ts).
import { tileKey, type TileConfig } from '../kernels/conv2d_tiled.js';
import { tuneConv, type ConvSpec, type TuneOptions, type TunedConv } from '../kernels/tuner.js';
import { Conv2d } from '../nn/layers.js';
import { Runtime } from '../nn/runtime.js';
import { MIDAS_V2, type MidasConfig } from './config.js';
import { MidasNet } from './network.js';

/**
 * The convs that the tiled GEMM kernel runs (not the rows kernel, which has its own
 * tiling; not the naive one) on `size` x `size` input on a device like `rt`, one per
 * weight shape and groups (what a tile is chosen by): the one that does the most
 * work, counting how often it runs. In forward order.
 */
export function gemmConvs(rt: Runtime, config: MidasConfig = MIDAS_V2, size = 384): ConvSpec[] {
  const meta = Runtime.meta({}, { subgroupMinSize: rt.subgroupMinSize, subgroupMaxSize: rt.subgroupMaxSize });
  const net = new MidasNet(config);
  net.fuse();
  net.upload(meta);
  const convs = new Map<string, Conv2d>();
  for (const m of net.modules()) if (m instanceof Conv2d) convs.set(m.key, m);
  const x = meta.empty([1, size, size, 3]);
  net.forward(x).depth.dispose();
  x.dispose();
  // By tile key, then by where it runs (input, stride, padding): the first conv seen
  // there and the MACs of all (layer3's 22 alike bottlenecks count together).
  const byTile = new Map<string, Map<string, { spec: ConvSpec; macs: number }>>();
  for (const r of meta.records ?? []) {
    const conv = convs.get(r.scope);
    if (!conv || !r.kernel.startsWith('conv2d_tiled ')) continue;
    const key = tileKey(conv.weightShape, conv.groups);
    const spec: ConvSpec = {
      key: r.scope, shape: conv.weightShape, groups: conv.groups,
      input: r.input as ConvSpec['input'], stride: conv.stride, padding: conv.padding,
    };
    const where = JSON.stringify([spec.input, spec.stride, spec.padding]);
    let sites = byTile.get(key);
    if (!sites) byTile.set(key, (sites = new Map()));
    const site = sites.get(where);
    if (site) site.macs += r.macs;
    else sites.set(where, { spec, macs: r.macs });
  }
  return [...byTile.values()].map((sites) => [...sites.values()].reduce((a, b) => (b.macs > a.macs ? b : a)).spec);
}

export interface TuneNetworkOptions extends TuneOptions {
  /** Only convs whose checkpoint key starts with this (e.g. `pretrained.layer3`). */
  only?: string;
  /** Called after each conv is tuned. */
  onConv?: (done: number, total: number, result: TunedConv) => void;
}

/** Tunes every GEMM-path conv of the network at `size` on `rt`; returns the results and the tiles to use. */
export async function tuneNetwork(
  rt: Runtime,
  config: MidasConfig = MIDAS_V2,
  size = 384,
  options: TuneNetworkOptions = {},
): Promise<{ results: TunedConv[]; tiles: Map<string, TileConfig> }> {
  const only = options.only;
  const specs = gemmConvs(rt, config, size).filter((s) => !only || s.key === only || s.key.startsWith(`${only}.`));
  if (specs.length === 0) throw new Error(`tune: no conv of the network runs the GEMM kernel${only ? ` under '${only}'` : ''} at ${size}x${size} on this adapter`);
  const results: TunedConv[] = [];
  for (const spec of specs) {
    const r = await tuneConv(rt, spec, options);
    results.push(r);
    options.onConv?.(results.length, specs.length, r);
  }
  return { results, tiles: new Map(results.map((r) => [r.tileKey, r.best.tile])) };
}
