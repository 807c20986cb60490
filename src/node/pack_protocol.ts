// What src/node/conv_packer.ts (the main thread) and src/node/pack_worker.ts share.
import { paddedCout, type TileConfig } from '../kernels/conv2d_tiled.js';
import type { MessagePort } from 'node:worker_threads';

/** One conv to pack: its tensor in the file, and `packConvWeight`'s other arguments. */
export interface WorkerJob {
  tensor: string;
  shape: [number, number, number, number];
  groups: number;
  tile: TileConfig;
  scale?: Float64Array;
  /** Hand over the packed values' half-precision bits (`toFloat16Bits`), not the values. */
  f16: boolean;
}

export interface PackWorkerData {
  file: string;
  /** Bytes of packed weights out at once (packed ahead, or held by the main thread); at least one job's. */
  budget: number;
  /** Int32 counters (READY, RETURNED, STARTED), bumped after each message so that the other side can block on them. */
  signal: SharedArrayBuffer;
  port: MessagePort;
}

/** From the main thread: first the jobs (once), then each packed buffer handed back. */
export type ToWorker = { jobs: WorkerJob[] } | ArrayBuffer;

/** From the worker: one per job, in order; an error ends its work. */
export type PackMessage = { index: number; buffer: ArrayBuffer } | { error: string };

/** Counter the worker bumps after posting a PackMessage. */
export const READY = 0;
/** Counter the main thread bumps after handing a buffer back. */
export const RETURNED = 1;
/** Counter the main thread bumps after posting the jobs. */
export const STARTED = 2;
/** Set by the worker once its script runs (a worker that never does is given up on). */
export const BOOTED = 3;
export const COUNTERS = 4;

/** Values `packConvWeight` writes for this job (the buffer holds 4 bytes each, or 2 for f16). */
export function packedLength(job: { shape: readonly number[]; tile: TileConfig }): number {
  const [cout, cinG, kh, kw] = job.shape as [number, number, number, number];
  return kh * kw * cinG * paddedCout(cout, job.tile);
}
