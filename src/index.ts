// midas-webgpu, the parts that run wherever WebGPU does (no Node built-ins).
// In Node, `import { loadMidas } from 'midas-webgpu'` resolves to src/node/index.ts,
// which re-exports all of this too.
export { Runtime, type RuntimeStats, type DispatchArgs } from './nn/runtime.js';
export { openDevice, NoAdapterError, type DeviceFeatures, type OpenDeviceOptions } from './nn/device.js';
export { Tensor, type DType } from './nn/tensor.js';
export { Module, type Weights, type WeightEntry } from './nn/module.js';
export { Conv2d, BatchNorm2d, ReLU, ReLU6, MaxPool2d, Interpolate, Sequential, fuseConvBnReLU } from './nn/layers.js';
export { SafetensorsFile, SafetensorsError, checkWeights, WeightsMismatchError } from './nn/safetensors.js';
export { MIDAS_V2, MIDAS_SMALL, type MidasConfig, type MidasV2Config, type MidasSmallConfig, type InvertedResidualStage } from './midas/config.js';
export { MODELS, MODEL_NAMES, modelByName, detectArchitecture, type ModelName, type ModelInfo, type OfficialCheckpoint } from './midas/models.js';
export { MidasNet, STAGES, type Stage, type Precision } from './midas/network.js';
export { Midas, type DepthResult, type MidasOptions } from './midas/model.js';
export { fitSize, preprocess, toRGB, type RgbImage, type RawImage } from './midas/transform.js';
export { midasWeights, expectedShapes, modelForWeights } from './midas/weights.js';
export { colorize, type ColorMapName } from './midas/colormap.js';
export { alignToDepth, AlignError, fitScaleShift, type ScaleShift } from './midas/align.js';
export { TemporalNormalizer, type TemporalOptions, type TemporalFrame } from './midas/temporal.js';
export { summarize, type Summary, type SummaryRow } from './midas/summary.js';
export { tiledConvs, tuneNetwork, type TuneNetworkOptions } from './midas/tune.js';
export { selfCheck, type SelfCheckOptions, type SelfCheckResult, type VariantResult } from './midas/selfcheck.js';
export { modelVariants, type KernelVariant, type KernelCall } from './midas/kernel_variants.js';
export * as kernels from './kernels/index.js';
