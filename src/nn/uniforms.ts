const CHUNK = 64 * 1024;
const ALIGN = 256; // minUniformBufferOffsetAlignment is at most 256 on every adapter

/**
 * Small per-dispatch parameter blocks, packed into a few uniform buffers that are
 * written once per submit. Reusing a chunk in the next submit is safe: the queue
 * runs writeBuffer after the command buffers submitted before it.
 */
export class UniformArena {
  private chunks: { buffer: GPUBuffer; data: Uint8Array<ArrayBuffer> }[] = [];
  private chunk = 0;
  private offset = 0;

  constructor(private readonly device: GPUDevice) {}

  push(params: ArrayBuffer): GPUBufferBinding {
    const size = Math.max(16, Math.ceil(params.byteLength / 16) * 16);
    if (size > CHUNK) throw new Error(`uniform block of ${size} bytes is over ${CHUNK}`);
    if (this.offset + size > CHUNK) {
      this.chunk++;
      this.offset = 0;
    }
    if (this.chunk === this.chunks.length) {
      this.chunks.push({
        buffer: this.device.createBuffer({ size: CHUNK, usage: 0x40 | 0x8 /* UNIFORM | COPY_DST */, label: 'uniforms' }),
        data: new Uint8Array(CHUNK),
      });
    }
    const c = this.chunks[this.chunk]!;
    c.data.set(new Uint8Array(params), this.offset);
    const binding = { buffer: c.buffer, offset: this.offset, size };
    this.offset += Math.ceil(size / ALIGN) * ALIGN;
    return binding;
  }

  /** Writes the used part of each chunk; call just before submit. */
  upload(): void {
    for (let i = 0; i <= this.chunk && i < this.chunks.length; i++) {
      const c = this.chunks[i]!;
      const used = i < this.chunk ? CHUNK : this.offset;
      if (used > 0) this.device.queue.writeBuffer(c.buffer, 0, c.data, 0, used);
    }
    this.chunk = 0;
    this.offset = 0;
  }

  destroy(): void {
    for (const c of this.chunks) c.buffer.destroy();
    this.chunks = [];
  }
}
