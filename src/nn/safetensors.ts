// The converted weights: safetensors files (https://github.com/huggingface/safetensors),
// parsed in the browser or in Node from bytes already in memory.
//
// Layout: u64 LE header length N; N bytes of JSON
//   {"__metadata__": {str: str}, name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}
// padded with spaces; then the data block, which the tensors' [begin, end) byte ranges
// (relative to the block) cover exactly, without overlaps or gaps. Data is little-endian.
//
// Browser-safe: no Node APIs. Views are cheap: `float32()` returns a Float32Array over
// the file's own bytes when the tensor is F32 and 4-byte aligned (always, for files our
// converter writes), so uploading does not copy the weights once more.
import type { WeightEntry } from './module.js';

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

export const SAFETENSORS_ELEMENT_SIZE: Record<SafetensorsDtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

export interface SafetensorsTensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** [begin, end) in the data block, as written in the header. */
  dataOffsets: [number, number];
  /** Absolute byte offset of the tensor in the file. */
  byteOffset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  /** Bytes before the data block: 8 + header length. */
  dataStart: number;
  metadata: Record<string, string>;
  /** In header order. */
  tensors: Map<string, SafetensorsTensorInfo>;
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

/** Largest header we accept (the reference implementation's limit is 100 MB). */
const MAX_HEADER = 100_000_000;

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * A header value for an error message: short, and safe at any nesting depth (found by
 * fuzzing: JSON.stringify of a deeply nested `dtype` threw "Maximum call stack size
 * exceeded", a RangeError, instead of a SafetensorsError; test/fixtures/fuzz/safetensors).
 */
function brief(v: unknown): string {
  if (Array.isArray(v)) {
    const items = v.slice(0, 8).map((x) => (Array.isArray(x) ? '[…]' : x !== null && typeof x === 'object' ? '{…}' : brief(x)));
    return `[${items.join(',')}${v.length > 8 ? ',…' : ''}]`;
  }
  if (v !== null && typeof v === 'object') return '{…}';
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 64 ? `${s.slice(0, 64)}…` : s;
}

function shapeNumel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The header length in the first 8 bytes, validated against the file's length. */
export function safetensorsHeaderLength(prefix: Uint8Array, fileLength: number, what = 'safetensors'): number {
  if (fileLength < 8 || prefix.length < 8) throw new SafetensorsError(`${what}: ${fileLength} bytes is too short for a safetensors file`);
  const v = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const lo = v.getUint32(0, true);
  const hi = v.getUint32(4, true);
  const n = hi * 2 ** 32 + lo;
  if (n > fileLength - 8) {
    throw new SafetensorsError(`${what}: header length ${n} runs past the end of the file (${fileLength} bytes): truncated or not safetensors`);
  }
  if (n > MAX_HEADER) throw new SafetensorsError(`${what}: header length ${n} is over the ${MAX_HEADER}-byte limit`);
  if (n < 2) throw new SafetensorsError(`${what}: header length ${n} is too short for a JSON object`);
  return n;
}

/**
 * Parses and validates a header. `prefix` holds at least the first 8 + N bytes of the
 * file; `fileLength` is the whole file's length (the data block must end exactly there).
 */
export function parseSafetensorsHeader(prefix: Uint8Array, fileLength: number, what = 'safetensors'): SafetensorsHeader {
  const n = safetensorsHeaderLength(prefix, fileLength, what);
  if (prefix.length < 8 + n) throw new SafetensorsError(`${what}: need the first ${8 + n} bytes to read the header`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(prefix.subarray(8, 8 + n));
  } catch {
    throw new SafetensorsError(`${what}: header is not valid UTF-8`);
  }
  if (!text.startsWith('{')) throw new SafetensorsError(`${what}: header does not start with '{'`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(`${what}: header is not valid JSON: ${(e as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new SafetensorsError(`${what}: header is not a JSON object`);

  const dataStart = 8 + n;
  const dataLength = fileLength - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, SafetensorsTensorInfo>();
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new SafetensorsError(`${what}: __metadata__ is not an object`);
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new SafetensorsError(`${what}: __metadata__.${k} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const bad = (msg: string): never => {
      throw new SafetensorsError(`${what}: tensor '${name}': ${msg}`);
    };
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) bad('entry is not an object');
    const entry = raw as Record<string, unknown>;
    for (const k of Object.keys(entry)) if (k !== 'dtype' && k !== 'shape' && k !== 'data_offsets') bad(`unknown field '${k}'`);
    const dtype = entry['dtype'];
    // Own keys only: `in` also let "toString", "constructor", ... through to a confusing error.
    if (typeof dtype !== 'string' || !Object.hasOwn(SAFETENSORS_ELEMENT_SIZE, dtype)) bad(`unknown dtype ${brief(dtype)}`);
    const shape = entry['shape'];
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      bad(`shape ${brief(shape)} is not a list of non-negative integers`);
    }
    const offsets = entry['data_offsets'];
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((d) => Number.isSafeInteger(d) && (d as number) >= 0) ||
      (offsets[0] as number) > (offsets[1] as number)
    ) {
      bad(`data_offsets ${brief(offsets)} is not [begin, end] with 0 <= begin <= end`);
    }
    const [begin, end] = offsets as [number, number];
    const es = SAFETENSORS_ELEMENT_SIZE[dtype as SafetensorsDtype];
    const want = shapeNumel(shape as number[]) * es;
    if (end - begin !== want) bad(`data_offsets [${begin}, ${end}] hold ${end - begin} bytes, dtype ${dtype} shape [${(shape as number[]).join(', ')}] needs ${want}`);
    if (end > dataLength) bad(`data_offsets [${begin}, ${end}] run past the data block (${dataLength} bytes): truncated file?`);
    tensors.set(name, {
      name,
      dtype: dtype as SafetensorsDtype,
      shape: [...(shape as number[])],
      dataOffsets: [begin, end],
      byteOffset: dataStart + begin,
      byteLength: end - begin,
    });
  }

  // The tensors must tile the data block: no overlap, no gap, nothing after the last.
  const sorted = [...tensors.values()].sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let at = 0;
  let prev = '';
  for (const t of sorted) {
    const [begin, end] = t.dataOffsets;
    if (begin < at) throw new SafetensorsError(`${what}: tensors '${prev}' and '${t.name}' overlap (byte ${begin} < ${at})`);
    if (begin > at) throw new SafetensorsError(`${what}: a gap of ${begin - at} bytes in the data block before '${t.name}' (at ${at})`);
    at = end;
    prev = t.name;
  }
  if (at !== dataLength) {
    throw new SafetensorsError(`${what}: the tensors cover ${at} bytes of the ${dataLength}-byte data block (${dataLength - at} bytes unaccounted for)`);
  }
  return { dataStart, metadata, tensors };
}

