// Multiply-accumulates of a MiDaS forward pass, counted from the architecture (SPEC §2
// for v2, §8 for v2.1 small) rather than from the network code, per stage as the bench
// reports them. v2 at 384x384: 48.2 GMAC in the encoder and 55.2 in the decoder (103.4
// GMAC ~ 207 GFLOP). Small: 4.595 GMAC at 256x256 (backbone 1.080, decoder 3.515),
// 10.339 at 384x384.
// Only convolutions count; resizes, adds and the max-pool are a rounding error in FLOPs
// (though not in time: see the e2e bench's per-kernel table).
import {
  bottleneckWidth,
  decoderFeatures,
  isSmall,
  stageChannels,
  type MidasConfig,
  type MidasSmallConfig,
  type MidasV2Config,
} from '../src/midas/config.js';

/** The stages of the breakdown, in the order `MidasNet.forward` runs them (the same names for both networks). */
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

/** Output side of a conv with symmetric padding p. */
const outSize = (n: number, k: number, s: number, p: number) => Math.floor((n + 2 * p - k) / s) + 1;
/** Output side of a conv with TF "SAME" padding: ceil(n / s), whatever the kernel. */
const sameSize = (n: number, s: number) => Math.ceil(n / s);

/** MACs of one conv producing oh x ow x cout from cin channels in `groups` groups with a k x k window. */
export const convMacs = (oh: number, ow: number, cin: number, cout: number, k: number, groups = 1) =>
  oh * ow * cout * (cin / groups) * k * k;

const emptyStages = () => Object.fromEntries(NETWORK_STAGES.map((s) => [s, 0])) as Record<NetworkStage, number>;

/** MACs per stage of a forward pass at h x w (multiples of 32), for either network. */
export function networkMacs(c: MidasConfig, h: number, w: number): Record<NetworkStage, number> {
  return isSmall(c) ? smallMacs(c, h, w) : v2Macs(c, h, w);
}

