// The RefineNet-style decoder, `scratch.*` in the checkpoint.
import { add } from '../kernels/elementwise.js';
import { upsample2x } from '../kernels/resize.js';
import { Conv2d, Interpolate, ReLU, Sequential, fuseConvBnReLU } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import type { Runtime } from '../nn/runtime.js';
import type { Tensor } from '../nn/tensor.js';
import { stageChannels, type MidasConfig } from './config.js';

/**
 * ResidualConvUnit: conv2(relu(conv1(relu(x)))) + relu(x).
 *
 * The skip adds relu(x), not x: the original applies `nn.ReLU(inplace=True)` to x
 * before conv1, which rewrites x itself. Both ReLUs on x run as the convs read it.
 */
export class ResidualConvUnit extends Module {
  readonly conv1: Conv2d;
  readonly conv2: Conv2d;

  constructor(features: number) {
    super();
    this.conv1 = this.child('conv1', new Conv2d(features, features, 3, { padding: 1 }));
    this.conv2 = this.child('conv2', new Conv2d(features, features, 3, { padding: 1 }));
  }

  forward(x: Tensor): Tensor {
    const h = this.conv1.forward(x, { reluInput: true, relu: true });
    const out = this.conv2.forward(h, { residual: x, reluResidual: true });
    h.dispose();
    return out;
  }
}

/** FeatureFusionBlock: out = up2x(RCU2(xs[0] + RCU1(xs[1]))), bilinear with align_corners=True. */
export class FeatureFusionBlock extends Module {
  readonly resConfUnit1: ResidualConvUnit;
  readonly resConfUnit2: ResidualConvUnit;
  private rt?: Runtime;

  constructor(features: number) {
    super();
    this.resConfUnit1 = this.child('resConfUnit1', new ResidualConvUnit(features));
    this.resConfUnit2 = this.child('resConfUnit2', new ResidualConvUnit(features));
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
    return up;
  }
}

/** `scratch`: the 3x3 convs that bring each stage to `features`, four fusion blocks and the head. */
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

  constructor(c: MidasConfig) {
    super();
    const f = c.features;
    const [c1, c2, c3, c4] = stageChannels(c);
    const rn = (cin: number) => new Conv2d(cin, f, 3, { padding: 1, bias: false });
    this.layer1_rn = this.child('layer1_rn', rn(c1));
    this.layer2_rn = this.child('layer2_rn', rn(c2));
    this.layer3_rn = this.child('layer3_rn', rn(c3));
    this.layer4_rn = this.child('layer4_rn', rn(c4));
    this.refinenet4 = this.child('refinenet4', new FeatureFusionBlock(f));
    this.refinenet3 = this.child('refinenet3', new FeatureFusionBlock(f));
    this.refinenet2 = this.child('refinenet2', new FeatureFusionBlock(f));
    this.refinenet1 = this.child('refinenet1', new FeatureFusionBlock(f));
    const [h0, h2] = c.head;
    this.output_conv = this.child(
      'output_conv',
      new Sequential(
        new Conv2d(f, h0, 3, { padding: 1 }),
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
