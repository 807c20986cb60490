// midas-webgpu in Node: everything in src/index.ts, plus weights and images from files.
export * from '../index.js';
export { loadMidas, MidasModel, type LoadMidasOptions, type ImageInput, type RawFrame } from './load.js';
export { nodeGpu } from './gpu.js';
export { listAdapters, findAdapter, chooseGpu, AdapterNotFoundError, type DawnAdapter } from './adapters.js';
export { surveyAdapters, type AdapterReport, type AdapterSurvey } from './adapter_report.js';
export { decodeImage, ImageError } from './image.js';
export { writePfm, readPfm, writePng16, writeColorPng } from './outputs.js';
export {
  probeVideo, readVideoFrames, VideoWriter, isVideoFile, checkFfmpeg, VideoError, FfmpegMissingError, VIDEO_EXTENSIONS,
  type VideoInfo, type VideoFrame, type VideoWriterOptions, type ReadVideoOptions,
} from './video.js';
export { resolveWeights, midasHome } from './weights.js';
export { readTuning, saveTuning, tuningFile, adapterKey, type AdapterTuning } from './tuning.js';
export { convertCheckpoint } from '../../tools/convert-weights/index.js';
