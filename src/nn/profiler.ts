export interface Timing {
  label: string;
  ms: number;
}

/** Timestamp queries around every compute pass, resolved at each submit. */
export class Profiler {
  private readonly querySet: GPUQuerySet;
  private readonly labels: string[] = [];
  private resolved = 0;
  private readonly results: GPUBuffer[] = [];
  private readonly resultRanges: [number, number][] = [];

  constructor(
    private readonly device: GPUDevice,
    private readonly maxPasses: number,
  ) {
    this.querySet = device.createQuerySet({ type: 'timestamp', count: maxPasses * 2 });
  }

  passWrites(label: string): GPUComputePassTimestampWrites | undefined {
    const i = this.labels.length;
    if (i >= this.maxPasses) return undefined;
    this.labels.push(label);
    return { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  resolve(encoder: GPUCommandEncoder): void {
    const from = this.resolved;
    const to = this.labels.length;
    if (to === from) return;
    const bytes = (to - from) * 16;
    const resolveBuf = this.device.createBuffer({ size: bytes, usage: 0x200 | 0x4 /* QUERY_RESOLVE | COPY_SRC */ });
    const readBuf = this.device.createBuffer({ size: bytes, usage: 0x1 | 0x8 /* MAP_READ | COPY_DST */ });
    encoder.resolveQuerySet(this.querySet, 2 * from, 2 * (to - from), resolveBuf, 0);
    encoder.copyBufferToBuffer(resolveBuf, 0, readBuf, 0, bytes);
    this.results.push(readBuf);
    this.resultRanges.push([from, to]);
    this.resolved = to;
    queueMicrotask(() => resolveBuf.destroy());
  }

  async read(): Promise<Timing[]> {
    const out: Timing[] = [];
    for (let k = 0; k < this.results.length; k++) {
      const buf = this.results[k]!;
      const [from, to] = this.resultRanges[k]!;
      await buf.mapAsync(0x1);
      const ts = new BigInt64Array(buf.getMappedRange().slice(0));
      buf.unmap();
      buf.destroy();
      for (let i = from; i < to; i++) {
        const ns = Number(ts[2 * (i - from) + 1]! - ts[2 * (i - from)]!);
        out.push({ label: this.labels[i]!, ms: ns / 1e6 });
      }
    }
    this.querySet.destroy();
    return out;
  }
}