let f16Table: Float32Array | null = null;

/** float16 bits → float32, exact (NaN payloads kept), through a 64K-entry table. */
export function float16ToFloat32(bits: Uint16Array, out = new Float32Array(bits.length)): Float32Array {
  if (!f16Table) {
    const u = new Uint32Array(65536);
    const f = new Float32Array(u.buffer);
    for (let h = 0; h < 65536; h++) {
      const sign = (h & 0x8000) << 16;
      const e = (h >> 10) & 0x1f;
      const m = h & 0x3ff;
      if (e === 0x1f) u[h] = sign | 0x7f800000 | (m << 13);
      else if (e !== 0) u[h] = sign | ((e - 15 + 127) << 23) | (m << 13);
      else f[h] = (sign ? -1 : 1) * m * 2 ** -24; // zero and subnormals: exact in float32
    }
    f16Table = f;
  }
  const t = f16Table;
  for (let i = 0; i < bits.length; i++) out[i] = t[bits[i]!]!;
  return out;
}

/** bfloat16 bits → float32 (exact: bfloat16 is float32's top half). */
export function bfloat16ToFloat32(bits: Uint16Array, out = new Float32Array(bits.length)): Float32Array {
  const u = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i]! << 16;
  return out;
}

/** Reads `n` little-endian elements of a typed-array type, as a view when possible. */
function leView<T>(
  bytes: Uint8Array,
  es: number,
  make: (buf: ArrayBufferLike, off: number, n: number) => T,
): T {
  const n = bytes.byteLength / es;
  if (bytes.byteOffset % es === 0 && LITTLE_ENDIAN_HOST) return make(bytes.buffer, bytes.byteOffset, n);
  const copy = bytes.slice();
  if (!LITTLE_ENDIAN_HOST) {
    for (let i = 0; i < copy.length; i += es) copy.subarray(i, i + es).reverse();
  }
  return make(copy.buffer, 0, n);
}

