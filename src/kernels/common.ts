/** Builds the bytes of a WGSL uniform struct whose fields are all 4-byte scalars. */
export class Params {
  private readonly bytes: ArrayBuffer;
  private readonly view: DataView;
  private offset = 0;

  constructor(maxFields = 32) {
    this.bytes = new ArrayBuffer(maxFields * 4);
    this.view = new DataView(this.bytes);
  }

  u32(...values: number[]): this {
    for (const v of values) {
      this.view.setUint32(this.offset, v, true);
      this.offset += 4;
    }
    return this;
  }

  i32(...values: number[]): this {
    for (const v of values) {
      this.view.setInt32(this.offset, v, true);
      this.offset += 4;
    }
    return this;
  }

  f32(...values: number[]): this {
    for (const v of values) {
      this.view.setFloat32(this.offset, v, true);
      this.offset += 4;
    }
    return this;
  }

  /** The bytes, padded to 16 as uniform structs require. */
  build(): ArrayBuffer {
    return this.bytes.slice(0, Math.max(16, Math.ceil(this.offset / 16) * 16));
  }
}

/** Threads per workgroup for the one-thread-per-element kernels. */
export const WG = 64;

/**
 * Workgroups for `n` threads of `WG` each, spread over x and y because one
 * dimension holds at most 65535 workgroups. Shaders recover the flat index with
 * `FLAT_INDEX`.
 */
export function grid1d(n: number, perWorkgroup = WG): [number, number] {
  const groups = Math.max(1, Math.ceil(n / perWorkgroup));
  if (groups <= 65535) return [groups, 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y];
}

/** WGSL: the flat thread index for a `grid1d` dispatch of `@workgroup_size(WG)`. */
export const FLAT_INDEX = `gid.x + gid.y * nwg.x * ${WG}u`;
export const FLAT_BUILTINS = `@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>`;

export type Pair = readonly [number, number];

export function pair(v: number | Pair | undefined, fallback: number): Pair {
  if (v === undefined) return [fallback, fallback];
  return typeof v === 'number' ? [v, v] : v;
}

/** PyTorch's output size of a convolution or pooling window along one axis. */
export function windowOut(size: number, kernel: number, stride: number, pad: number, what: string): number {
  const out = Math.floor((size + 2 * pad - kernel) / stride) + 1;
  if (out < 1) throw new Error(`${what}: input side ${size} is too small for kernel ${kernel}, padding ${pad}`);
  return out;
}