function v2Macs(c: MidasV2Config, h: number, w: number): Record<NetworkStage, number> {
  const macs = emptyStages();

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

/**
 * Which `pretrained.layerN` each of the six inverted-residual stages belongs to
 * (SPEC §8: layer1.4, layer2.0, layer3.0, layer3.1, layer4.0, layer4.1), typed in here
 * rather than taken from the network code.
 */
const SMALL_STAGE_LAYER = [1, 2, 3, 3, 4, 4] as const;

function smallMacs(c: MidasSmallConfig, h: number, w: number): Record<NetworkStage, number> {
  const macs = emptyStages();
  const l1 = 'pretrained.layer1';

  // Stem: 3x3 stride 2 with TF SAME padding (output ceil(i/2)), then the depthwise-
  // separable block at that resolution: conv_dw 3x3 (pad 1), conv_pw 1x1.
  let y = sameSize(h, 2);
  let x = sameSize(w, 2);
  macs[l1] += convMacs(y, x, 3, c.stemChannels, 3);
  macs[l1] += convMacs(y, x, c.stemChannels, c.stemChannels, 3, c.stemChannels);
  macs[l1] += convMacs(y, x, c.stemChannels, c.dsChannels, 1);

  // Inverted residuals: conv_pw 1x1 cin -> mid at the block's input resolution; conv_dw
  // k x k depthwise at the output's (SAME when strided: ceil(i/s); k//2 otherwise, which
  // keeps the size); conv_pwl 1x1 mid -> out.
  let cin = c.dsChannels;
  const stageSizes: [number, number][] = [];
  c.stages.forEach((s, i) => {
    const stage = `pretrained.layer${SMALL_STAGE_LAYER[i]}` as NetworkStage;
    for (let b = 0; b < s.repeats; b++) {
      const stride = b === 0 ? s.stride : 1;
      const mid = cin * s.expand;
      const oy = stride === 1 ? outSize(y, s.kernel, 1, s.kernel >> 1) : sameSize(y, stride);
      const ox = stride === 1 ? outSize(x, s.kernel, 1, s.kernel >> 1) : sameSize(x, stride);
      macs[stage] += convMacs(y, x, cin, mid, 1);
      macs[stage] += convMacs(oy, ox, mid, mid, s.kernel, mid);
      macs[stage] += convMacs(oy, ox, mid, s.out, 1);
      cin = s.out;
      y = oy;
      x = ox;
    }
    // layer1..4 end with stages 0, 1, 3 and 5: their output sizes are the taps.
    if (SMALL_STAGE_LAYER[i] !== SMALL_STAGE_LAYER[i + 1]) stageSizes.push([y, x]);
  });

  // Decoder ("expand": level K has fK = features * 2^(K-1) channels).
  const out = stageChannels(c);
  const f = decoderFeatures(c);
  stageSizes.forEach(([sy, sx], k) => {
    macs[`scratch.layer${k + 1}_rn` as NetworkStage] += convMacs(sy, sx, out[k]!, f[k]!, 3);
    // RCUs at the level's resolution (refinenet4: RCU2 only), then bilinear x2, then
    // out_conv 1x1 with bias at the doubled resolution, to the next finer level's
    // width (refinenet1 keeps f1).
    const rcus = k === 3 ? 1 : 2;
    const node = `scratch.refinenet${k + 1}` as NetworkStage;
    macs[node] += rcus * 2 * convMacs(sy, sx, f[k]!, f[k]!, 3);
    macs[node] += convMacs(2 * sy, 2 * sx, f[k]!, f[Math.max(k - 1, 0)]!, 1);
  });
  // output_conv: .0 3x3 f1->h0 at refinenet1's output (stride 2), .1 bilinear x2,
  // .2 3x3 h0->h1 at full size, .4 1x1 h1->1.
  const [y1, x1] = stageSizes[0]!;
  const [h0, h1] = c.head;
  macs['scratch.output_conv'] += convMacs(2 * y1, 2 * x1, f[0], h0, 3) + convMacs(4 * y1, 4 * x1, h0, h1, 3) + convMacs(4 * y1, 4 * x1, h1, 1, 1);
  return macs;
}

/** Total, encoder (`pretrained.*`) and decoder (`scratch.*`) MACs of a per-stage count. */
export function macsTotals(perStage: Record<NetworkStage, number>): { total: number; encoder: number; decoder: number } {
  const total = NETWORK_STAGES.reduce((a, s) => a + perStage[s], 0);
  const encoder = NETWORK_STAGES.filter((s) => s.startsWith('pretrained.')).reduce((a, s) => a + perStage[s], 0);
  return { total, encoder, decoder: total - encoder };
}

/**
 * MACs of one dispatch from its label (`conv2d_tiled 3x3/1 g32 256->256 @96x96 ...`,
 * `depthwise 5x5/2 816 @8x8 ...`: one k x k window per output value), 0 for other
 * kernels. A fallback: the bench takes each dispatch's own count (`DispatchRecord.macs`,
 * which every conv kernel reports) where it has the records.
 */
export function labelMacs(label: string): number {
  const m = /conv2d_\w+ (\d+)x(\d+)\/\d+ g(\d+) (\d+)->(\d+) @(\d+)x(\d+)/.exec(label);
  if (m) {
    const [kh, kw, g, cin, cout, oh, ow] = m.slice(1).map(Number) as [number, number, number, number, number, number, number];
    return oh * ow * cout * (cin / g) * kh * kw;
  }
  const dw = /depthwise (\d+)x(\d+)\/\d+ (\d+) @(\d+)x(\d+)/.exec(label);
  if (dw) {
    const [kh, kw, c, oh, ow] = dw.slice(1).map(Number) as [number, number, number, number, number];
    return oh * ow * c * kh * kw;
  }
  return 0;
}