/**
 * A tensor's little-endian bytes of `dtype` as float32: a view over `raw` for aligned
 * F32 (no copy), decoded into a new array for F16, BF16 and F64. Integer dtypes are an
 * error naming `what`.
 */
export function decodeFloat32(raw: Uint8Array, dtype: string, what: string): Float32Array {
  switch (dtype) {
    case 'F32':
      return leView(raw, 4, (b, o, n) => new Float32Array(b, o, n));
    case 'F16':
      return float16ToFloat32(leView(raw, 2, (b, o, n) => new Uint16Array(b, o, n)));
    case 'BF16':
      return bfloat16ToFloat32(leView(raw, 2, (b, o, n) => new Uint16Array(b, o, n)));
    case 'F64':
      return Float32Array.from(leView(raw, 8, (b, o, n) => new Float64Array(b, o, n)));
    default:
      throw new SafetensorsError(`${what} is ${dtype}, not a floating-point type`);
  }
}

/** A header's tensors: name → shape, in header order. */
export function tensorShapes(header: SafetensorsHeader): Map<string, number[]> {
  return new Map([...header.tensors].map(([k, v]) => [k, v.shape]));
}

/** Tensors by name: a file in memory (`SafetensorsFile`) or one read tensor by tensor. */
export interface TensorSource {
  /** Names the source in errors (the file's path). */
  readonly what: string;
  /** Name → shape, in header order. */
  shapes(): Map<string, number[]>;
  /** The tensor as a weight entry: its float32 values, or a reader of them. */
  entry(name: string): WeightEntry;
}

/** A parsed safetensors file over bytes in memory. Nothing is copied by parsing. */
export class SafetensorsFile implements TensorSource {
  private constructor(
    readonly bytes: Uint8Array,
    readonly header: SafetensorsHeader,
    readonly what: string,
  ) {}

  /** Parses and validates the whole file (header, dtypes, shapes, offsets tiling the data). */
  static parse(data: Uint8Array | ArrayBuffer, what = 'safetensors'): SafetensorsFile {
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
    return new SafetensorsFile(bytes, parseSafetensorsHeader(bytes, bytes.length, what), what);
  }

  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  get names(): string[] {
    return [...this.header.tensors.keys()];
  }

  shapes(): Map<string, number[]> {
    return tensorShapes(this.header);
  }

