// Re-laying out the convs' weights for the GPU (`packConvWeight`) is about a third of
// loading MiDaS v2's weights when the main thread does it all: reading and packing
// 400 MB take ~0.7 s, and the writes into fresh GPU memory ~1.2 s more (page faults,
// on the thread that writes). A source that can pack elsewhere offers a ConvPacker, so
// that packing overlaps the writes: src/node/conv_packer.ts packs in a worker thread
// straight from the weights file.
import type { TileConfig } from '../kernels/conv2d_tiled.js';
import type { WeightEntry } from './module.js';
import type { DType } from './tensor.js';

/**
 * One conv's weights to pack: `packConvWeight(values of entry, shape, groups, tile,
 * scale)`, stored as `dtype` on the GPU ('f16': the packed values' half-precision bits).
 */
export interface ConvPackJob {
  /** The conv's weight in PyTorch's layout, `[Cout, Cin/groups, kH, kW]`. */
  entry: WeightEntry;
  shape: readonly [number, number, number, number];
  groups: number;
  tile: TileConfig;
  /** Per output channel: a folded BatchNorm (see `batchNormScale`). */
  scale?: Float64Array;
  dtype: DType;
}

export interface ConvPacker {
  /**
   * Starts packing the jobs it can read, in this order; `take` then gives each, in the
   * same order. Called once.
   */
  start(jobs: readonly ConvPackJob[]): void;
  /**
   * The job's packed weights, as `packConvWeight` lays them out (for an 'f16' job their
   * `toFloat16Bits`), valid until the next `take` or `close`; undefined for a job it did
   * not take on (the caller packs it).
   * Blocks until the job is packed; an error packing it is thrown here.
   */
  take(job: ConvPackJob): Float32Array | Uint16Array | undefined;
  /** Stops packing and frees what it holds; also after an error. */
  close(): void;
}
