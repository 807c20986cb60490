// PyTorch checkpoints (`torch.save` files) read without Python: format detection, the
// zip format (PyTorch >= 1.6) and the legacy format, the state_dict's tensors with
// their storages, offsets and strides. Tensor data is read per tensor with positional
// reads, so memory stays at about one tensor, not the file.
//
// Layouts (SPEC.md §5; torch/serialization.py):
// - zip: `<root>/data.pkl` (the pickled object), `<root>/data/<key>` (raw storage bytes,
//   little-endian, stored), `<root>/version`, sometimes `<root>/byteorder`.
// - legacy: pickles of the magic number 0x1950a86a20f9469cfc6c, the protocol version
//   1001, a sys-info dict, the object, the list of storage keys; then per key in that
//   order an int64 element count and the storage's bytes.
import {
  ELEMENT_SIZE,
  PickleError,
  PickleTruncatedError,
  PyDict,
  PyGlobal,
  StorageRef,
  TensorRef,
  describe,
  isInt,
  unpickle,
  type PyValue,
  type StorageDtype,
} from './pickle.js';
import { SourceFile, TruncatedError } from './source.js';
import { readZipDirectory, readZipEntry, zipEntryDataOffset, type ZipEntry } from './zip.js';

export type CheckpointFormat = 'zip' | 'legacy';

/** Where a root storage's bytes lie in the file. */
export interface StorageLocation {
  key: string;
  dtype: StorageDtype;
  /** Elements in the root storage. */
  numel: number;
  /** Byte offset of element 0 in the file. */
  fileOffset: number;
}

export interface CheckpointTensor {
  name: string;
  dtype: StorageDtype;
  shape: number[];
  /** In elements, as PyTorch's `stride()`. */
  stride: number[];
  /** Element offset of the tensor's first element in its root storage. */
  offset: number;
  numel: number;
  /** Row-major with no gaps (size-1 dimensions' strides do not matter). */
  contiguous: boolean;
  storage: StorageLocation;
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;
/** One tensor's limit (read and converted in one piece); MiDaS's largest is 19 MB. */
const MAX_TENSOR_BYTES = 2 ** 31 - 1;
/**
 * The limit for a tensor that repeats its storage's elements (zero or overlapping
 * strides, as `expand()` makes): it is read small and materialised whole, so without
 * a bound a 200-byte file could ask for 2 GB. Real ones are small (position ids).
 */
const MAX_EXPANDED_BYTES = 64 << 20;

/** A format by its first bytes (`PK\x03\x04` zip, a pickle PROTO opcode legacy). */
export function detectFormat(head: Uint8Array, what = 'checkpoint'): CheckpointFormat {
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) return 'zip';
  // Legacy files start with the pickled magic number: PROTO 2, LONG1 10 bytes (80 02 8a 0a).
  if (head.length >= 2 && head[0] === 0x80 && head[1]! >= 2 && head[1]! <= 5) return 'legacy';
  if (head.length >= 262 && new TextDecoder('latin1').decode(head.subarray(257, 262)) === 'ustar') {
    throw new CheckpointError(`${what}: a tar-format checkpoint (PyTorch < 0.1.10) is not supported`);
  }
  if (head.length === 0) throw new CheckpointError(`${what}: the file is empty`);
  const hex = [...head.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new CheckpointError(
    `${what}: not a PyTorch checkpoint: it starts with ${hex}, expected 50 4b 03 04 (zip) or 80 02 8a 0a (legacy torch.save)`,
  );
}

function str(v: PyValue): string | undefined {
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) return new TextDecoder('latin1').decode(v);
  return undefined;
}

/**
 * Reads a persistent id as torch writes it: ('storage', <XStorage>, key, location,
 * numel) in zip files, plus view_metadata (None or (view_key, offset, size)) in legacy ones.
 */
