export { conv2dNaive, type Conv2dOptions } from './conv2d.js';
export { conv2dTiled, packConv, packConvWeight, tiledSupports, disposePacked, chooseTile, builtinTile, tileCandidates, tileKey, useTiles, tilesInUse, type PackedConv, type TileConfig } from './conv2d_tiled.js';
export { tuneConv, gpuTimer, tileText, type ConvSpec, type TunedConv, type TimedTile, type ConvTimer, type TuneOptions } from './tuner.js';
export { batchnorm2d, foldBatchNorm, normalize, IMAGENET_MEAN, IMAGENET_STD, BN_EPS } from './channelwise.js';
export { relu, relu6, add } from './elementwise.js';
export { depthwiseConv2d, packDepthwise, packDepthwiseWeight, disposeDepthwise, isDepthwise, depthwiseBytes, depthwiseTile, type DepthwiseTile, type PackedDepthwise } from './depthwise.js';
export { samePadding, pad4, type Pad4, type Padding } from './common.js';
export { maxpool2d, type MaxPoolOptions } from './maxpool2d.js';
export { resize2d, resizeTaps, upsample2x, type ResizeMethod } from './resize.js';
