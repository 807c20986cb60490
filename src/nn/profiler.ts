import { quietly } from './wait.js';

export interface Timing {
  label: string;
  ms: number;
}

/** Passes per query set: two timestamps each, within Dawn's 4096-query limit. */
const PASSES_PER_SET = 2048;

/**
 * Timestamp queries around every compute pass, resolved at each submit. A forward
 * pass may hold more passes than one query set can: sets are added as needed.
 */
export class Profiler {
  private readonly sets: GPUQuerySet[] = [];
  private readonly labels: string[] = [];
  private resolved = 0;
  private readonly pending: { buffer: GPUBuffer; from: number; to: number }[] = [];

  constructor(private readonly device: GPUDevice) {}

  passWrites(label: string): GPUComputePassTimestampWrites {
    const i = this.labels.length;
    this.labels.push(label);
    const slot = i % PASSES_PER_SET;
    if (slot === 0) this.sets.push(this.device.createQuerySet({ type: 'timestamp', count: 2 * PASSES_PER_SET }));
    return { querySet: this.sets[this.sets.length - 1]!, beginningOfPassWriteIndex: 2 * slot, endOfPassWriteIndex: 2 * slot + 1 };
  }

  /** Records the copy-out of every pass since the last resolve; call before submit. */
  resolve(encoder: GPUCommandEncoder): void {
    while (this.resolved < this.labels.length) {
      const from = this.resolved;
      const setIndex = Math.floor(from / PASSES_PER_SET);
      const to = Math.min(this.labels.length, (setIndex + 1) * PASSES_PER_SET);
      const bytes = (to - from) * 16;
      const resolveBuf = this.device.createBuffer({ size: bytes, usage: 0x200 | 0x4 /* QUERY_RESOLVE | COPY_SRC */ });
      const readBuf = this.device.createBuffer({ size: bytes, usage: 0x1 | 0x8 /* MAP_READ | COPY_DST */ });
      const first = 2 * (from % PASSES_PER_SET);
      encoder.resolveQuerySet(this.sets[setIndex]!, first, 2 * (to - from), resolveBuf, 0);
      encoder.copyBufferToBuffer(resolveBuf, 0, readBuf, 0, bytes);
      this.pending.push({ buffer: readBuf, from, to });
      this.resolved = to;
      // Destroyed once the submit that uses it has been queued (the caller submits right after).
      queueMicrotask(() => resolveBuf.destroy());
    }
  }

  async read(): Promise<Timing[]> {
    const out: Timing[] = [];
    for (const { buffer, from, to } of this.pending) {
      await quietly(() => buffer.mapAsync(0x1 /* GPUMapMode.READ */));
      const ts = new BigInt64Array(buffer.getMappedRange().slice(0));
      buffer.unmap();
      buffer.destroy();
      for (let i = from; i < to; i++) {
        const ns = Number(ts[2 * (i - from) + 1]! - ts[2 * (i - from)]!);
        out.push({ label: this.labels[i]!, ms: ns / 1e6 });
      }
    }
    for (const s of this.sets) s.destroy();
    return out;
  }
}