function storageFromPid(pid: PyValue, what: string): StorageRef {
  if (!Array.isArray(pid)) throw new CheckpointError(`${what}: persistent id is a ${describe(pid)}, not a tuple`);
  const kind = str(pid[0] ?? null);
  if (kind === 'module') {
    throw new CheckpointError(`${what}: the checkpoint holds a pickled nn.Module, not a state_dict (save model.state_dict() instead)`);
  }
  if (kind !== 'storage' || (pid.length !== 5 && pid.length !== 6)) {
    throw new CheckpointError(`${what}: unsupported persistent id (${pid.map((x) => describe(x)).join(', ')})`);
  }
  const [, type, keyV, locV, numelV, view] = pid;
  const dtype = type instanceof PyGlobal ? type.storageDtype : undefined;
  if (!dtype) throw new CheckpointError(`${what}: persistent id names ${describe(type!)}, not a storage type`);
  const key = str(keyV!);
  if (key === undefined) throw new CheckpointError(`${what}: storage key is a ${describe(keyV!)}`);
  const location = str(locV!) ?? '?';
  if (typeof numelV !== 'number' || !Number.isInteger(numelV) || numelV < 0) {
    throw new CheckpointError(`${what}: storage ${key} has size ${describe(numelV!)}`);
  }
  if (view === undefined || view === null) return new StorageRef(key, dtype, numelV, location);
  if (!Array.isArray(view) || view.length !== 3 || !isInt(view[1]!) || !isInt(view[2]!)) {
    throw new CheckpointError(`${what}: storage ${key} has bad view metadata ${describe(view)}`);
  }
  const offset = Number(view[1]);
  const size = Number(view[2]);
  if (offset < 0 || size < 0 || offset + size > numelV) {
    throw new CheckpointError(`${what}: storage view ${offset}+${size} runs past storage ${key} of ${numelV} elements`);
  }
  return new StorageRef(key, dtype, numelV, location, offset, size);
}

/** The state_dict in a checkpoint: the top-level dict, or its `model` (or `state_dict`) entry. */
function findStateDict(obj: PyValue, what: string): { entries: [string, TensorRef][]; wrappedIn: string | null } {
  if (!(obj instanceof PyDict)) {
    throw new CheckpointError(`${what}: the checkpoint holds a ${describe(obj)}, not a state_dict (a dict of tensors)`);
  }
  const hasTensors = [...obj.values()].some((v) => v instanceof TensorRef);
  if (!hasTensors) {
    for (const wrapper of ['model', 'state_dict']) {
      const inner = obj.get(wrapper);
      if (inner instanceof PyDict) return { entries: tensorEntries(inner, `${what}: '${wrapper}'`), wrappedIn: wrapper };
    }
    if (obj.size > 0) {
      const keys = [...obj.keys()].slice(0, 8).map((k) => describe(k)).join(', ');
      throw new CheckpointError(`${what}: the checkpoint is a dict without tensors (keys ${keys}) and with no 'model' state_dict in it`);
    }
  }
  return { entries: tensorEntries(obj, what), wrappedIn: null };
}

function tensorEntries(d: PyDict, what: string): [string, TensorRef][] {
  const out: [string, TensorRef][] = [];
  for (const [k, v] of d) {
    if (typeof k !== 'string') throw new CheckpointError(`${what}: state_dict key ${describe(k)} is not a string`);
    if (!(v instanceof TensorRef)) throw new CheckpointError(`${what}: state_dict entry '${k}' is a ${describe(v)}, not a tensor`);
    out.push([k, v]);
  }
  return out;
}

/** True when `stride` is row-major for `shape` (ignoring size-1 dimensions). */
export function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expect = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expect) return false;
    expect *= shape[i]!;
  }
  return true;
}

/**
 * Copies a strided tensor out of `span` (which starts at the tensor's first element) into
 * a contiguous row-major buffer. Copies element bits, so it works for every dtype.
 */
