// Multiply-accumulates of a MiDaS v2 forward pass, counted from the architecture
// (SPEC §2), per stage as the bench reports them: at 384x384 the full network is
// 48.2 GMAC in the encoder and 55.2 in the decoder (103.4 GMAC ~ 207 GFLOP).
// Only convolutions count; resizes, adds and the max-pool are a rounding error in FLOPs
// (though not in time: see the e2e bench's per-kernel table).
import { bottleneckWidth, stageChannels, type MidasConfig } from '../src/midas/config.js';

/** The stages of the breakdown, in the order `MidasNet.forward` runs them. */
export const NETWORK_STAGES = [
  'pretrained.layer1', 'pretrained.layer2', 'pretrained.layer3', 'pretrained.layer4',
  'scratch.layer1_rn', 'scratch.layer2_rn', 'scratch.layer3_rn', 'scratch.layer4_rn',
  'scratch.refinenet4', 'scratch.refinenet3', 'scratch.refinenet2', 'scratch.refinenet1',
  'scratch.output_conv',
] as const;
export type NetworkStage = (typeof NETWORK_STAGES)[number];

/** The stage a checkpoint key (or a dispatch label starting with one) belongs to. */
export function stageOf(keyOrLabel: string): NetworkStage | undefined {
  const m = /^(pretrained\.layer[1-4]|scratch\.layer[1-4]_rn|scratch\.refinenet[1-4]|scratch\.output_conv)(?=[.:]|$)/.exec(keyOrLabel);
  return m ? (m[1] as NetworkStage) : undefined;
}

const outSize = (n: number, k: number, s: number, p: number) => Math.floor((n + 2 * p - k) / s) + 1;

/** MACs of one conv producing oh x ow x cout from cin channels in `groups` groups with a k x k window. */
export const convMacs = (oh: number, ow: number, cin: number, cout: number, k: number, groups = 1) =>
  oh * ow * cout * (cin / groups) * k * k;

/** MACs per stage of a forward pass at h x w (multiples of 32). */
export function networkMacs(c: MidasConfig, h: number, w: number): Record<NetworkStage, number> {
  const macs = Object.fromEntries(NETWORK_STAGES.map((s) => [s, 0])) as Record<NetworkStage, number>;

  // Encoder. layer1 = stem conv 7x7/2 -> (bn, relu) -> maxpool 3x3/2 -> resnet.layer1.
  let y = outSize(h, 7, 2, 3);
  let x = outSize(w, 7, 2, 3);
  macs['pretrained.layer1'] += convMacs(y, x, 3, c.stemChannels, 7);
  y = outSize(y, 3, 2, 1);
  x = outSize(x, 3, 2, 1);
  let inplanes = c.stemChannels;
  const out = stageChannels(c);
  const stageSizes: [number, number][] = [];
  c.planes.forEach((planes, k) => {
    const stage = `pretrained.layer${k + 1}` as NetworkStage;
    const width = bottleneckWidth(c, planes);
    const expanded = out[k]!;
    for (let b = 0; b < c.blocks[k]!; b++) {
      const stride = b === 0 && k > 0 ? 2 : 1;
      const oy = outSize(y, 3, stride, 1);
      const ox = outSize(x, 3, stride, 1);
      macs[stage] += convMacs(y, x, inplanes, width, 1); // conv1 1x1 at the input's resolution
      macs[stage] += convMacs(oy, ox, width, width, 3, c.groups); // conv2 3x3 grouped, strided
      macs[stage] += convMacs(oy, ox, width, expanded, 1); // conv3 1x1
      if (stride !== 1 || inplanes !== expanded) macs[stage] += convMacs(oy, ox, inplanes, expanded, 1); // downsample
      inplanes = expanded;
      y = oy;
      x = ox;
    }
    stageSizes.push([y, x]);
  });

  // Decoder at the stages' resolutions (strides 4, 8, 16, 32).
  const f = c.features;
  stageSizes.forEach(([sy, sx], k) => {
    macs[`scratch.layer${k + 1}_rn` as NetworkStage] += convMacs(sy, sx, out[k]!, f, 3);
    // refinenet4 has one input (RCU2 only); refinenet1..3 run RCU1 and RCU2: 2 convs each.
    const rcus = k === 3 ? 1 : 2;
    macs[`scratch.refinenet${k + 1}` as NetworkStage] += rcus * 2 * convMacs(sy, sx, f, f, 3);
  });
  // output_conv: .0 3x3 f->h0 at stride 2 (refinenet1's output), .1 bilinear x2, .2 3x3 h0->h2, .4 1x1 h2->1.
  const [y1, x1] = stageSizes[0]!;
  const [h0, h2] = c.head;
  macs['scratch.output_conv'] += convMacs(2 * y1, 2 * x1, f, h0, 3) + convMacs(4 * y1, 4 * x1, h0, h2, 3) + convMacs(4 * y1, 4 * x1, h2, 1, 1);
  return macs;
}

/** MACs of one dispatch from its label (`conv2d_tiled 3x3/1 g32 256->256 @96x96 ...`), 0 for other kernels. */
export function labelMacs(label: string): number {
  const m = /conv2d_\w+ (\d+)x(\d+)\/\d+ g(\d+) (\d+)->(\d+) @(\d+)x(\d+)/.exec(label);
  if (!m) return 0;
  const [kh, kw, g, cin, cout, oh, ow] = m.slice(1).map(Number) as [number, number, number, number, number, number, number];
  return oh * ow * cout * (cin / g) * kh * kw;
}
