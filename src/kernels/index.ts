export { conv2dNaive, type Conv2dOptions } from './conv2d.js';
export { conv2dTiled, packConv, packConvWeight, tiledSupports, disposePacked, type PackedConv, type TileConfig } from './conv2d_tiled.js';
export { batchnorm2d, foldBatchNorm, normalize, IMAGENET_MEAN, IMAGENET_STD, BN_EPS } from './channelwise.js';
export { relu, add } from './elementwise.js';
export { maxpool2d, type MaxPoolOptions } from './maxpool2d.js';
export { resize2d, resizeTaps, upsample2x, type ResizeMethod } from './resize.js';