export function gatherStrided(span: Uint8Array, elementSize: number, shape: readonly number[], stride: readonly number[]): Uint8Array {
  const numel = shape.reduce((a, b) => a * b, 1);
  const k = elementSize === 8 ? 2 : 1;
  const unit = elementSize === 8 ? 4 : elementSize;
  const Ctor = unit === 1 ? Uint8Array : unit === 2 ? Uint16Array : Uint32Array;
  if (span.byteOffset % unit) span = span.slice();
  const src = new Ctor(span.buffer as ArrayBuffer, span.byteOffset, Math.floor(span.byteLength / unit));
  const out = new Ctor(numel * k);
  if (numel === 0) return new Uint8Array(out.buffer);
  const nd = shape.length;
  if (nd === 0) {
    for (let c = 0; c < k; c++) out[c] = src[c]!;
    return new Uint8Array(out.buffer);
  }
  const last = shape[nd - 1]!;
  const lastStride = stride[nd - 1]! * k;
  const idx = new Array<number>(nd).fill(0);
  let base = 0;
  let o = 0;
  for (;;) {
    if (k === 1) {
      for (let j = 0, s = base; j < last; j++, s += lastStride) out[o++] = src[s]!;
    } else {
      for (let j = 0, s = base; j < last; j++, s += lastStride) {
        out[o++] = src[s]!;
        out[o++] = src[s + 1]!;
      }
    }
    // Carry into the outer dimensions.
    let d = nd - 2;
    for (; d >= 0; d--) {
      idx[d]!++;
      base += stride[d]! * k;
      if (idx[d]! < shape[d]!) break;
      base -= stride[d]! * k * shape[d]!;
      idx[d] = 0;
    }
    if (d < 0) break;
  }
  return new Uint8Array(out.buffer);
}

export interface OpenCheckpointOptions {
  /** Initial bytes read to parse a legacy file's pickles (grows as needed). */
  legacyWindow?: number;
}

/** An open checkpoint: tensors described up front, data read on demand. */
export class Checkpoint {
  private constructor(
    readonly path: string,
    readonly format: CheckpointFormat,
    private readonly src: SourceFile,
    /** The state_dict's tensors in file (state_dict) order. */
    readonly tensors: CheckpointTensor[],
    /** 'model' when the state_dict came from `{"model": state_dict, ...}`. */
    readonly wrappedIn: string | null,
    /** Total bytes of the storages the tensors use. */
    readonly storageBytes: number,
  ) {}

  get fileSize(): number {
    return this.src.size;
  }

  static async open(path: string, options: OpenCheckpointOptions = {}): Promise<Checkpoint> {
    const src = await SourceFile.open(path);
    try {
      const head = await src.read(0, Math.min(src.size, 512), 'the file header');
      const format = detectFormat(head, path);
      const parsed = format === 'zip' ? await openZip(src, path) : await openLegacy(src, path, options.legacyWindow ?? 1 << 20);
      const tensors = describeTensors(parsed.entries, parsed.locate, path);
      const storages = new Map<string, StorageLocation>();
      for (const t of tensors) storages.set(t.storage.key, t.storage);
      let storageBytes = 0;
      for (const s of storages.values()) storageBytes += s.numel * ELEMENT_SIZE[s.dtype];
      return new Checkpoint(path, format, src, tensors, parsed.wrappedIn, storageBytes);
    } catch (e) {
      await src.close();
      if (e instanceof TruncatedError || e instanceof PickleTruncatedError) {
        throw new CheckpointError(e.message.startsWith(path) ? e.message : `${path}: ${e.message}`);
      }
      throw e;
    }
  }

  /** The tensor's elements, contiguous row-major, as little-endian bytes of its dtype. */
  async readTensor(t: CheckpointTensor): Promise<Uint8Array> {
    const es = ELEMENT_SIZE[t.dtype];
    if (t.numel === 0) return new Uint8Array(0);
    let last = t.offset;
    for (let i = 0; i < t.shape.length; i++) last += (t.shape[i]! - 1) * t.stride[i]!;
    const span = await this.src.readData(t.storage.fileOffset + t.offset * es, (last - t.offset + 1) * es, `tensor '${t.name}'`);
    return t.contiguous ? span : gatherStrided(span, es, t.shape, t.stride);
  }

