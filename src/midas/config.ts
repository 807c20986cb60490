/**
 * The shapes of the MiDaS networks. Two architectures share the decoder's pattern:
 * MiDaS v2 / v2.1 large (ResNeXt-101 encoder, 256-feature decoder) and MiDaS v2.1
 * small (EfficientNet-Lite3 encoder, "expand" decoder of 64..512 features). The
 * defaults are the real ones; tests build reduced configs with the same structure
 * so PyTorch fixtures stay small.
 */
export interface MidasV2Config {
  /** Absent or 'resnext101': the discriminant against MidasSmallConfig. */
  arch?: 'resnext101';
  /** Bottleneck blocks in layer1..layer4 (ResNeXt-101: 3, 4, 23, 3). */
  blocks: readonly [number, number, number, number];
  /** `planes` of each stage; a stage outputs 4 * planes channels. */
  planes: readonly [number, number, number, number];
  /** Channels after the 7x7 stem (`inplanes` in torchvision). */
  stemChannels: number;
  /** Groups of the 3x3 conv in every bottleneck (the "32" of 32x8d). */
  groups: number;
  /** Channels per group at planes = 64 (the "8" of 32x8d). */
  widthPerGroup: number;
  /** Channels of the RefineNet decoder (`features`). */
  features: number;
  /** Channels of output_conv.0 and output_conv.2 (128 and 32). */
  head: readonly [number, number];
}

/**
 * One stage of inverted-residual blocks, as EfficientNet's tables write it: kernel,
 * stride of the first block, expansion ratio, output channels, blocks.
 */
export interface InvertedResidualStage {
  kernel: number;
  stride: number;
  expand: number;
  out: number;
  repeats: number;
}

/** MidasNet_small: EfficientNet-Lite3 encoder, decoder with "expand" features. */
export interface MidasSmallConfig {
  arch: 'efficientnet_lite3';
  /** Channels of the 3x3 stride-2 stem (`layer1.0`). */
  stemChannels: number;
  /** Output channels of the depthwise-separable block `layer1.3.0`. */
  dsChannels: number;
  /**
   * The six inverted-residual stages, in the checkpoint at layer1.4, layer2.0,
   * layer3.0, layer3.1, layer4.0 and layer4.1 (`INVERTED_RESIDUAL_SITES`).
   */
  stages: readonly [InvertedResidualStage, InvertedResidualStage, InvertedResidualStage, InvertedResidualStage, InvertedResidualStage, InvertedResidualStage];
  /** Channels of the finest decoder level; level K has features * 2^(K-1). */
  features: number;
  /** Channels of output_conv.0 and output_conv.2 (32 and 32). */
  head: readonly [number, number];
  /** BatchNorm epsilon of the TensorFlow-trained backbone (1e-3). */
  bnEps: number;
}

export type MidasConfig = MidasV2Config | MidasSmallConfig;

export const MIDAS_V2: MidasV2Config = {
  blocks: [3, 4, 23, 3],
  planes: [64, 128, 256, 512],
  stemChannels: 64,
  groups: 32,
  widthPerGroup: 8,
  features: 256,
  head: [128, 32],
};

/** EfficientNet-Lite3 (timm `tf_efficientnet_lite3`: width 1.2, depth 1.4, ReLU6, no squeeze-excite) as MiDaS cuts it. */
export const MIDAS_SMALL: MidasSmallConfig = {
  arch: 'efficientnet_lite3',
  stemChannels: 32,
  dsChannels: 24,
  stages: [
    { kernel: 3, stride: 2, expand: 6, out: 32, repeats: 3 },
    { kernel: 5, stride: 2, expand: 6, out: 48, repeats: 3 },
    { kernel: 3, stride: 2, expand: 6, out: 96, repeats: 5 },
    { kernel: 5, stride: 1, expand: 6, out: 136, repeats: 5 },
    { kernel: 5, stride: 2, expand: 6, out: 232, repeats: 6 },
    { kernel: 3, stride: 1, expand: 6, out: 384, repeats: 1 },
  ],
  features: 64,
  head: [32, 32],
  bnEps: 1e-3,
};

/** Where each inverted-residual stage sits in `pretrained` (MiDaS's `_make_efficientnet_backbone`). */
export const INVERTED_RESIDUAL_SITES = [
  ['layer1', 4], ['layer2', 0], ['layer3', 0], ['layer3', 1], ['layer4', 0], ['layer4', 1],
] as const;

export function isSmall(c: MidasConfig): c is MidasSmallConfig {
  return c.arch === 'efficientnet_lite3';
}

/** torchvision's Bottleneck width: planes * (width_per_group / 64) * groups. */
export function bottleneckWidth(c: MidasV2Config, planes: number): number {
  return Math.floor(planes * (c.widthPerGroup / 64)) * c.groups;
}

/** Channels out of layer1..layer4. */
export function stageChannels(c: MidasConfig): [number, number, number, number] {
  if (isSmall(c)) {
    // layer1 ends with stage 0, layer2 with 1, layer3 with 3, layer4 with 5.
    const s = c.stages;
    return [s[0].out, s[1].out, s[3].out, s[5].out];
  }
  return c.planes.map((p) => 4 * p) as unknown as [number, number, number, number];
}

/**
 * The decoder's channels per level (layerK_rn's output, refinenetK's width): v2 keeps
 * `features` everywhere; the small network's "expand" doubles them per level.
 */
export function decoderFeatures(c: MidasConfig): [number, number, number, number] {
  const f = c.features;
  return isSmall(c) ? [f, 2 * f, 4 * f, 8 * f] : [f, f, f, f];
}
