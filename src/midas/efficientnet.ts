// The encoder of MiDaS v2.1 small: timm's `tf_efficientnet_lite3` cut into the four
// stages MiDaS taps (`_make_efficientnet_backbone`). Block types as timm names them
// (DepthwiseSeparableConv, InvertedResidual); every name is a checkpoint key under
// `pretrained.`. TensorFlow-trained: BN eps 1e-3, ReLU6, and "SAME" padding on the
// stride-2 convs (asymmetric: the extra row and column go after).
import { BatchNorm2d, Conv2d, fuseConvBnReLU, ReLU6, Sequential } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import type { Tensor } from '../nn/tensor.js';
import { INVERTED_RESIDUAL_SITES, type MidasSmallConfig } from './config.js';

/** timm's padding for tf_ models: TF "SAME" where the conv strides, k // 2 on each side otherwise. */
const tfPadding = (kernel: number, stride: number) => (stride === 1 ? kernel >> 1 : 'same');

const depthwise = (channels: number, kernel: number, stride: number) =>
  new Conv2d(channels, channels, kernel, { stride, padding: tfPadding(kernel, stride), groups: channels, bias: false });
const pointwise = (cin: number, cout: number) => new Conv2d(cin, cout, 1, { bias: false });

/**
 * out = bn2(conv_pw(relu6(bn1(conv_dw(x))))) (+ x when the shape allows).
 * The first block after the stem; in Lite3 it narrows 32 -> 24, so it has no skip.
 */
export class DepthwiseSeparableConv extends Module {
  readonly conv_dw: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv_pw: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly hasSkip: boolean;

  constructor(cin: number, cout: number, kernel: number, eps: number) {
    super();
    this.conv_dw = this.child('conv_dw', depthwise(cin, kernel, 1));
    this.bn1 = this.child('bn1', new BatchNorm2d(cin, eps));
    this.conv_pw = this.child('conv_pw', pointwise(cin, cout));
    this.bn2 = this.child('bn2', new BatchNorm2d(cout, eps));
    this.hasSkip = cin === cout;
  }

  fuse(): void {
    this.conv_dw.foldBatchNorm(this.bn1);
    this.conv_pw.foldBatchNorm(this.bn2);
  }

  forward(x: Tensor): Tensor {
    const h = this.conv_dw.forward(x, { relu6: true }); // conv_dw -> bn1 -> relu6
    const out = this.conv_pw.forward(h, this.hasSkip ? { residual: x } : {}); // conv_pw -> bn2 (+ x)
    h.dispose();
    return out;
  }
}

/**
 * MobileNetV2's block: expand (1x1), filter (k x k depthwise, maybe strided), project
 * (1x1, linear), and `+ x` when it keeps the shape:
 *   out = bn3(conv_pwl(relu6(bn2(conv_dw(relu6(bn1(conv_pw(x)))))))) (+ x)
 * BN folds into each conv at load time and the ReLU6s and the add run in the convs'
 * writes: three dispatches.
 */
export class InvertedResidual extends Module {
  readonly conv_pw: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv_dw: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly conv_pwl: Conv2d;
  readonly bn3: BatchNorm2d;
  readonly hasSkip: boolean;

  constructor(cin: number, cout: number, kernel: number, stride: number, expand: number, eps: number) {
    super();
    const mid = cin * expand;
    this.conv_pw = this.child('conv_pw', pointwise(cin, mid));
    this.bn1 = this.child('bn1', new BatchNorm2d(mid, eps));
    this.conv_dw = this.child('conv_dw', depthwise(mid, kernel, stride));
    this.bn2 = this.child('bn2', new BatchNorm2d(mid, eps));
    this.conv_pwl = this.child('conv_pwl', pointwise(mid, cout));
    this.bn3 = this.child('bn3', new BatchNorm2d(cout, eps));
    this.hasSkip = stride === 1 && cin === cout;
  }

  fuse(): void {
    this.conv_pw.foldBatchNorm(this.bn1);
    this.conv_dw.foldBatchNorm(this.bn2);
    this.conv_pwl.foldBatchNorm(this.bn3);
  }

  forward(x: Tensor): Tensor {
    const a = this.conv_pw.forward(x, { relu6: true }); // expand: conv_pw -> bn1 -> relu6
    const b = this.conv_dw.forward(a, { relu6: true }); // depthwise: conv_dw -> bn2 -> relu6
    a.dispose();
    const out = this.conv_pwl.forward(b, this.hasSkip ? { residual: x } : {}); // project: conv_pwl -> bn3 (+ x)
    b.dispose();
    return out;
  }
}

/** One table row as blocks: the first takes `cin` and the stride, the rest keep `out` at stride 1. */
function makeStage(cin: number, s: MidasSmallConfig['stages'][number], eps: number): Sequential {
  const blocks = [new InvertedResidual(cin, s.out, s.kernel, s.stride, s.expand, eps)];
  for (let i = 1; i < s.repeats; i++) blocks.push(new InvertedResidual(s.out, s.out, s.kernel, 1, s.expand, eps));
  return new Sequential(...blocks);
}

/**
 * `pretrained`: layer1 = stem (conv 3x3/2, bn, ReLU6) + the depthwise-separable block
 * + stage 0, at stride 4; layer2 = stage 1 (stride 8); layer3 = stages 2 and 3
 * (stride 16); layer4 = stages 4 and 5 (stride 32).
 */
export class EfficientNetEncoder extends Module {
  readonly layer1: Sequential;
  readonly layer2: Sequential;
  readonly layer3: Sequential;
  readonly layer4: Sequential;

  constructor(c: MidasSmallConfig) {
    super();
    const eps = c.bnEps;
    const stages: Sequential[] = [];
    let cin = c.dsChannels;
    for (const s of c.stages) {
      stages.push(makeStage(cin, s, eps));
      cin = s.out;
    }
    const at = (layer: string) => stages.filter((_, i) => INVERTED_RESIDUAL_SITES[i]![0] === layer);
    this.layer1 = this.child(
      'layer1',
      new Sequential(
        new Conv2d(3, c.stemChannels, 3, { stride: 2, padding: 'same', bias: false }),
        new BatchNorm2d(c.stemChannels, eps),
        new ReLU6(),
        new Sequential(new DepthwiseSeparableConv(c.stemChannels, c.dsChannels, 3, eps)),
        ...at('layer1'),
      ),
    );
    this.layer2 = this.child('layer2', new Sequential(...at('layer2')));
    this.layer3 = this.child('layer3', new Sequential(...at('layer3')));
    this.layer4 = this.child('layer4', new Sequential(...at('layer4')));
  }

  fuse(): void {
    fuseConvBnReLU(this.layer1); // the stem
    for (const m of this.modules()) {
      if (m instanceof DepthwiseSeparableConv || m instanceof InvertedResidual) m.fuse();
    }
  }
}