  /** sha256 of the whole file (hex); cheap after every tensor has been read. */
  sha256(): Promise<string> {
    return this.src.sha256();
  }

  close(): Promise<void> {
    return this.src.close();
  }
}

interface Parsed {
  entries: [string, TensorRef][];
  wrappedIn: string | null;
  /** Root storage key → where its bytes are. */
  locate: (s: StorageRef, user: string) => StorageLocation;
}

function describeTensors(entries: [string, TensorRef][], locate: Parsed['locate'], what: string): CheckpointTensor[] {
  return entries.map(([name, ref]) => {
    if (!(ref.storage instanceof StorageRef)) {
      throw new CheckpointError(`${what}: tensor '${name}' is built on a ${describe(ref.storage)}, not a storage`);
    }
    const s = ref.storage;
    const loc = locate(s, name);
    const numel = ref.shape.reduce((a, b) => a * b, 1);
    if (numel * ELEMENT_SIZE[s.dtype] > MAX_TENSOR_BYTES) {
      throw new CheckpointError(`${what}: tensor '${name}' [${ref.shape.join(', ')}] is over ${MAX_TENSOR_BYTES} bytes`);
    }
    const offset = s.offset + ref.storageOffset;
    if (numel > 0) {
      let last = ref.storageOffset;
      for (let i = 0; i < ref.shape.length; i++) last += (ref.shape[i]! - 1) * ref.stride[i]!;
      if (last >= s.numel) {
        throw new CheckpointError(
          `${what}: tensor '${name}' (offset ${ref.storageOffset}, size [${ref.shape.join(', ')}], stride [${ref.stride.join(', ')}]) ` +
            `reaches element ${last} of a storage of ${s.numel}`,
        );
      }
      const spanned = last - ref.storageOffset + 1;
      if (numel > spanned && numel * ELEMENT_SIZE[s.dtype] > MAX_EXPANDED_BYTES) {
        throw new CheckpointError(
          `${what}: tensor '${name}' [${ref.shape.join(', ')}] with stride [${ref.stride.join(', ')}] repeats ${spanned} stored elements ` +
            `into ${numel * ELEMENT_SIZE[s.dtype]} bytes; expanded tensors are limited to ${MAX_EXPANDED_BYTES} bytes`,
        );
      }
    }
    return {
      name,
      dtype: s.dtype,
      shape: ref.shape,
      stride: ref.stride,
      offset,
      numel,
      contiguous: isContiguous(ref.shape, ref.stride),
      storage: loc,
    };
  });
}

