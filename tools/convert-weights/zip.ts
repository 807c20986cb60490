// The little of the zip format that `torch.save` (PyTorchStreamWriter, miniz) needs:
// the end-of-central-directory record (zip64 too), the central directory, and local
// headers to find where each entry's bytes start. Entries torch writes are stored
// (method 0) and padded so their data starts 64-byte aligned, so a storage is read
// straight from the file; deflated entries are inflated only when read whole
// (`readZipEntry`, for data.pkl from a re-zipped file).
//
// Written by hand rather than with an npm zip library: yauzl/unzipper/adm-zip/jszip
// either read whole entries through streams or load the archive into memory, while we
// want the data offset of an entry and then positional reads of any part of it;
// the parsing is ~150 lines.
import { inflateRawSync } from 'node:zlib';
import type { RandomAccess } from './source.js';

export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflated. */
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

export class ZipError extends Error {
  override name = 'ZipError';
}

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;

function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function u64(v: DataView, at: number, what: string): number {
  const n = v.getUint32(at + 4, true) * 2 ** 32 + v.getUint32(at, true);
  if (!Number.isSafeInteger(n)) throw new ZipError(`${what}: 64-bit field too large`);
  return n;
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

/** The largest entry `readZipEntry` inflates (a data.pkl is kilobytes to a few megabytes). */
const MAX_INFLATED_ENTRY = 256 << 20;

/** Reads the central directory; entry names map to entries, in directory order. */
export async function readZipDirectory(src: RandomAccess, what: string): Promise<Map<string, ZipEntry>> {
  if (src.size < 22) throw new ZipError(`${what}: truncated or not a zip file: ${src.size} bytes is too short`);
  const tailLen = Math.min(src.size, 22 + 0xffff);
  const tailStart = src.size - tailLen;
  const tail = await src.read(tailStart, tailLen, 'the end of central directory');
  const tv = dv(tail);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === EOCD_SIG && i + 22 + tv.getUint16(i + 20, true) <= tail.length) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    throw new ZipError(`${what}: truncated or not a zip file: no end-of-central-directory record (a torch zip checkpoint ends with one)`);
  }
  let entries: number = tv.getUint16(eocd + 10, true);
  let cdSize: number = tv.getUint32(eocd + 12, true);
  let cdOffset: number = tv.getUint32(eocd + 16, true);
  if (tv.getUint16(eocd + 4, true) !== 0 || tv.getUint16(eocd + 6, true) !== 0) {
    throw new ZipError(`${what}: multi-disk zip archives are not supported`);
  }
  const eocdPos = tailStart + eocd;
  let cdLimit = eocdPos;
  if (entries === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    // zip64: a locator sits right before the EOCD record.
    if (eocd < 20 || tv.getUint32(eocd - 20, true) !== ZIP64_LOCATOR_SIG) {
      throw new ZipError(`${what}: zip64 fields without a zip64 end-of-central-directory locator`);
    }
    const z64Pos = u64(tv, eocd - 20 + 8, what);
    if (z64Pos + 56 > eocdPos) throw new ZipError(`${what}: zip64 end-of-central-directory record out of range`);
    const z = dv(await src.read(z64Pos, 56, 'the zip64 end of central directory'));
    if (z.getUint32(0, true) !== ZIP64_EOCD_SIG) throw new ZipError(`${what}: bad zip64 end-of-central-directory signature`);
    entries = u64(z, 32, what);
    cdSize = u64(z, 40, what);
    cdOffset = u64(z, 48, what);
    cdLimit = z64Pos;
  }
  if (cdOffset + cdSize > cdLimit) {
    throw new ZipError(`${what}: central directory (${cdSize} bytes at ${cdOffset}) runs past its end record: truncated or corrupt`);
  }
  const cd = await src.read(cdOffset, cdSize, 'the central directory');
  const cv = dv(cd);
  const out = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < entries; i++) {
    if (p + 46 > cd.length || cv.getUint32(p, true) !== CENTRAL_SIG) {
      throw new ZipError(`${what}: central directory entry ${i} is corrupt`);
    }
    const flags = cv.getUint16(p + 8, true);
    const method = cv.getUint16(p + 10, true);
    const crc32 = cv.getUint32(p + 16, true);
    let compressedSize = cv.getUint32(p + 20, true);
    let size = cv.getUint32(p + 24, true);
    const nameLen = cv.getUint16(p + 28, true);
    const extraLen = cv.getUint16(p + 30, true);
    const commentLen = cv.getUint16(p + 32, true);
    let localHeaderOffset = cv.getUint32(p + 42, true);
    const end = p + 46 + nameLen + extraLen + commentLen;
    if (end > cd.length) throw new ZipError(`${what}: central directory entry ${i} runs past the directory`);
    const name = utf8.decode(cd.subarray(p + 46, p + 46 + nameLen));
    // zip64 extended information: the 64-bit values of the fields set to all ones, in order.
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = cv.getUint16(e, true);
      const len = cv.getUint16(e + 2, true);
      if (e + 4 + len > extraEnd) {
        // A zip64 field running past the entry's extra data was read past the end of the
        // directory (a RangeError from the DataView) or from the next entry.
        if (id === 0x0001) throw new ZipError(`${what}: ${name}: zip64 extra field runs past the entry's extra data`);
        break;
      }
      if (id === 0x0001) {
        let q = e + 4;
        const take = (): number => {
          if (q + 8 > e + 4 + len) throw new ZipError(`${what}: ${name}: short zip64 extra field`);
          const v = u64(cv, q, what);
          q += 8;
          return v;
        };
        if (size === 0xffffffff) size = take();
        if (compressedSize === 0xffffffff) compressedSize = take();
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = take();
      }
      e += 4 + len;
    }
    if (flags & 1) throw new ZipError(`${what}: ${name} is encrypted`);
    // A stored entry is its own bytes: sizes that differ mean a corrupt directory (and
    // reading `size` bytes would take the next entry's bytes as this one's).
    if (method === 0 && compressedSize !== size) {
      throw new ZipError(`${what}: ${name} is stored (not compressed) but has size ${size} and compressed size ${compressedSize}: corrupt directory`);
    }
    if (out.has(name)) throw new ZipError(`${what}: entry ${name} appears twice`);
    out.set(name, { name, method, flags, crc32, compressedSize, size, localHeaderOffset });
    p = end;
  }
  return out;
}

