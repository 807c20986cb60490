// The encoder: torchvision's ResNeXt-101 32x8d, cut into the four stages MiDaS
// taps. Reads like torchvision's resnet.py; every name is a checkpoint key under
// `pretrained.`.
import { BatchNorm2d, Conv2d, fuseConvBnReLU, MaxPool2d, ReLU, Sequential } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import type { Tensor } from '../nn/tensor.js';
import { bottleneckWidth, type MidasV2Config } from './config.js';

const conv1x1 = (cin: number, cout: number, stride = 1) => new Conv2d(cin, cout, 1, { stride, bias: false });
const conv3x3 = (cin: number, cout: number, stride = 1, groups = 1) =>
  new Conv2d(cin, cout, 3, { stride, padding: 1, groups, bias: false });

/**
 * out = relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + downsample(x))
 * At load time each BN folds into its conv, and the ReLUs and the residual add run
 * in the convs' writes: three dispatches (four with a downsample).
 */
export class Bottleneck extends Module {
  static readonly expansion = 4;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly conv3: Conv2d;
  readonly bn3: BatchNorm2d;
  readonly downsample?: Sequential;

  constructor(inplanes: number, planes: number, stride: number, c: MidasV2Config) {
    super();
    const width = bottleneckWidth(c, planes);
    const out = planes * Bottleneck.expansion;
    this.conv1 = this.child('conv1', conv1x1(inplanes, width));
    this.bn1 = this.child('bn1', new BatchNorm2d(width));
    this.conv2 = this.child('conv2', conv3x3(width, width, stride, c.groups));
    this.bn2 = this.child('bn2', new BatchNorm2d(width));
    this.conv3 = this.child('conv3', conv1x1(width, out));
    this.bn3 = this.child('bn3', new BatchNorm2d(out));
    if (stride !== 1 || inplanes !== out) {
      this.downsample = this.child('downsample', new Sequential(conv1x1(inplanes, out, stride), new BatchNorm2d(out)));
    }
  }

  /** Folds every BN into its conv; call after loadState, before upload. */
  fuse(): void {
    this.conv1.foldBatchNorm(this.bn1);
    this.conv2.foldBatchNorm(this.bn2);
    this.conv3.foldBatchNorm(this.bn3);
    if (this.downsample) fuseConvBnReLU(this.downsample);
  }

  forward(x: Tensor): Tensor {
    const identity = this.downsample ? this.downsample.forward(x) : x;
    const a = this.conv1.forward(x, { relu: true }); // conv1 -> bn1 -> relu
    const b = this.conv2.forward(a, { relu: true }); // conv2 (3x3, groups) -> bn2 -> relu
    a.dispose();
    const out = this.conv3.forward(b, { residual: identity, relu: true }); // conv3 -> bn3, += identity, relu
    b.dispose();
    if (identity !== x) identity.dispose();
    return out;
  }
}

/** torchvision's `_make_layer`: the first block may stride and change width; the rest keep it. */
function makeLayer(inplanes: number, planes: number, blocks: number, stride: number, c: MidasV2Config): Sequential {
  const layers = [new Bottleneck(inplanes, planes, stride, c)];
  for (let i = 1; i < blocks; i++) layers.push(new Bottleneck(planes * Bottleneck.expansion, planes, 1, c));
  return new Sequential(...layers);
}

/** `pretrained`: layer1 (stem + resnet.layer1) at stride 4, then layer2..4 at 8, 16, 32. */
export class Encoder extends Module {
  readonly layer1: Sequential;
  readonly layer2: Sequential;
  readonly layer3: Sequential;
  readonly layer4: Sequential;

  constructor(c: MidasV2Config) {
    super();
    const [p1, p2, p3, p4] = c.planes;
    const [b1, b2, b3, b4] = c.blocks;
    const e = Bottleneck.expansion;
    // MiDaS wraps the stem and resnet.layer1 in one Sequential: keys layer1.0 .. layer1.4.
    this.layer1 = this.child(
      'layer1',
      new Sequential(
        new Conv2d(3, c.stemChannels, 7, { stride: 2, padding: 3, bias: false }),
        new BatchNorm2d(c.stemChannels),
        new ReLU(),
        new MaxPool2d(3, 2, 1),
        makeLayer(c.stemChannels, p1, b1, 1, c),
      ),
    );
    this.layer2 = this.child('layer2', makeLayer(p1 * e, p2, b2, 2, c));
    this.layer3 = this.child('layer3', makeLayer(p2 * e, p3, b3, 2, c));
    this.layer4 = this.child('layer4', makeLayer(p3 * e, p4, b4, 2, c));
  }

  fuse(): void {
    fuseConvBnReLU(this.layer1);
    for (const layer of [this.layer1.layers[4] as Sequential, this.layer2, this.layer3, this.layer4]) {
      for (const block of layer.layers) (block as Bottleneck).fuse();
    }
  }
}