async function openZip(src: SourceFile, what: string): Promise<Parsed> {
  const dir = await readZipDirectory(src, what);
  const pkls = [...dir.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length !== 1) {
    throw new CheckpointError(
      `${what}: a torch zip checkpoint has one <root>/data.pkl; this one has ${pkls.length ? pkls.join(', ') : 'none'} ` +
        `(entries: ${[...dir.keys()].slice(0, 6).join(', ')}${dir.size > 6 ? ', …' : ''})`,
    );
  }
  const root = pkls[0]!.slice(0, -'/data.pkl'.length);
  const byteorder = dir.get(`${root}/byteorder`);
  if (byteorder) {
    const order = new TextDecoder().decode(await readZipEntry(src, byteorder, what)).trim();
    if (order !== 'little') throw new CheckpointError(`${what}: storages are ${order}-endian; only little-endian checkpoints are supported`);
  }
  const pkl = await readZipEntry(src, dir.get(pkls[0]!)!, what);
  let value: PyValue;
  try {
    value = unpickle(pkl, 0, { what: `${what}: ${pkls[0]}`, persistentLoad: (pid) => storageFromPid(pid, `${what}: ${pkls[0]}`) }).value;
  } catch (e) {
    if (e instanceof PickleTruncatedError) throw new CheckpointError(e.message);
    throw e;
  }
  const { entries, wrappedIn } = findStateDict(value, what);

  // Resolve every storage's data entry up front (one small local-header read each).
  const locations = new Map<string, StorageLocation>();
  for (const [name, ref] of entries) {
    const s = ref.storage;
    if (!(s instanceof StorageRef) || locations.has(s.key)) continue;
    const entryName = `${root}/data/${s.key}`;
    const entry: ZipEntry | undefined = dir.get(entryName);
    if (!entry) {
      throw new CheckpointError(`${what}: the zip has no entry ${entryName} for storage '${s.key}' (used by '${name}'): truncated or incomplete archive`);
    }
    if (entry.method !== 0) {
      throw new CheckpointError(`${what}: ${entryName} is compressed (method ${entry.method}); torch writes storages uncompressed`);
    }
    const need = s.rootNumel * ELEMENT_SIZE[s.dtype];
    if (entry.size < need) {
      throw new CheckpointError(`${what}: ${entryName} holds ${entry.size} bytes, but storage '${s.key}' is ${s.rootNumel} ${s.dtype} (${need} bytes)`);
    }
    const fileOffset = await zipEntryDataOffset(src, entry, what);
    locations.set(s.key, { key: s.key, dtype: s.dtype, numel: s.rootNumel, fileOffset });
  }
  const locate = (s: StorageRef, user: string): StorageLocation => {
    const loc = locations.get(s.key)!;
    if (loc.dtype !== s.dtype) throw new CheckpointError(`${what}: storage '${s.key}' is used as ${loc.dtype} and ${s.dtype} (by '${user}')`);
    return loc;
  };
  return { entries, wrappedIn, locate };
}

async function openLegacy(src: SourceFile, what: string, window: number): Promise<Parsed> {
  for (;;) {
    const size = Math.min(window, src.size);
    const head = await src.read(0, size, 'the pickles');
    try {
      return await parseLegacy(src, head, what);
    } catch (e) {
      if (!(e instanceof PickleTruncatedError)) throw e;
      if (size >= src.size) {
        throw new CheckpointError(`${what}: truncated: the file ends inside its pickles (${e.message.replace(/^[^:]*: /, '')})`);
      }
      window *= 4;
    }
  }
}

