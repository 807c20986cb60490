// Positional reads from the checkpoint file, hashing the whole file (sha256) along the
// way without a second pass when reads come in file order.
import { open, type FileHandle } from 'node:fs/promises';
import { createHash, type Hash } from 'node:crypto';

export class TruncatedError extends Error {
  override name = 'TruncatedError';
}

/** A random-access byte source (a file here; anything with positional reads would do). */
export interface RandomAccess {
  readonly size: number;
  /** Exactly `length` bytes at `pos` in a fresh buffer; throws `TruncatedError` past the end. */
  read(pos: number, length: number, what?: string): Promise<Uint8Array>;
}

const HASH_CHUNK = 8 << 20;

export class SourceFile implements RandomAccess {
  private hash: Hash = createHash('sha256');
  /** Bytes [0, hashed) have gone into the hash. */
  private hashed = 0;
  private scratch: Uint8Array | null = null;
  private closed = false;

  private constructor(
    private readonly fh: FileHandle,
    readonly path: string,
    readonly size: number,
  ) {}

  static async open(path: string): Promise<SourceFile> {
    const fh = await open(path, 'r');
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new Error(`${path}: not a regular file`);
      return new SourceFile(fh, path, st.size);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** Reads into `buf` (all of it) from `pos`. */
  private async fill(buf: Uint8Array, pos: number): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      const { bytesRead } = await this.fh.read(buf, done, buf.length - done, pos + done);
      if (bytesRead === 0) throw new TruncatedError(`${this.path}: file ended at byte ${pos + done} (it shrank while being read?)`);
      done += bytesRead;
    }
  }

  private check(pos: number, length: number, what: string): void {
    if (!Number.isSafeInteger(pos) || !Number.isSafeInteger(length) || pos < 0 || length < 0) {
      throw new Error(`${this.path}: bad read of ${what}: ${length} bytes at ${pos}`);
    }
    if (pos + length > this.size) {
      throw new TruncatedError(
        `${this.path}: truncated: ${what} needs bytes ${pos}..${pos + length}, but the file ends at ${this.size}`,
      );
    }
  }

  /** A metadata read: it does not advance the hash. */
  async read(pos: number, length: number, what = 'data'): Promise<Uint8Array> {
    this.check(pos, length, what);
    // A fresh ArrayBuffer per read: views at offset 0 are aligned for any element type.
    const buf = new Uint8Array(length);
    await this.fill(buf, pos);
    return buf;
  }

  /**
   * A data read that also feeds the sha256: bytes before `pos` not hashed yet are read
   * (in bounded chunks) and hashed first, so the hash is right whatever the order.
   */
  async readData(pos: number, length: number, what = 'data'): Promise<Uint8Array> {
    this.check(pos, length, what);
    await this.hashUpTo(pos);
    const buf = new Uint8Array(length);
    await this.fill(buf, pos);
    const end = pos + length;
    if (end > this.hashed) {
      this.hash.update(buf.subarray(this.hashed - pos));
      this.hashed = end;
    }
    return buf;
  }

  private async hashUpTo(end: number): Promise<void> {
    while (this.hashed < end) {
      this.scratch ??= new Uint8Array(HASH_CHUNK);
      const n = Math.min(HASH_CHUNK, end - this.hashed);
      const chunk = this.scratch.subarray(0, n);
      await this.fill(chunk, this.hashed);
      this.hash.update(chunk);
      this.hashed += n;
    }
  }

  /** Hashes what is left and returns the file's sha256 in hex. */
  async sha256(): Promise<string> {
    await this.hashUpTo(this.size);
    this.scratch = null;
    return this.hash.copy().digest('hex');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close();
  }
}