/** Where an entry's (stored or compressed) bytes start, from its local header. */
export async function zipEntryDataOffset(src: RandomAccess, entry: ZipEntry, what: string): Promise<number> {
  const h = await src.read(entry.localHeaderOffset, 30, `the local header of ${entry.name}`);
  const v = dv(h);
  if (v.getUint32(0, true) !== LOCAL_SIG) throw new ZipError(`${what}: ${entry.name}: bad local header signature`);
  const nameLen = v.getUint16(26, true);
  const extraLen = v.getUint16(28, true);
  const start = entry.localHeaderOffset + 30 + nameLen + extraLen;
  if (start + entry.compressedSize > src.size) {
    throw new ZipError(
      `${what}: truncated: ${entry.name} needs bytes ${start}..${start + entry.compressedSize}, but the file ends at ${src.size}`,
    );
  }
  return start;
}

/** An entry's whole content (inflated if deflated). For small entries: data.pkl, version. */
export async function readZipEntry(src: RandomAccess, entry: ZipEntry, what: string): Promise<Uint8Array> {
  const start = await zipEntryDataOffset(src, entry, what);
  const raw = await src.read(start, entry.compressedSize, entry.name);
  if (entry.method === 0) return raw;
  if (entry.method === 8) {
    // Corrupt deflate data threw zlib's own Error (found by test/fuzz.test.ts; inputs in
    // test/fixtures/fuzz/zip), and nothing bounded the output: a deflate bomb of a few
    // hundred KB inflated to hundreds of MB whatever the directory said. Now the
    // directory's size is capped, and inflating stops there.
    if (entry.size > MAX_INFLATED_ENTRY) {
      throw new ZipError(`${what}: ${entry.name} says it inflates to ${entry.size} bytes, over the ${MAX_INFLATED_ENTRY}-byte limit for such entries`);
    }
    let out: Uint8Array;
    try {
      out = new Uint8Array(inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.size) }));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new ZipError(`${what}: ${entry.name} inflates past the ${entry.size} bytes its directory entry says`);
      }
      throw new ZipError(`${what}: ${entry.name} has corrupt deflate data (${(e as Error).message})`);
    }
    if (out.length !== entry.size) throw new ZipError(`${what}: ${entry.name} inflates to ${out.length} bytes, not ${entry.size}`);
    return out;
  }
  throw new ZipError(`${what}: ${entry.name} uses compression method ${entry.method}; only stored and deflated entries are supported`);
}