async function parseLegacy(src: SourceFile, head: Uint8Array, what: string): Promise<Parsed> {
  let pos = 0;
  const next = (label: string, persistentLoad?: (pid: PyValue) => StorageRef): PyValue => {
    const r = unpickle(head, pos, { what: `${what}: ${label}`, ...(persistentLoad ? { persistentLoad } : {}) });
    pos = r.end;
    return r.value;
  };
  const magic = next('magic number');
  if (magic !== LEGACY_MAGIC) {
    throw new CheckpointError(`${what}: not a PyTorch checkpoint: a pickle, but without torch.save's magic number (got ${describe(magic)})`);
  }
  const protocol = next('protocol version');
  if (protocol !== LEGACY_PROTOCOL) throw new CheckpointError(`${what}: unsupported legacy protocol version ${describe(protocol)}, expected 1001`);
  const sysInfo = next('sys info');
  if (sysInfo instanceof PyDict && sysInfo.get('little_endian') === false) {
    throw new CheckpointError(`${what}: written on a big-endian machine; only little-endian checkpoints are supported`);
  }
  const storages = new Map<string, StorageRef>();
  const value = next('the object', (pid) => {
    const s = storageFromPid(pid, what);
    const seen = storages.get(s.key);
    if (seen && (seen.dtype !== s.dtype || seen.rootNumel !== s.rootNumel)) {
      throw new CheckpointError(`${what}: storage '${s.key}' is named as ${seen.dtype}[${seen.rootNumel}] and ${s.dtype}[${s.rootNumel}]`);
    }
    if (!seen) storages.set(s.key, s);
    return s;
  });
  const keysV = next('the storage keys');
  if (!Array.isArray(keysV)) throw new CheckpointError(`${what}: the storage key list is a ${describe(keysV)}`);
  const keys = keysV.map((k) => {
    const s = str(k);
    if (s === undefined) throw new CheckpointError(`${what}: a storage key is a ${describe(k)}`);
    return s;
  });
  const { entries, wrappedIn } = findStateDict(value, what);

  // Storages follow the pickles in key order: int64 element count, then the bytes.
  const locations = new Map<string, StorageLocation>();
  for (const key of keys) {
    const s = storages.get(key);
    if (!s) throw new CheckpointError(`${what}: storage key '${key}' is listed but no tensor names it`);
    if (src.size < pos + 8) {
      throw new CheckpointError(`${what}: truncated: storage '${key}' should start at byte ${pos}, but the file ends at ${src.size}`);
    }
    const countBytes = await src.read(pos, 8, `the size of storage '${key}'`);
    const count = new DataView(countBytes.buffer).getBigInt64(0, true);
    if (count !== BigInt(s.rootNumel)) {
      throw new CheckpointError(`${what}: storage '${key}' at byte ${pos} says ${count} elements, its tensors say ${s.rootNumel}: corrupt file`);
    }
    const bytes = s.rootNumel * ELEMENT_SIZE[s.dtype];
    if (pos + 8 + bytes > src.size) {
      throw new CheckpointError(
        `${what}: truncated: storage '${key}' (${s.rootNumel} ${s.dtype}) needs bytes ${pos + 8}..${pos + 8 + bytes}, but the file ends at ${src.size}`,
      );
    }
    locations.set(key, { key, dtype: s.dtype, numel: s.rootNumel, fileOffset: pos + 8 });
    pos += 8 + bytes;
  }
  const locate = (s: StorageRef, user: string): StorageLocation => {
    const loc = locations.get(s.key);
    if (!loc) throw new CheckpointError(`${what}: storage '${s.key}' (used by '${user}') is missing from the storage key list`);
    return loc;
  };
  return { entries, wrappedIn, locate };
}

// ---- convenience: the whole state_dict in memory -----------------------------------

export type TypedData = Float32Array | Float64Array | Uint16Array | BigInt64Array | Int32Array | Uint8Array;

/** A view of little-endian element bytes as their type (float16/bfloat16 as raw Uint16 bits, bool as Uint8). */
export function typedView(bytes: Uint8Array, dtype: StorageDtype): TypedData {
  const es = ELEMENT_SIZE[dtype];
  if (bytes.byteOffset % es) bytes = bytes.slice();
  const n = bytes.byteLength / es;
  switch (dtype) {
    case 'float32':
      return new Float32Array(bytes.buffer, bytes.byteOffset, n);
    case 'float64':
      return new Float64Array(bytes.buffer, bytes.byteOffset, n);
    case 'float16':
    case 'bfloat16':
      return new Uint16Array(bytes.buffer, bytes.byteOffset, n);
    case 'int64':
      return new BigInt64Array(bytes.buffer, bytes.byteOffset, n);
    case 'int32':
      return new Int32Array(bytes.buffer, bytes.byteOffset, n);
    case 'uint8':
    case 'bool':
      return new Uint8Array(bytes.buffer, bytes.byteOffset, n);
  }
}

export interface LoadedTensor {
  dtype: StorageDtype;
  shape: number[];
  data: TypedData;
}

/** Reads a checkpoint's whole state_dict into memory (for small files and tests). */
export async function readStateDict(path: string): Promise<Map<string, LoadedTensor>> {
  const ckpt = await Checkpoint.open(path);
  try {
    const out = new Map<string, LoadedTensor>();
    for (const t of ckpt.tensors) out.set(t.name, { dtype: t.dtype, shape: t.shape, data: typedView(await ckpt.readTensor(t), t.dtype) });
    return out;
  } finally {
    await ckpt.close();
  }
}

export { PickleError };
