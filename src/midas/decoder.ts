// The RefineNet-style decoder, `scratch.*` in the checkpoint. One set of modules
// serves both networks; `DecoderConfig` holds where they differ (SPEC §2, §8).
import { add } from '../kernels/elementwise.js';
import { upsample2x } from '../kernels/resize.js';
import { Conv2d, Interpolate, ReLU, Sequential, fuseConvBnReLU } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import type { Runtime } from '../nn/runtime.js';
import type { Tensor } from '../nn/tensor.js';
import { decoderFeatures, isSmall, stageChannels, type MidasConfig } from './config.js';

/**
 * What the two decoders differ in:
 * - `features`: channels per level (v2: 256 at every level; small: 64, 128, 256, 512);
 * - `rcuSkip`: what the residual conv unit adds back. v2's `ResidualConvUnit` applies
 *   `nn.ReLU(inplace=True)` to x, which rewrites x itself, so it adds relu(x); the
 *   small network's `ResidualConvUnit_custom` uses a ReLU that is not in place and
 *   adds the raw x;
 * - `outConv`: the small network's `FeatureFusionBlock_custom` ends with a 1x1 conv
 *   (`out_conv`, with bias) after the upsample, to the next level's width.
 */
export interface DecoderConfig {
  inChannels: readonly [number, number, number, number];
  features: readonly [number, number, number, number];
  rcuSkip: 'relu' | 'raw';
  outConv: boolean;
  head: readonly [number, number];
}

export function decoderConfig(c: MidasConfig): DecoderConfig {
  return {
    inChannels: stageChannels(c),
    features: decoderFeatures(c),
    rcuSkip: isSmall(c) ? 'raw' : 'relu',
    outConv: isSmall(c),
    head: c.head,
  };
}

/**
 * ResidualConvUnit: conv2(relu(conv1(relu(x)))) + skip, where skip is relu(x) (v2) or
 * x (small): see `DecoderConfig.rcuSkip`. Both ReLUs on x run as the convs read it.
 */
export class ResidualConvUnit extends Module {
  readonly conv1: Conv2d;
  readonly conv2: Conv2d;

  constructor(
    features: number,
    readonly skip: DecoderConfig['rcuSkip'],
  ) {
    super();
    this.conv1 = this.child('conv1', new Conv2d(features, features, 3, { padding: 1 }));
    this.conv2 = this.child('conv2', new Conv2d(features, features, 3, { padding: 1 }));
  }

  forward(x: Tensor): Tensor {
    const h = this.conv1.forward(x, { reluInput: true, relu: true });
    const out = this.conv2.forward(h, { residual: x, reluResidual: this.skip === 'relu' });
    h.dispose();
    return out;
  }
}

/**
 * FeatureFusionBlock: out = up2x(RCU2(xs[0] + RCU1(xs[1]))), bilinear with
 * align_corners=True; then, in the small network, `out_conv` (1x1) at the new size.
 */
export class FeatureFusionBlock extends Module {
  readonly resConfUnit1: ResidualConvUnit;
  readonly resConfUnit2: ResidualConvUnit;
  readonly out_conv?: Conv2d;
  private rt?: Runtime;

  constructor(features: number, skip: DecoderConfig['rcuSkip'], outFeatures?: number) {
    super();
    // Registered first, as the original does: its keys come first in the state dict.
    if (outFeatures !== undefined) this.out_conv = this.child('out_conv', new Conv2d(features, outFeatures, 1));
    this.resConfUnit1 = this.child('resConfUnit1', new ResidualConvUnit(features, skip));
    this.resConfUnit2 = this.child('resConfUnit2', new ResidualConvUnit(features, skip));
  }

  override upload(rt: Runtime): void {
    this.rt = rt;
    super.upload(rt);
  }

  forward(x0: Tensor, x1?: Tensor): Tensor {
    const rt = this.rt;
    if (!rt) throw new Error('FeatureFusionBlock: call upload() first');
    let output = x0;
    if (x1) {
      const r = this.resConfUnit1.forward(x1);
      output = rt.withScope(this.key, () => add(rt, x0, r));
      r.dispose();
    }
    const refined = this.resConfUnit2.forward(output);
    if (output !== x0) output.dispose();
    const up = rt.withScope(this.key, () => upsample2x(rt, refined, true));
    refined.dispose();
    if (!this.out_conv) return up;
    const out = this.out_conv.forward(up);
    up.dispose();
    return out;
  }
}

/** `scratch`: the 3x3 convs that bring each stage to its level's width, four fusion blocks and the head. */
export class Decoder extends Module {
  readonly layer1_rn: Conv2d;
  readonly layer2_rn: Conv2d;
  readonly layer3_rn: Conv2d;
  readonly layer4_rn: Conv2d;
  readonly refinenet1: FeatureFusionBlock;
  readonly refinenet2: FeatureFusionBlock;
  readonly refinenet3: FeatureFusionBlock;
  readonly refinenet4: FeatureFusionBlock;
  /** conv 3x3 -> bilinear 2x (align_corners=False) -> conv 3x3 -> ReLU -> conv 1x1 -> ReLU */
  readonly output_conv: Sequential;

  constructor(d: DecoderConfig) {
    super();
    const [c1, c2, c3, c4] = d.inChannels;
    const [f1, f2, f3, f4] = d.features;
    const rn = (cin: number, f: number) => new Conv2d(cin, f, 3, { padding: 1, bias: false });
    this.layer1_rn = this.child('layer1_rn', rn(c1, f1));
    this.layer2_rn = this.child('layer2_rn', rn(c2, f2));
    this.layer3_rn = this.child('layer3_rn', rn(c3, f3));
    this.layer4_rn = this.child('layer4_rn', rn(c4, f4));
    // With out_conv, level K hands the next (finer) level its width; refinenet1 keeps f1.
    const fusion = (f: number, next: number) => new FeatureFusionBlock(f, d.rcuSkip, d.outConv ? next : undefined);
    this.refinenet4 = this.child('refinenet4', fusion(f4, f3));
    this.refinenet3 = this.child('refinenet3', fusion(f3, f2));
    this.refinenet2 = this.child('refinenet2', fusion(f2, f1));
    this.refinenet1 = this.child('refinenet1', fusion(f1, f1));
    const [h0, h2] = d.head;
    this.output_conv = this.child(
      'output_conv',
      new Sequential(
        new Conv2d(f1, h0, 3, { padding: 1 }),
        new Interpolate(2, false),
        new Conv2d(h0, h2, 3, { padding: 1 }),
        new ReLU(),
        new Conv2d(h2, 1, 1),
        new ReLU(),
      ),
    );
  }

  fuse(): void {
    fuseConvBnReLU(this.output_conv);
  }
}
