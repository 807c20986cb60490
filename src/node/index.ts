// midas-webgpu in Node: everything in src/index.ts, plus weights and images from files.
export * from '../index.js';
export { loadMidas, MidasModel, type LoadMidasOptions, type ImageInput } from './load.js';
export { nodeGpu } from './gpu.js';
export { listAdapters, findAdapter, chooseGpu, AdapterNotFoundError, type DawnAdapter } from './adapters.js';
export { surveyAdapters, type AdapterReport, type AdapterSurvey } from './adapter_report.js';
export { decodeImage, ImageError } from './image.js';
export { writePfm, readPfm, writePng16, writeColorPng } from './outputs.js';
export { resolveWeights, midasHome } from './weights.js';
export { readTuning, saveTuning, tuningFile, adapterKey, type AdapterTuning } from './tuning.js';
export { convertCheckpoint } from '../../tools/convert-weights/index.js';
