// PyTorch checkpoints → safetensors, in TypeScript without Python (Node only).
export {
  convertCheckpoint,
  hubHashPrefix,
  toFloat16Bits,
  ConvertError,
  WEIGHTS_FORMAT_VERSION,
  type ConvertOptions,
  type ConvertProgress,
  type ConvertStats,
  type OutputDtype,
  type SkippedTensor,
} from './convert.js';
export {
  Checkpoint,
  CheckpointError,
  detectFormat,
  gatherStrided,
  isContiguous,
  readStateDict,
  typedView,
  type CheckpointFormat,
  type CheckpointTensor,
  type LoadedTensor,
  type StorageLocation,
  type TypedData,
} from './checkpoint.js';
export {
  unpickle,
  ALLOWED_GLOBALS,
  ELEMENT_SIZE,
  PickleError,
  PickleRefusedError,
  PickleTruncatedError,
  PyDict,
  PyGlobal,
  PyTuple,
  StorageRef,
  TensorRef,
  type PyValue,
  type StorageDtype,
} from './pickle.js';
export { readZipDirectory, readZipEntry, zipEntryDataOffset, ZipError, type ZipEntry } from './zip.js';
export { AtomicFile, encodeHeader, planSafetensors, type PlannedTensor, type TensorSpec } from './safetensors-write.js';
export { SourceFile, TruncatedError } from './source.js';
