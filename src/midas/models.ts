// The torch.hub `intel-isl/MiDaS` family by name: which network, which official
// checkpoint, which transform size. Runtime-agnostic (the browser entry uses it too).
import { isSmall, MIDAS_SMALL, MIDAS_V2, type MidasConfig } from './config.js';

export interface OfficialCheckpoint {
  /** torch.hub's file name: the URL's last segment. */
  file: string;
  url: string;
  /** The sha256 prefix in the file name, which a download must match (as torch.hub checks). */
  sha256Prefix: string;
}

export interface ModelInfo {
  name: ModelName;
  /** What people call it, with the torch.hub entry. */
  title: string;
  config: MidasConfig;
  /** The hub transform's target side: `default_transform` 384, `small_transform` 256. */
  size: number;
  checkpoint: OfficialCheckpoint;
}

export const MODEL_NAMES = ['v2', 'v2.1', 'small'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

export const MODELS: Readonly<Record<ModelName, ModelInfo>> = {
  v2: {
    name: 'v2',
    title: 'MiDaS v2 (ResNeXt-101)',
    config: MIDAS_V2,
    size: 384,
    checkpoint: {
      file: 'model-f46da743.pt',
      url: 'https://github.com/intel-isl/MiDaS/releases/download/v2/model-f46da743.pt',
      sha256Prefix: 'f46da743',
    },
  },
  'v2.1': {
    name: 'v2.1',
    title: 'MiDaS v2.1 large (ResNeXt-101; hub "MiDaS")',
    config: MIDAS_V2,
    size: 384,
    checkpoint: {
      file: 'model-f6b98070.pt',
      url: 'https://github.com/isl-org/MiDaS/releases/download/v2_1/model-f6b98070.pt',
      sha256Prefix: 'f6b98070',
    },
  },
  small: {
    name: 'small',
    title: 'MiDaS v2.1 small (EfficientNet-Lite3; hub "MiDaS_small")',
    config: MIDAS_SMALL,
    size: 256,
    checkpoint: {
      file: 'model-small-70d6b9c8.pt',
      url: 'https://github.com/intel-isl/MiDaS/releases/download/v2_1/model-small-70d6b9c8.pt',
      sha256Prefix: '70d6b9c8',
    },
  },
};

/** The model of a name, or an error that lists the names. */
export function modelByName(name: string): ModelInfo {
  if ((MODEL_NAMES as readonly string[]).includes(name)) return MODELS[name as ModelName];
  throw new Error(`unknown model '${name}' (choose from ${MODEL_NAMES.join(', ')})`);
}

/** The two architectures a checkpoint can hold, as a person names them. */
export function architectureName(c: MidasConfig): string {
  return isSmall(c) ? 'MiDaS v2.1 small (EfficientNet-Lite3)' : 'MiDaS v2 / v2.1 large (ResNeXt-101)';
}

/**
 * The architecture a state dict holds, from keys only the one or the other has:
 * the EfficientNet stem's depthwise-separable block, or the ResNeXt stem's 7x7 conv.
 * Undefined for neither (the caller's key check then lists what is wrong).
 */
export function detectArchitecture(keys: Iterable<string>): 'resnext101' | 'efficientnet_lite3' | undefined {
  const set = new Set(keys);
  if (set.has('pretrained.layer1.3.0.conv_dw.weight')) return 'efficientnet_lite3';
  if (set.has('pretrained.layer1.4.0.conv1.weight')) return 'resnext101';
  return undefined;
}

/** The first model of an architecture (v2 for ResNeXt: v2 and v2.1 share it). */
export function modelOfArchitecture(arch: 'resnext101' | 'efficientnet_lite3'): ModelInfo {
  return arch === 'efficientnet_lite3' ? MODELS.small : MODELS.v2;
}

/** Whether a config is of the architecture `detectArchitecture` named. */
export function configIs(c: MidasConfig, arch: 'resnext101' | 'efficientnet_lite3'): boolean {
  return (isSmall(c) ? 'efficientnet_lite3' : 'resnext101') === arch;
}
