// A safetensors file read tensor by tensor: how loadMidas reads its weights. Read whole,
// the file lands in one fresh buffer whose every page faults once (v2's 422 MB: 1.2 s
// on the CI machine kind, where reading it through one reused 16 MB buffer takes
// 0.06 s). Here each tensor is read when asked into memory the next read reuses: a
// conv's weights are packed for the GPU and done with before the next is read.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { WeightEntry } from '../nn/module.js';
import { decodeFloat32, parseSafetensorsHeader, safetensorsHeaderLength, tensorShapes, type SafetensorsHeader, type TensorSource } from '../nn/safetensors.js';

export class StreamedSafetensors implements TensorSource {
  private scratch = new Float32Array(0);

  private constructor(
    private fd: number | undefined,
    readonly header: SafetensorsHeader,
    readonly what: string,
  ) {}

  /** Opens `file` and parses its header (validated against the file's length); the data is read by `entry`'s readers. */
  static open(file: string): StreamedSafetensors {
    let fd: number | undefined;
    try {
      fd = openSync(file, 'r');
      const size = fstatSync(fd).size;
      const head = Buffer.alloc(Math.min(8, size));
      readFully(fd, head, 0, file);
      const prefix = Buffer.alloc(8 + safetensorsHeaderLength(head, size, file));
      readFully(fd, prefix, 0, file);
      return new StreamedSafetensors(fd, parseSafetensorsHeader(prefix, size, file), file);
    } catch (e) {
      if (fd !== undefined) closeSync(fd);
      throw readError(file, e);
    }
  }

  shapes(): Map<string, number[]> {
    return tensorShapes(this.header);
  }

  /** A reader of the tensor: each `read` reads it from the file into memory the next `read` reuses. */
  entry(name: string): WeightEntry {
    const t = this.header.tensors.get(name);
    if (!t) throw new Error(`${this.what}: no tensor '${name}'`);
    const entry = { shape: t.shape, read: () => this.read(name) };
    this.names.set(entry, name);
    return entry;
  }

  /** The name of the tensor an `entry` of this file reads; undefined for any other entry. */
  tensorName(entry: WeightEntry): string | undefined {
    return this.names.get(entry);
  }

  private readonly names = new WeakMap<WeightEntry, string>();

  /** Closes the file; readers fail afterwards. */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private read(name: string): Float32Array {
    const t = this.header.tensors.get(name)!;
    if (this.fd === undefined) throw new Error(`${this.what}: tensor '${name}' read after the file was closed`);
    const floats = Math.ceil(t.byteLength / 4);
    if (this.scratch.length < floats) this.scratch = new Float32Array(floats);
    const raw = new Uint8Array(this.scratch.buffer, 0, t.byteLength);
    try {
      readFully(this.fd, raw, t.byteOffset, this.what);
    } catch (e) {
      throw readError(this.what, e);
    }
    return decodeFloat32(raw, t.dtype, `${this.what}: tensor '${name}'`);
  }
}

/** A system error (ENOENT, EIO, ...) as one line naming the file; others as they are. */
function readError(file: string, e: unknown): unknown {
  const code = (e as NodeJS.ErrnoException).code;
  return code ? new Error(`${file}: cannot read weights (${code})`) : e;
}

/** Fills `into` from the file at `position`; a file that ends first is an error naming it. */
function readFully(fd: number, into: Uint8Array, position: number, what: string): void {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, into.length - done, position + done);
    if (n === 0) throw new Error(`${what}: the file ended while reading its weights (it changed after it was opened?)`);
    done += n;
  }
}