  info(name: string): SafetensorsTensorInfo {
    const t = this.header.tensors.get(name);
    if (!t) throw new SafetensorsError(`${this.what}: no tensor '${name}'`);
    return t;
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  /** The tensor's raw little-endian bytes (a view). */
  raw(name: string): Uint8Array {
    const t = this.info(name);
    return this.bytes.subarray(t.byteOffset, t.byteOffset + t.byteLength);
  }

  /** An F16 tensor's raw float16 bits (a view when aligned), for uploading as f16 without decoding. */
  float16Bits(name: string): Uint16Array {
    const t = this.info(name);
    if (t.dtype !== 'F16') throw new SafetensorsError(`${this.what}: tensor '${name}' is ${t.dtype}, not F16`);
    return leView(this.raw(name), 2, (b, o, n) => new Uint16Array(b, o, n));
  }

  /**
   * The tensor as float32: a view over the file's bytes for aligned F32 (no copy),
   * decoded into a new array for F16, BF16 and F64. Integer dtypes are an error.
   */
  float32(name: string): Float32Array {
    return decodeFloat32(this.raw(name), this.info(name).dtype, `${this.what}: tensor '${name}'`);
  }

  /** The tensor as a weight entry (its values in memory). */
  entry(name: string): WeightEntry {
    return { shape: this.info(name).shape, data: this.float32(name) };
  }
}

export interface WeightsDiff {
  /** Expected names the file lacks. */
  missing: string[];
  /** Names in the file that the architecture does not have. */
  unexpected: string[];
  /** Names whose shapes differ. */
  misshaped: { name: string; expected: number[]; actual: number[] }[];
}

export interface CheckWeightsOptions {
  /**
   * Names that may be absent from the file, and may be present without being expected.
   * Default: BatchNorm's `num_batches_tracked` counters (older writers leave them out,
   * our converter drops them as integer buffers).
   */
  optional?: (name: string) => boolean;
  /** How many names per category the error message shows (default 5). */
  show?: number;
  /** Names the weights in the error (default: the file's name). */
  what?: string;
}

const defaultOptional = (name: string): boolean => name.endsWith('num_batches_tracked');

/** Compares a file's tensors with the names and shapes the architecture expects. */
export function diffWeights(
  file: SafetensorsFile | ReadonlyMap<string, readonly number[]>,
  expected: ReadonlyMap<string, readonly number[]>,
  options: CheckWeightsOptions = {},
): WeightsDiff {
  const optional = options.optional ?? defaultOptional;
  const actual = file instanceof SafetensorsFile ? file.shapes() : file;
  const diff: WeightsDiff = { missing: [], unexpected: [], misshaped: [] };
  for (const [name, shape] of expected) {
    const got = actual.get(name);
    if (!got) {
      if (!optional(name)) diff.missing.push(name);
    } else if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
      diff.misshaped.push({ name, expected: [...shape], actual: [...got] });
    }
  }
  for (const name of actual.keys()) if (!expected.has(name) && !optional(name)) diff.unexpected.push(name);
  return diff;
}

/** A readable report of a diff, first few names of each kind; '' when they match. */
export function formatWeightsDiff(diff: WeightsDiff, show = 5): string {
  const list = (names: string[]): string =>
    names.slice(0, show).join(', ') + (names.length > show ? `, … (${names.length - show} more)` : '');
  const parts: string[] = [];
  if (diff.missing.length) parts.push(`${diff.missing.length} missing: ${list(diff.missing)}`);
  if (diff.unexpected.length) parts.push(`${diff.unexpected.length} unexpected: ${list(diff.unexpected)}`);
  if (diff.misshaped.length) {
    const shown = diff.misshaped.slice(0, show).map((m) => `${m.name} [${m.actual.join(', ')}] (expected [${m.expected.join(', ')}])`);
    parts.push(
      `${diff.misshaped.length} with the wrong shape: ${shown.join(', ')}${diff.misshaped.length > show ? `, … (${diff.misshaped.length - show} more)` : ''}`,
    );
  }
  return parts.join('; ');
}

export class WeightsMismatchError extends Error {
  override name = 'WeightsMismatchError';
  constructor(
    readonly diff: WeightsDiff,
    what: string,
    show: number,
  ) {
    super(`${what}: the weights do not match the network: ${formatWeightsDiff(diff, show)}`);
  }
}

/**
 * Throws `WeightsMismatchError` (listing the differences) unless the file's tensors (or
 * a name → shape map, e.g. from `parseSafetensorsHeader`) match `expected`.
 */
export function checkWeights(
  file: SafetensorsFile | ReadonlyMap<string, readonly number[]>,
  expected: ReadonlyMap<string, readonly number[]>,
  options: CheckWeightsOptions = {},
): void {
  const diff = diffWeights(file, expected, options);
  if (diff.missing.length || diff.unexpected.length || diff.misshaped.length) {
    const what = options.what ?? (file instanceof SafetensorsFile ? file.what : 'weights');
    throw new WeightsMismatchError(diff, what, options.show ?? 5);
  }
}
