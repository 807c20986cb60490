import type { Runtime } from './runtime.js';

/** Element type of a tensor's buffer. Kernels compute in f32; f16 is a storage type for weights. */
export type DType = 'f32' | 'f16';

export const BYTES_PER_ELEMENT: Record<DType, number> = { f32: 4, f16: 2 };

/**
 * A tensor is a GPU buffer with a shape. Activations are channels-last:
 * `[N, H, W, C]`. Conv weights keep PyTorch's `[Cout, Cin/groups, kH, kW]` unless a
 * kernel re-lays them out at load time.
 */
export class Tensor {
  private disposed = false;

  constructor(
    readonly runtime: Runtime,
    readonly buffer: GPUBuffer,
    readonly shape: readonly number[],
    readonly dtype: DType = 'f32',
  ) {}

  get size(): number {
    return numel(this.shape);
  }

  get byteLength(): number {
    return this.size * BYTES_PER_ELEMENT[this.dtype];
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Copies an f32 tensor back to the CPU (flushes pending work first). */
  read(): Promise<Float32Array> {
    this.assertLive();
    if (this.dtype !== 'f32') throw new Error(`read: only f32 tensors are read back (this one is ${this.dtype})`);
    return this.runtime.read(this);
  }

  /** Returns the buffer to the runtime's pool. Work already recorded still sees the data. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.runtime.release(this);
  }

  assertLive(): void {
    if (this.disposed) throw new Error(`tensor [${this.shape.join(', ')}] used after dispose()`);
  }
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** `[N, H, W, C]` of an activation tensor, with a readable error if it is not 4-D. */
export function nhwc(t: Tensor, what = 'input'): [number, number, number, number] {
  if (t.shape.length !== 4) throw new Error(`${what}: expected an NHWC tensor, got shape [${t.shape.join(', ')}]`);
  return t.shape as unknown as [number, number, number, number];
}
