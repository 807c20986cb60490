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
/** Zero padding per side, in PyTorch's F.pad order turned to rows first: `[top, left, bottom, right]`. */
export type Pad4 = readonly [number, number, number, number];
/** A conv's padding: one number for every side, `[rows, cols]` symmetric, or each side (`Pad4`). */
export type Padding = number | Pair | Pad4;

export function pair(v: number | Pair | undefined, fallback: number): Pair {
  if (v === undefined) return [fallback, fallback];
  return typeof v === 'number' ? [v, v] : v;
}

/** Any `Padding` as `[top, left, bottom, right]`, checked: non-negative integers. */
export function pad4(v: Padding | undefined, what = 'padding'): Pad4 {
  const p: Pad4 = v === undefined ? [0, 0, 0, 0] : typeof v === 'number' ? [v, v, v, v] : v.length === 2 ? [v[0], v[1], v[0], v[1]] : v;
  if (p.length !== 4 || !p.every((x) => Number.isInteger(x) && x >= 0)) {
    throw new Error(`${what}: [${p.join(', ')}] is not 4 non-negative integers (top, left, bottom, right)`);
  }
  return p;
}

/**
 * TensorFlow's "SAME" padding for an input of h x w (what timm's tf_ models apply with
 * F.pad before the conv): along each axis the output is ceil(i / s) and the total pad
 * max((ceil(i/s) - 1) * s + k - i, 0), the smaller half before.
 */
export function samePadding(h: number, w: number, kernel: number | Pair, stride: number | Pair): Pad4 {
  const [kh, kw] = pair(kernel, 1);
  const [sh, sw] = pair(stride, 1);
  const total = (i: number, k: number, s: number) => Math.max((Math.ceil(i / s) - 1) * s + k - i, 0);
  const th = total(h, kh, sh);
  const tw = total(w, kw, sw);
  return [Math.floor(th / 2), Math.floor(tw / 2), th - Math.floor(th / 2), tw - Math.floor(tw / 2)];
}

/**
 * PyTorch's output size of a convolution or pooling window along one axis, with `pad`
 * before and `padAfter` (default: the same) after.
 */
export function windowOut(size: number, kernel: number, stride: number, pad: number, what: string, padAfter = pad): number {
  const out = Math.floor((size + pad + padAfter - kernel) / stride) + 1;
  if (out < 1) {
    const p = padAfter === pad ? `padding ${pad}` : `padding ${pad} before and ${padAfter} after`;
    throw new Error(`${what}: input side ${size} is too small for kernel ${kernel}, ${p}`);
  }
  return out;
}

/**
 * Generated shaders by generator and key. The unrolled shaders are long, and building
 * them again for each of a forward pass's ~100 convs took ~17 ms of the ~30 ms the
 * CPU spends encoding a pass at 256 (lavapipe computes on the same cores).
 */
const shaderTexts = new Map<string, string>();

/** `generate(key)`, built once per generator and key (the key's fields in any order). */
export function memo<K extends object>(generate: (key: K) => string, key: K): string {
  const id = `${generate.name}:${JSON.stringify(key, Object.keys(key).sort())}`;
  let text = shaderTexts.get(id);
  if (text === undefined) shaderTexts.set(id, (text = generate(key)));
  return text;
}
