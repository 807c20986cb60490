/**
 * The shape of a MiDaS v2 network. The default is the real one (ResNeXt-101 32x8d
 * encoder, 256-feature decoder); tests build reduced ones with the same structure
 * so PyTorch fixtures stay small.
 */
export interface MidasConfig {
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

export const MIDAS_V2: MidasConfig = {
  blocks: [3, 4, 23, 3],
  planes: [64, 128, 256, 512],
  stemChannels: 64,
  groups: 32,
  widthPerGroup: 8,
  features: 256,
  head: [128, 32],
};

/** torchvision's Bottleneck width: planes * (width_per_group / 64) * groups. */
export function bottleneckWidth(c: MidasConfig, planes: number): number {
  return Math.floor(planes * (c.widthPerGroup / 64)) * c.groups;
}

/** Channels out of layer1..layer4. */
export function stageChannels(c: MidasConfig): [number, number, number, number] {
  return c.planes.map((p) => 4 * p) as unknown as [number, number, number, number];
}
