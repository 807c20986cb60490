// Tuning the network's convolutions on one adapter: which convs the tiled kernels run
// at a given input size (from a forward pass on a meta runtime), each timed with every
// candidate tile (src/kernels/tuner.ts).
import { tileKey, type TileConfig } from '../kernels/conv2d_tiled.js';
import { tuneConv, type ConvSpec, type TuneOptions, type TunedConv } from '../kernels/tuner.js';
import { Conv2d } from '../nn/layers.js';
import { Runtime } from '../nn/runtime.js';
import { MIDAS_V2, type MidasConfig } from './config.js';
import { MidasNet } from './network.js';

/** A conv to tune, and every module whose tile its choice sets. */
export interface NetworkConv extends ConvSpec {
  /** The checkpoint keys of all the convs of this weight shape and groups. */
  keys: string[];
}

/**
 * The convs that `conv2dTiled` runs (on the GEMM or the rows kernel; not the naive
 * ones) on `size` x `size` input on a device like `rt`, one per weight shape and
 * groups (what a tile is chosen by): the one that does the most work, counting how
 * often it runs (so the RCU convs of all four refinenets are tuned where refinenet1
 * runs them, at 96x96 for 384). In forward order.
 */
export function tiledConvs(rt: Runtime, config: MidasConfig = MIDAS_V2, size = 384): NetworkConv[] {
  const meta = Runtime.meta({}, { subgroupMinSize: rt.subgroupMinSize, subgroupMaxSize: rt.subgroupMaxSize });
  const net = new MidasNet(config);
  net.fuse();
  net.upload(meta);
  const convs = new Map<string, Conv2d>();
  for (const m of net.modules()) if (m instanceof Conv2d) convs.set(m.key, m);
  const x = meta.empty([1, size, size, 3]);
  net.forward(x).depth.dispose();
  x.dispose();
  // By tile key: every module's key, and by where it runs (input, stride, padding) the
  // first conv seen there and the MACs of all (layer3's 22 alike bottlenecks count together).
  const byTile = new Map<string, { keys: Set<string>; sites: Map<string, { spec: ConvSpec; macs: number }> }>();
  for (const r of meta.records ?? []) {
    const conv = convs.get(r.scope);
    if (!conv || !/^conv2d_(tiled|rows) /.test(r.kernel)) continue;
    const key = tileKey(conv.weightShape, conv.groups);
    const input = r.input as ConvSpec['input'];
    const spec: ConvSpec = {
      key: r.scope, shape: conv.weightShape, groups: conv.groups,
      input, stride: conv.stride, padding: conv.paddingFor(input[1], input[2]),
    };
    const where = JSON.stringify([spec.input, spec.stride, spec.padding]);
    let entry = byTile.get(key);
    if (!entry) byTile.set(key, (entry = { keys: new Set(), sites: new Map() }));
    entry.keys.add(r.scope);
    const site = entry.sites.get(where);
    if (site) site.macs += r.macs;
    else entry.sites.set(where, { spec, macs: r.macs });
  }
  return [...byTile.values()].map(({ keys, sites }) => ({
    ...[...sites.values()].reduce((a, b) => (b.macs > a.macs ? b : a)).spec,
    keys: [...keys],
  }));
}

export interface TuneNetworkOptions extends TuneOptions {
  /** Only convs whose weight shape a module under this checkpoint key has (e.g. `pretrained.layer3`). */
  only?: string;
  /** Called after each conv is tuned. */
  onConv?: (done: number, total: number, result: TunedConv) => void;
}

/** Tunes every tiled conv of the network at `size` on `rt`; returns the results and the tiles to use. */
export async function tuneNetwork(
  rt: Runtime,
  config: MidasConfig = MIDAS_V2,
  size = 384,
  options: TuneNetworkOptions = {},
): Promise<{ results: TunedConv[]; tiles: Map<string, TileConfig> }> {
  const only = options.only;
  const under = (key: string) => !only || key === only || key.startsWith(`${only}.`);
  const specs = tiledConvs(rt, config, size).filter((s) => s.keys.some(under));
  if (specs.length === 0) throw new Error(`no conv of the network runs a tiled kernel${only ? ` under '${only}'` : ''} at ${size}x${size} on this adapter`);
  const results: TunedConv[] = [];
  for (const spec of specs) {
    const r = await tuneConv(rt, spec, options);
    results.push(r);
    options.onConv?.(results.length, specs.length, r);
  }
  return { results, tiles: new Map(results.map((r) => [r.tileKey, r.best.tile])) };
}
