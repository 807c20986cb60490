// Writing safetensors files: the layout is planned up front (header, every tensor's
// byte range), then tensors are written one after another into a temporary file in
// the destination folder, which is renamed over the destination only when complete.
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { SAFETENSORS_ELEMENT_SIZE, type SafetensorsDtype } from '../../src/nn/safetensors.js';

export interface TensorSpec {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
}

export interface PlannedTensor extends TensorSpec {
  /** [begin, end) in the data block. */
  begin: number;
  end: number;
}

export interface SafetensorsPlan {
  /** In data order (the order to write them in). */
  tensors: PlannedTensor[];
  /** Bytes of the 8-byte length, the JSON and its padding: where the data block starts. */
  dataStart: number;
  dataBytes: number;
  totalBytes: number;
}

/**
 * Lays tensors out in the given order, stably moved so larger element sizes come first:
 * with the data block 8-byte aligned every tensor is then aligned to its element size,
 * and the tensors tile the block with no gaps.
 */
export function planSafetensors(specs: readonly TensorSpec[]): Omit<SafetensorsPlan, 'dataStart' | 'totalBytes'> {
  const seen = new Set<string>();
  for (const s of specs) {
    if (s.name === '__metadata__') throw new Error(`a tensor cannot be named __metadata__`);
    if (seen.has(s.name)) throw new Error(`tensor '${s.name}' appears twice`);
    seen.add(s.name);
  }
  const order = specs
    .map((s, i) => ({ s, i }))
    .sort((a, b) => SAFETENSORS_ELEMENT_SIZE[b.s.dtype] - SAFETENSORS_ELEMENT_SIZE[a.s.dtype] || a.i - b.i)
    .map((x) => x.s);
  let at = 0;
  const tensors = order.map((s) => {
    const bytes = s.shape.reduce((a, b) => a * b, 1) * SAFETENSORS_ELEMENT_SIZE[s.dtype];
    const t = { name: s.name, dtype: s.dtype, shape: [...s.shape], begin: at, end: at + bytes };
    at += bytes;
    return t;
  });
  return { tensors, dataBytes: at };
}

/** The 8-byte length and the JSON header padded with spaces to a multiple of 8. */
export function encodeHeader(tensors: readonly PlannedTensor[], metadata: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header['__metadata__'] = metadata;
  for (const t of tensors) header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [t.begin, t.end] };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/**
 * A file written under a temporary name beside `path` and renamed to `path` by
 * `commit()`; `abort()` (or any failure) removes the temporary file.
 */
export class AtomicFile {
  private pos = 0;
  private done = false;

  private constructor(
    readonly path: string,
    readonly tmpPath: string,
    private readonly fh: FileHandle,
  ) {}

  static async create(path: string): Promise<AtomicFile> {
    const tmpPath = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    let fh: FileHandle;
    try {
      fh = await open(tmpPath, 'wx', 0o644);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new Error(`cannot write ${path}: the folder ${dirname(path)} does not exist`);
      if (code === 'EACCES' || code === 'EROFS') throw new Error(`cannot write ${path}: no permission to create files in ${dirname(path)}`);
      throw e;
    }
    return new AtomicFile(path, tmpPath, fh);
  }

  get position(): number {
    return this.pos;
  }

  /** Appends all of `data`. */
  async write(data: Uint8Array): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.fh.write(data, done, data.length - done, this.pos + done);
      done += bytesWritten;
    }
    this.pos += data.length;
  }

  /** Writes `data` at `pos` without moving the append position. */
  async writeAt(pos: number, data: Uint8Array): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.fh.write(data, done, data.length - done, pos + done);
      done += bytesWritten;
    }
  }

  /** Flushes to disk and renames over the destination. */
  async commit(): Promise<void> {
    if (this.done) throw new Error(`${this.path}: already closed`);
    this.done = true;
    try {
      await this.fh.sync();
      await this.fh.close();
      await rename(this.tmpPath, this.path);
    } catch (e) {
      await unlink(this.tmpPath).catch(() => {});
      throw e;
    }
  }

  /** Closes and removes the temporary file; the destination is untouched. */
  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.fh.close().catch(() => {});
    await unlink(this.tmpPath).catch(() => {});
  }
}
