// Bounded fuzzing of every reader that takes bytes from outside (issue #5): the pickle
// reader, the zip reader, checkpoints (zip and legacy), the converter, safetensors and
// the PNG and JPEG decoders. Seeds are the committed fixtures (and small safetensors
// files made here); each mutation is a few stacked byte-level edits (bit flips,
// "interesting" values, inserted / deleted / duplicated ranges, truncation, splices of
// two seeds, nudged length fields), plus structure-aware ones where a checksum or a
// length would stop a byte edit at the door (PNG chunk CRCs and zlib data, safetensors'
// JSON header).
//
// Every outcome must be a value (checked for consistency: pixels match the size, tensors
// their shape, a converted file reads back) or the target's own error class; any other
// exception (TypeError, RangeError, a zlib error, out of memory...) is a failure, and so
// is a call slower than HANG_MS, one that grows resident memory or array buffers by more
// than MEMORY_BOUND, or file descriptors left open. Inputs that fail are saved under
// test/fixtures/fuzz/<target>/<sha256 prefix>.<ext>, and the regression tests at the
// end replay every file there (each must now give a clean error).
//
// Deterministic: a fixed seed (FUZZ_SEED), so each target replays the same sequence of
// inputs; a time cap per target only cuts the sequence shorter on a slow machine.
// A synchronous reader cannot be interrupted in-process: a watchdog thread sees a call
// that runs past KILL_MS, saves its input as a fixture, says so on stderr and kills the
// test process, so an infinite loop fails the run instead of hanging it.
//
// Longer runs by hand: FUZZ_SCALE=20 FUZZ_SEED=123 FUZZ_SAVE_DIR=/tmp/fuzz npx vitest run test/fuzz.test.ts
// (FUZZ_HANG_MS and FUZZ_MEMORY_MB tighten the bounds to hunt for slow or greedy inputs).
//
// Bugs found and fixed. By the fuzzer (inputs kept in test/fixtures/fuzz/<target>/):
// - zip.ts readZipEntry: corrupt deflate data threw zlib's own Error ("invalid distance
//   too far back", ...): now a ZipError (fixtures zip/*, checkpoint/*, convert/*).
// - pickle.ts UNICODE: a \U escape past U+10FFFF threw a RangeError from
//   String.fromCodePoint: now a PickleError (pickle/2151a24616b0.pkl).
// - safetensors.ts: error messages quoted header values with JSON.stringify, which threw
//   "Maximum call stack size exceeded" on a deeply nested dtype: now a short, safe
//   description (safetensors/88b2c51567ad.safetensors).
// While writing it, with the hand-made inputs in the tests below:
// - zip.ts readZipEntry: inflating was unbounded (a 300 KB entry claiming 100 bytes
//   inflated to 256 MB): now capped at the directory's size, and sizes over 256 MB are
//   refused before inflating.
// - zip.ts readZipDirectory: a zip64 extra field longer than the entry's extra data was
//   read past the end of the directory (RangeError): now a ZipError; and a stored entry
//   whose size and compressed size differ is refused (its storage was read from the next
//   entry's bytes).
// - pickle.ts: OrderedDict(d), BUILD and _rebuild_tensor_v2's size / stride copy a
//   container the memo can name again and again (10^8 copies from 100 KB): copies are
//   now budgeted to a few times the pickle's size (PickleError "pickle bomb").
// - checkpoint.ts: a tensor with zero strides (expand()) on a one-element storage could
//   ask for a 1 GiB buffer from a 400-byte file: expanded tensors are now limited to 64 MiB.
// - convert.ts: a state_dict entry named '__metadata__' failed with planSafetensors'
//   plain Error: now a ConvertError.
// - safetensors.ts: dtype "toString" (or any Object.prototype name) passed the dtype check.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { deflateRawSync, deflateSync, inflateSync, constants as zlibConstants } from 'node:zlib';
import {
  CheckpointError,
  ConvertError,
  PickleError,
  StorageRef,
  TruncatedError,
  ZipError,
  convertCheckpoint,
  readStateDict,
  readZipDirectory,
  readZipEntry,
  unpickle,
  type PyValue,
} from '../tools/convert-weights/index.js';
import type { RandomAccess } from '../tools/convert-weights/source.js';
import { SafetensorsError, SafetensorsFile } from '../src/nn/safetensors.js';
import { decodeImage, ImageError } from '../src/node/image.js';

const HERE = import.meta.dirname;
const WEIGHTS = join(HERE, 'fixtures', 'weights');
const IMAGES = join(HERE, 'fixtures', 'images');
const FUZZ_FIXTURES = join(HERE, 'fixtures', 'fuzz');
/** Where failing inputs are saved (the fixtures folder unless set; for long runs by hand). */
const SAVE_DIR = process.env['FUZZ_SAVE_DIR'] ?? FUZZ_FIXTURES;

const SEED = Number(process.env['FUZZ_SEED'] ?? 20240505) >>> 0;
/** Multiplies mutation counts and time caps (for longer runs by hand). */
const SCALE = Number(process.env['FUZZ_SCALE'] ?? 1);
/** One call slower than this fails (normal calls take a few milliseconds). */
const HANG_MS = Number(process.env['FUZZ_HANG_MS'] ?? 3000);
/** The watchdog kills the process when one call has run this long. */
const KILL_MS = 30_000;
/** Peak resident memory may grow this much over the baseline taken before fuzzing. */
const MEMORY_BOUND = Number(process.env['FUZZ_MEMORY_MB'] ?? 1024) * 2 ** 20;
/** Inputs larger than this are not saved as fixtures. */
const MAX_FIXTURE = 64 << 10;

// ---- a seeded PRNG ---------------------------------------------------------------------------

/** mulberry32: 32 bits of state, good enough for picking mutations, fully reproducible. */
class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  u32(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : Math.floor((this.u32() / 2 ** 32) * n);
  }
  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  /** Small numbers much more often than large ones: 1..max. */
  small(max: number): number {
    return 1 + Math.min(max - 1, Math.floor(max ** (this.u32() / 2 ** 32)) - 1);
  }
}

function nameSeed(name: string): number {
  let h = 0x811c9dc5;
  for (const c of name) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193);
  return (h ^ SEED) >>> 0;
}

// ---- byte mutations ----------------------------------------------------------------------------

const INTERESTING_8 = [0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe, 0x40, 0x20];
const INTERESTING_32 = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 0x40000000];

/** What a mutation may draw on besides the input: the other seeds, and the format's tokens. */
interface Corpus {
  seeds: readonly Uint8Array[];
  /** Format-specific byte strings (opcodes, signatures, markers, JSON keys), AFL-dictionary style. */
  tokens: readonly Uint8Array[];
}

type Mutator = (b: Uint8Array, r: Rng, corpus: Corpus) => Uint8Array;

const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

/** Writes `v` as a `bytes`-byte integer at `at`, little- or big-endian, clipped to the buffer. */
function putInt(b: Uint8Array, at: number, v: number, bytes: number, le: boolean): void {
  let x = BigInt.asUintN(bytes * 8, BigInt(Math.trunc(v)));
  for (let i = 0; i < bytes; i++) {
    const p = le ? at + i : at + bytes - 1 - i;
    if (p < b.length) b[p] = Number(x & 0xffn);
    x >>= 8n;
  }
}

function getInt(b: Uint8Array, at: number, bytes: number, le: boolean): number {
  let v = 0;
  for (let i = 0; i < bytes; i++) v = v * 256 + (b[le ? at + bytes - 1 - i : at + i] ?? 0);
  return v;
}

const MUTATORS: [weight: number, name: string, fn: Mutator][] = [
  [4, 'flip bits', (b, r) => {
    for (let n = r.small(8); n > 0 && b.length; n--) b[r.int(b.length)]! ^= 1 << r.int(8);
    return b;
  }],
  [3, 'interesting byte', (b, r) => {
    for (let n = r.small(4); n > 0 && b.length; n--) b[r.int(b.length)] = r.pick(INTERESTING_8);
    return b;
  }],
  [3, 'interesting word', (b, r) => {
    if (b.length) putInt(b, r.int(b.length), r.pick(INTERESTING_32), r.pick([2, 4, 8]), r.chance(0.5));
    return b;
  }],
  [2, 'random bytes', (b, r) => {
    const at = r.int(b.length);
    for (let i = at, n = r.small(16); i < b.length && n > 0; i++, n--) b[i] = r.int(256);
    return b;
  }],
  [2, 'insert', (b, r) => {
    const at = r.int(b.length + 1);
    const n = r.small(64);
    const fill = r.chance(0.5) ? r.pick(INTERESTING_8) : -1;
    const ins = Uint8Array.from({ length: n }, () => (fill >= 0 ? fill : r.int(256)));
    return concat(b.subarray(0, at), ins, b.subarray(at));
  }],
  [2, 'delete', (b, r) => {
    const at = r.int(b.length);
    return concat(b.subarray(0, at), b.subarray(Math.min(b.length, at + r.small(64))));
  }],
  [1, 'truncate', (b, r) => b.slice(0, r.int(b.length))],
  [2, 'duplicate chunk', (b, r) => {
    const from = r.int(b.length);
    const chunk = b.slice(from, from + r.small(256));
    const at = r.int(b.length + 1);
    return concat(b.subarray(0, at), chunk, b.subarray(at));
  }],
  [1, 'splice seeds', (b, r, { seeds }) => {
    const other = r.pick(seeds);
    return concat(b.subarray(0, r.int(b.length + 1)), other.subarray(r.int(other.length + 1)));
  }],
  [3, 'token', (b, r, { tokens }) => {
    if (!tokens.length) return b;
    const tok = r.pick(tokens);
    const at = r.int(b.length + 1);
    if (r.chance(0.5)) return concat(b.subarray(0, at), tok, b.subarray(at));
    const out = b.length >= at + tok.length ? b : concat(b, new Uint8Array(at + tok.length - b.length));
    out.set(tok, at);
    return out;
  }],
  [4, 'tweak length field', (b, r) => {
    // A field that looks like a length or an offset: an integer no larger than the
    // file, in either byte order; nudge it, or set it to something absurd.
    for (let tries = 0; tries < 16 && b.length >= 4; tries++) {
      const width = r.pick([1, 2, 4, 8]);
      const le = r.chance(0.5);
      const at = r.int(b.length - Math.min(width, b.length) + 1);
      const v = getInt(b, at, width, le);
      if (v === 0 || v > b.length * 2) continue;
      const nv = r.pick([v + 1, v - 1, v + r.small(64), v - r.small(64), v * 2, v >>> 1, 0, 2 ** (8 * width) - 1, 2 ** (8 * width - 1), b.length, b.length + 1]);
      putInt(b, at, nv, width, le);
      return b;
    }
    return b;
  }],
];
const MUTATOR_WEIGHT = MUTATORS.reduce((a, [w]) => a + w, 0);

/** One to four stacked byte mutations of a copy of `seed`. */
function mutateBytes(seed: Uint8Array, r: Rng, corpus: Corpus): Uint8Array {
  let b: Uint8Array = Uint8Array.from(seed);
  for (let n = 1 + r.int(r.chance(0.7) ? 2 : 4); n > 0; n--) {
    let w = r.int(MUTATOR_WEIGHT);
    for (const [weight, , fn] of MUTATORS) {
      if (w < weight) {
        b = fn(b, r, corpus);
        break;
      }
      w -= weight;
    }
  }
  return b;
}

// ---- a memory-backed RandomAccess (what the zip reader reads through) ------------------------

/** Bytes in memory with SourceFile's read contract: a bad read is an Error, past the end a TruncatedError. */
class MemorySource implements RandomAccess {
  constructor(private readonly bytes: Uint8Array) {}
  get size(): number {
    return this.bytes.length;
  }
  async read(pos: number, length: number, what = 'data'): Promise<Uint8Array> {
    if (!Number.isSafeInteger(pos) || !Number.isSafeInteger(length) || pos < 0 || length < 0) {
      throw new Error(`bad read of ${what}: ${length} bytes at ${pos}`);
    }
    if (pos + length > this.bytes.length) throw new TruncatedError(`truncated: ${what} needs bytes ${pos}..${pos + length}`);
    return this.bytes.slice(pos, pos + length);
  }
}

// ---- PNG helpers (chunks, CRCs) ----------------------------------------------------------------

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

interface PngChunk {
  type: string;
  data: Uint8Array;
}

/** The chunks of a PNG as far as they parse (null when not even the signature is there). */
function pngChunks(b: Uint8Array): PngChunk[] | null {
  if (b.length < 8) return null;
  const out: PngChunk[] = [];
  let p = 8;
  while (p + 12 <= b.length) {
    const len = getInt(b, p, 4, false);
    if (p + 12 + len > b.length) break;
    out.push({ type: String.fromCharCode(...b.subarray(p + 4, p + 8)), data: b.subarray(p + 8, p + 8 + len) });
    p += 12 + len;
  }
  return out;
}

function pngFromChunks(chunks: PngChunk[]): Uint8Array {
  const parts: Uint8Array[] = [Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])];
  for (const c of chunks) {
    const body = concat(Uint8Array.from(c.type, (ch) => ch.charCodeAt(0)), c.data);
    const head = new Uint8Array(4);
    putInt(head, 0, c.data.length, 4, false);
    const crc = new Uint8Array(4);
    putInt(crc, 0, crc32(body), 4, false);
    parts.push(head, body, crc);
  }
  return concat(...parts);
}

/**
 * PNG mutations past the CRC and zlib checks: byte edits with the CRCs fixed up
 * afterwards, edits of one chunk's data (IHDR, PLTE, tRNS, eXIf...), or edits of the
 * inflated image data (filter bytes, scanlines), recompressed.
 */
function mutatePng(seed: Uint8Array, r: Rng, corpus: Corpus): Uint8Array {
  const mode = r.int(4);
  if (mode === 0) return mutateBytes(seed, r, corpus);
  const chunks = pngChunks(seed)!;
  if (mode === 1) {
    const b = mutateBytes(seed, r, corpus);
    const parsed = pngChunks(b);
    return parsed && b.length > 8 ? pngFromChunks(parsed) : b;
  }
  if (mode === 2) {
    const i = r.int(chunks.length);
    const out = chunks.map((c) => ({ ...c }));
    out[i] = { type: out[i]!.type, data: mutateBytes(out[i]!.data, r, { seeds: [out[i]!.data], tokens: corpus.tokens }) };
    if (r.chance(0.2)) out.splice(r.int(out.length), 0, { type: r.pick(['IDAT', 'tRNS', 'PLTE', 'eXIf', 'IHDR', 'IEND']), data: out[r.int(out.length)]!.data });
    return pngFromChunks(out);
  }
  const idat = concat(...chunks.filter((c) => c.type === 'IDAT').map((c) => c.data));
  let raw: Uint8Array;
  try {
    raw = inflateSync(idat);
  } catch {
    return mutateBytes(seed, r, corpus);
  }
  const data = deflateSync(mutateBytes(raw, r, { seeds: [raw], tokens: [] }));
  const out: PngChunk[] = [];
  let placed = false;
  for (const c of chunks) {
    if (c.type !== 'IDAT') out.push(c);
    else if (!placed) {
      // Sometimes split it over several IDAT chunks, as encoders do.
      const cut = r.chance(0.3) ? r.int(data.length + 1) : data.length;
      out.push({ type: 'IDAT', data: data.subarray(0, cut) });
      if (cut < data.length) out.push({ type: 'IDAT', data: data.subarray(cut) });
      placed = true;
    }
  }
  return pngFromChunks(out);
}

// ---- JPEG: the frame header's size ----------------------------------------------------------------

/**
 * Byte mutations, and sometimes a new image size in the frame header (SOF0-SOF2): the
 * decoder must refuse or decode a file whose header promises far more pixels than its
 * data holds, within the time and memory bounds.
 */
function mutateJpeg(seed: Uint8Array, r: Rng, corpus: Corpus): Uint8Array {
  const b = r.chance(0.7) ? mutateBytes(seed, r, corpus) : Uint8Array.from(seed);
  if (r.chance(0.7)) return b;
  for (let p = 2; p + 9 < b.length; ) {
    if (b[p] !== 0xff) break;
    const marker = b[p + 1]!;
    if (marker >= 0xc0 && marker <= 0xc2) {
      const sizes = [0, 1, 8, 17, 0x100, 0x1000, 0x2000, 0x2710, 0x4000, 0x7fff, 0xffff];
      if (r.chance(0.8)) putInt(b, p + 5, r.pick(sizes), 2, false); // height
      if (r.chance(0.8)) putInt(b, p + 7, r.pick(sizes), 2, false); // width
      break;
    }
    p += 2 + getInt(b, p + 2, 2, false);
  }
  return b;
}

// ---- safetensors seeds and header mutations --------------------------------------------------------

function safetensors(header: unknown, data: Uint8Array, pad = true): Uint8Array {
  let json: Uint8Array = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  if (pad && json.length % 8) json = concat(json, new Uint8Array(8 - (json.length % 8)).fill(0x20));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function safetensorsSeeds(): Uint8Array[] {
  const r = new Rng(7);
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => r.int(256));
  const t = (dtype: string, shape: number[], b: number, e: number) => ({ dtype, shape, data_offsets: [b, e] });
  return [
    safetensors({ __metadata__: { format: 'pt', source: 'x.pt' }, w: t('F32', [2, 3], 0, 24), b: t('F32', [3], 24, 36) }, bytes(36)),
    safetensors({ h: t('F16', [4], 0, 8), bf: t('BF16', [2, 2], 8, 16), d: t('F64', [1], 16, 24) }, bytes(24)),
    safetensors({ i: t('I64', [2], 0, 16), u: t('U8', [3], 16, 19), q: t('BOOL', [1], 19, 20), s: t('F32', [], 20, 24) }, bytes(24)),
    safetensors({ __metadata__: {} }, new Uint8Array(0)),
    safetensors({ z: t('F32', [0, 5], 0, 0), o: t('F32', [1, 1, 1, 2], 0, 8) }, bytes(8)),
    // Not padded, so tensors start unaligned: the views must copy.
    safetensors('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"v":{"dtype":"F64","shape":[1],"data_offsets":[8,16]}}', bytes(16), false),
  ];
}

/** Stands for an array nested DEEP_NESTING deep, spliced into the JSON text after stringify. */
const DEEP = '\u0000deep';
const DEEP_NESTING = 20000;
const NASTY_VALUES: unknown[] = [
  -1, 0, 1, 1.5, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 1e308, -0, '4', null, true, [], {}, [1, 2], 'F32', '__metadata__', 'toString', '__proto__', DEEP,
];

/** A fresh copy of a nasty value (the header is edited in place). */
const nasty = (r: Rng): unknown => structuredClone(r.pick(NASTY_VALUES));

/** Edits the JSON header as JSON (a value, a key, an entry), then re-frames it with the right length. */
function mutateSafetensors(seed: Uint8Array, r: Rng, corpus: Corpus): Uint8Array {
  if (r.chance(0.5)) return mutateBytes(seed, r, corpus);
  const n = Number(new DataView(seed.buffer, seed.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(seed.subarray(8, 8 + n))) as Record<string, unknown>;
  let data: Uint8Array = seed.subarray(8 + n);
  const names = Object.keys(header);
  const edits = 1 + r.int(2);
  for (let k = 0; k < edits; k++) {
    const name = names.length ? r.pick(names) : 'x';
    const entry = header[name];
    switch (r.int(8)) {
      case 0: // a field of an entry gets a nasty value
      case 1:
        if (entry && typeof entry === 'object') {
          const obj = entry as Record<string, unknown>;
          const field = r.pick([...Object.keys(obj), 'extra']);
          const cur = obj[field];
          if (Array.isArray(cur) && cur.length && r.chance(0.7)) {
            const copy = [...cur];
            copy[r.int(copy.length)] = nasty(r);
            obj[field] = copy;
          } else obj[field] = nasty(r);
        }
        break;
      case 2: // a dimension more or less
        if (entry && typeof entry === 'object' && Array.isArray((entry as Record<string, unknown>)['shape'])) {
          const shape = [...((entry as Record<string, unknown>)['shape'] as unknown[])];
          if (r.chance(0.5)) shape.splice(r.int(shape.length + 1), 0, r.pick([0, 1, 2, 7, 2 ** 20, 2 ** 40]));
          else shape.splice(r.int(shape.length), 1);
          (entry as Record<string, unknown>)['shape'] = shape;
        }
        break;
      case 3: // offsets nudged
        if (entry && typeof entry === 'object' && Array.isArray((entry as Record<string, unknown>)['data_offsets'])) {
          const o = [...((entry as Record<string, unknown>)['data_offsets'] as number[])];
          const i = r.int(2);
          o[i] = (o[i] ?? 0) + r.pick([-8, -4, -1, 1, 4, 8, 2 ** 32, 2 ** 52]);
          (entry as Record<string, unknown>)['data_offsets'] = o;
        }
        break;
      case 4: // an entry removed, duplicated under another name, or renamed
        if (r.chance(0.4)) delete header[name];
        else header[r.pick(['__metadata__', name + '2', '', '__proto__', 'constructor'])] = r.chance(0.5) ? entry : nasty(r);
        break;
      case 5: // the whole entry replaced
        header[name] = nasty(r);
        break;
      case 6: // the data block longer or shorter
        data = r.chance(0.5) ? data.subarray(0, r.int(data.length + 1)) : concat(data, new Uint8Array(r.small(16)));
        break;
      default: // metadata values
        header['__metadata__'] = r.chance(0.5) ? { a: nasty(r) } : nasty(r);
    }
  }
  let text = JSON.stringify(header).replaceAll(JSON.stringify(DEEP), '['.repeat(DEEP_NESTING) + ']'.repeat(DEEP_NESTING));
  if (r.chance(0.1)) text = text.replace(/\}$/, `,"${r.pick(names.length ? names : ['x'])}":{}}`); // a duplicate key
  return safetensors(text, data, r.chance(0.8));
}

// ---- dictionaries ----------------------------------------------------------------------------------

/** Byte strings from latin-1 text (\xNN escapes for binary). */
const tok = (...items: string[]): Uint8Array[] => items.map((s) => Uint8Array.from(s, (c) => c.charCodeAt(0)));

const PICKLE_TOKENS = tok(
  // every opcode alone
  ...'()0123FIJKLMNPQRSTUVXabcdeghijlopqrstu}\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98.'.split(''),
  // opcodes with arguments, some absurd
  'V\\U00110000\n', 'V\\uD800\n', 'V\\Uffffffff\n', 'I99999999999999999999999\n', 'I01\n', 'L-1L\n', 'F1e999\n', 'Fnan\n', "S'a\\x'\n", 'S"\n',
  'p99999999999\n', 'g-1\n', 'g1e3\n', 'h\x00', 'q\x00', 'j\xff\xff\xff\xff', 'r\x00\x00\x00\x00',
  'J\xff\xff\xff\xff', 'J\xff\xff\xff\x7f', 'M\xff\xff', '\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f', '\x8a\x00', '\x8b\xff\xff\xff\x7f', '\x8b\x00\x10\x00\x00',
  'X\xff\xff\xff\xff', 'X\x00\x00\x00\x00', '\x8d\xff\xff\xff\xff\xff\xff\xff\xff', '\x8e\x00\x00\x00\x00\x00\x00\x10\x00', 'T\xff\xff\xff\xff', 'C\xff', 'U\x05storage',
  '\x95\xff\xff\xff\xff\xff\xff\xff\xff', '\x80\x06', '\x80\x02',
  'ccollections\nOrderedDict\n', 'ctorch._utils\n_rebuild_tensor_v2\n', 'ctorch._utils\n_rebuild_parameter\n', 'ctorch\nFloatStorage\n',
  'ctorch\nHalfStorage\n', 'ctorch\nLongStorage\n', 'ctorch\nBoolStorage\n', 'cos\nsystem\n', 'ctorch\nload\n',
  '\x8c\x07storage', '\x8c\x06module', '\x8c\x03cpu', '\x8c\x01w', '\x8c\x0c__metadata__', 'X\x07\x00\x00\x00storage',
  '(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuJ\xff\xff\xff\x7ftQ',
  ')\x85', '))\x86', 'N\x85R', '(t', '(l', '(d', '}(u', '](e', '\x8f(\x90', '(\x91', '0', '1', '2',
);

const ZIP_TOKENS = tok(
  'PK\x01\x02', 'PK\x03\x04', 'PK\x05\x06', 'PK\x06\x06', 'PK\x06\x07', 'PK\x07\x08',
  '\x01\x00\x08\x00', '\x01\x00\x18\x00', '\x01\x00\xff\xff', '\xff\xff\xff\xff', '\xff\xff', '\x08\x00', '\x01\x00',
  'data.pkl', '/data/0', '/data/1', '/byteorder', '/version', 'big', 'little', '\x00\x00\x00\x00\x00\x00\x00\x80',
);

const SAFETENSORS_TOKENS = tok(
  '"dtype"', '"shape"', '"data_offsets"', '"__metadata__"', '"F32"', '"F16"', '"BF16"', '"F64"', '"I64"', '"BOOL"', '"F8_E4M3"',
  '[', ']', '{', '}', ',', ':', '-1', '1e400', '9007199254740993', '18446744073709551616', '0.5', 'null', '"\\u0000"', '"\\ud800"',
  '\xff\xff\xff\xff\xff\xff\xff\x0f', '\x00\x00\x00\x00\x00\x00\x00\x00', '\xef\xbb\xbf', '\xc0\x80',
);

const PNG_TOKENS = tok(
  'IHDR', 'IDAT', 'IEND', 'PLTE', 'tRNS', 'eXIf', 'gAMA', 'sBIT', 'iCCP', 'zTXt',
  '\x00\x00\x00\x00', '\x7f\xff\xff\xff', '\x00\x01\x86\xa0', 'MM\x00\x2a\x00\x00\x00\x08', 'II\x2a\x00\x08\x00\x00\x00',
  '\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06', '\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00', '\x78\x9c', '\x78\xda',
);

const JPEG_TOKENS = tok(
  '\xff\xd8', '\xff\xd9', '\xff\xc0', '\xff\xc1', '\xff\xc2', '\xff\xc3', '\xff\xc9', '\xff\xc4', '\xff\xdb', '\xff\xdd\x00\x04\x00\x01',
  '\xff\xda', '\xff\xd0', '\xff\xd7', '\xff\x00', '\xff\xff', '\xff\xe0\x00\x10JFIF\x00', '\xff\xe1\x00\x22Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08',
  '\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x02', '\xff\xdc\x00\x04\xff\xff', '\x08\xff\xff\xff\xff\x03', '\x01\x11\x00', '\x01\x44\x00',
  '\x00\x00', '\xff\xff\xff\xff',
);

// ---- the targets ---------------------------------------------------------------------------------

interface Target {
  name: string;
  /** Fixture file extension. */
  ext: string;
  seeds: Uint8Array[];
  tokens: Uint8Array[];
  mutate: Mutator;
  run: (bytes: Uint8Array) => unknown;
  /** The errors this reader documents (everything else is a bug). */
  clean: readonly (abstract new (...args: never[]) => Error)[];
  mutations: number;
  capMs: number;
}

const read = (dir: string, file: string): Uint8Array => Uint8Array.from(readFileSync(join(dir, file)));
const files = (dir: string, re: RegExp): string[] => readdirSync(dir).filter((f) => re.test(f)).sort();

let tmp = '';
let fileCounter = 0;
/** A fresh temporary path holding `bytes` (the checkpoint readers open files). */
function tempFile(bytes: Uint8Array, ext: string): string {
  // No '-<hex>.' in the name: the converter would check the file's sha256 against it.
  const p = join(tmp, `input_${fileCounter++ % 4}.${ext}`);
  writeFileSync(p, bytes);
  return p;
}

/** Unpickles up to six pickles in a row (a legacy checkpoint is five), storages resolved to a dummy. */
function unpickleAll(bytes: Uint8Array): PyValue[] {
  const out: PyValue[] = [];
  let pos = 0;
  for (let i = 0; i < 6 && pos < bytes.length; i++) {
    const r = unpickle(bytes, pos, { persistentLoad: () => new StorageRef('0', 'float32', 1, 'cpu') });
    out.push(r.value);
    pos = r.end;
  }
  return out;
}

async function readWholeZip(bytes: Uint8Array): Promise<number> {
  const src = new MemorySource(bytes);
  const dir = await readZipDirectory(src, 'fuzz.zip');
  let total = 0;
  for (const e of [...dir.values()].slice(0, 64)) total += (await readZipEntry(src, e, 'fuzz.zip')).length;
  return total;
}

async function convertOnce(bytes: Uint8Array): Promise<unknown> {
  const input = tempFile(bytes, 'pt');
  const outDir = join(tmp, 'out');
  // f16 for half the inputs (chosen by content, so replays pick the same).
  const dtype = crc32(bytes) & 1 ? 'f16' : 'f32';
  try {
    const stats = await convertCheckpoint(input, join(outDir, 'out.safetensors'), { dtype });
    // What it wrote reads back, with every tensor it counted.
    const written = SafetensorsFile.parse(readFileSync(join(outDir, 'out.safetensors')));
    if (written.names.length !== stats.tensors) throw new Error(`invariant: ${stats.tensors} tensors converted, ${written.names.length} written`);
    return stats;
  } finally {
    const left = readdirSync(outDir).filter((f) => f !== 'out.safetensors');
    rmSync(join(outDir, 'out.safetensors'), { force: true });
    // A failed conversion must not leave its temporary file behind.
    if (left.length) throw new Error(`convertCheckpoint left ${left.join(', ')} behind`);
  }
}

/** Every tensor's data holds as many elements as its shape says. */
async function readCheckpoint(bytes: Uint8Array): Promise<number> {
  const sd = await readStateDict(tempFile(bytes, 'pt'));
  for (const [name, t] of sd) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== numel) throw new Error(`invariant: tensor '${name}' [${t.shape.join(', ')}] has ${t.data.length} elements`);
  }
  return sd.size;
}

/** A decoded image is width x height RGB. */
function decode(bytes: Uint8Array, name: string): { width: number; height: number } {
  const img = decodeImage(bytes, name);
  if (!(img.width >= 1 && img.height >= 1 && img.data.length === img.width * img.height * 3)) {
    throw new Error(`invariant: decoded ${img.width}x${img.height} with ${img.data.length} bytes`);
  }
  return { width: img.width, height: img.height };
}

function readSafetensors(bytes: Uint8Array): number {
  const f = SafetensorsFile.parse(bytes, 'fuzz.safetensors');
  let n = 0;
  for (const name of f.names) {
    const info = f.info(name);
    n += f.raw(name).length;
    if (info.dtype === 'F16') n += f.float16Bits(name).length;
    if (['F32', 'F16', 'BF16', 'F64'].includes(info.dtype)) n += f.float32(name).length;
  }
  return n;
}

async function buildTargets(): Promise<Target[]> {
  const zipFixtures = files(WEIGHTS, /_zip\.pt$/).map((f) => read(WEIGHTS, f));
  const legacyFixtures = files(WEIGHTS, /_legacy\.pt$/).map((f) => read(WEIGHTS, f));
  const pngs = files(IMAGES, /\.png$/).map((f) => read(IMAGES, f));
  const jpegs = files(IMAGES, /\.jpg$/).map((f) => read(IMAGES, f));
  // The pickles inside the zip checkpoints, and the legacy files (pickles one after another).
  const pickles: Uint8Array[] = [...legacyFixtures];
  for (const z of zipFixtures) {
    const src = new MemorySource(z);
    for (const e of (await readZipDirectory(src, 'seed')).values()) {
      if (e.name.endsWith('/data.pkl')) pickles.push(await readZipEntry(src, e, 'seed'));
    }
  }
  const checkpointSeeds = [...zipFixtures, ...legacyFixtures];
  return [
    {
      name: 'pickle',
      ext: 'pkl',
      seeds: pickles,
      tokens: PICKLE_TOKENS,
      mutate: mutateBytes,
      run: unpickleAll,
      clean: [PickleError],
      mutations: 20000,
      capMs: 6000,
    },
    {
      name: 'zip',
      ext: 'zip',
      seeds: zipFixtures,
      tokens: ZIP_TOKENS,
      mutate: mutateBytes,
      run: readWholeZip,
      clean: [ZipError, TruncatedError],
      mutations: 20000,
      capMs: 6000,
    },
    {
      name: 'checkpoint',
      ext: 'pt',
      seeds: checkpointSeeds,
      tokens: [...ZIP_TOKENS, ...PICKLE_TOKENS],
      mutate: mutateBytes,
      run: readCheckpoint,
      clean: [CheckpointError, PickleError, ZipError, TruncatedError],
      mutations: 4000,
      capMs: 10000,
    },
    {
      name: 'convert',
      ext: 'pt',
      seeds: checkpointSeeds,
      tokens: [...ZIP_TOKENS, ...PICKLE_TOKENS],
      mutate: mutateBytes,
      run: convertOnce,
      clean: [ConvertError, CheckpointError, PickleError, ZipError, TruncatedError],
      mutations: 2000,
      capMs: 10000,
    },
    {
      name: 'safetensors',
      ext: 'safetensors',
      seeds: safetensorsSeeds(),
      tokens: SAFETENSORS_TOKENS,
      mutate: mutateSafetensors,
      run: readSafetensors,
      clean: [SafetensorsError],
      mutations: 20000,
      capMs: 6000,
    },
    {
      name: 'png',
      ext: 'png',
      seeds: pngs,
      tokens: PNG_TOKENS,
      mutate: mutatePng,
      run: (b) => decode(b, 'fuzz.png'),
      clean: [ImageError],
      mutations: 20000,
      capMs: 6000,
    },
    {
      name: 'jpeg',
      ext: 'jpg',
      seeds: jpegs,
      tokens: JPEG_TOKENS,
      mutate: mutateJpeg,
      run: (b) => decode(b, 'fuzz.jpg'),
      clean: [ImageError],
      mutations: 20000,
      capMs: 6000,
    },
  ];
}

// ---- the watchdog: hangs and peak memory, from another thread ----------------------------------

const WATCHED_BYTES = 4 << 20;
/**
 * The watchdog thread's code. Shared state (Int32Array): [0] a call is running, [1] call
 * counter, [2] input length (-1: too large to keep), [3] target index, [4] peak RSS in
 * MiB during the current call, [5] peak RSS in MiB all along. Samples every 20 ms.
 */
const WATCHDOG = `
const { workerData } = require('node:worker_threads');
const { mkdirSync, writeFileSync } = require('node:fs');
const { createHash } = require('node:crypto');
const { join } = require('node:path');
const { state, input, names, exts, dir, killMs } = workerData;
let seq = -1;
let since = Date.now();
setInterval(() => {
  const rss = Math.ceil(process.memoryUsage.rss() / 2 ** 20);
  if (rss > Atomics.load(state, 4)) Atomics.store(state, 4, rss); // during the current call
  if (rss > Atomics.load(state, 5)) Atomics.store(state, 5, rss); // all along
  const busy = Atomics.load(state, 0);
  const now = Atomics.load(state, 1);
  if (!busy || now !== seq) {
    seq = now;
    since = Date.now();
    return;
  }
  if (Date.now() - since < killMs) return;
  const target = Atomics.load(state, 3);
  const len = Atomics.load(state, 2);
  let saved = '(input too large to save)';
  if (len >= 0) {
    const bytes = input.slice(0, len);
    const folder = join(dir, names[target]);
    mkdirSync(folder, { recursive: true });
    saved = join(folder, createHash('sha256').update(bytes).digest('hex').slice(0, 12) + '.' + exts[target]);
    writeFileSync(saved, bytes);
  }
  process._rawDebug('fuzz: ' + names[target] + ': one call has run for ' + (Date.now() - since) + ' ms: a hang. Input saved as ' + saved + '; killing the test process.');
  process.kill(process.pid, 'SIGKILL');
}, 20); // not unref'd: the worker would exit at once (the parent unrefs the worker instead)
`;

class Watchdog {
  private readonly state = new Int32Array(new SharedArrayBuffer(8 * 4));
  private readonly input = new Uint8Array(new SharedArrayBuffer(WATCHED_BYTES));
  private readonly worker: Worker;

  constructor(targets: readonly Target[]) {
    this.worker = new Worker(WATCHDOG, {
      eval: true,
      workerData: {
        state: this.state,
        input: this.input,
        names: targets.map((t) => t.name),
        exts: targets.map((t) => t.ext),
        dir: SAVE_DIR,
        killMs: KILL_MS,
      },
    });
    this.worker.unref();
  }

  begin(target: number, bytes: Uint8Array): void {
    if (bytes.length <= WATCHED_BYTES) {
      this.input.set(bytes);
      Atomics.store(this.state, 2, bytes.length);
    } else Atomics.store(this.state, 2, -1);
    Atomics.store(this.state, 3, target);
    this.resetCallPeak();
    Atomics.add(this.state, 1, 1);
    Atomics.store(this.state, 0, 1);
  }

  resetCallPeak(): void {
    Atomics.store(this.state, 4, 0);
  }

  /** The largest resident set size seen since `begin` or `resetCallPeak`, in bytes. */
  callPeakRss(): number {
    return Math.max(Atomics.load(this.state, 4) * 2 ** 20, process.memoryUsage.rss());
  }

  end(): void {
    Atomics.store(this.state, 0, 0);
  }

  /** The largest resident set size seen so far, in bytes. */
  peakRss(): number {
    return Math.max(Atomics.load(this.state, 5) * 2 ** 20, process.memoryUsage.rss());
  }

  stop(): Promise<number> {
    return this.worker.terminate();
  }
}

// ---- running inputs ------------------------------------------------------------------------------

interface Outcome {
  kind: 'value' | 'clean' | 'bad';
  ms: number;
  /** Growth of resident memory or array buffers during the call, whichever is larger. */
  growth: number;
  error?: unknown;
  why?: string;
}

let watchdog: Watchdog;
let targets: Target[] = [];
let baseRss = 0;

function errorLine(e: unknown): string {
  if (e === undefined) return 'nothing was thrown';
  if (e instanceof Error) return `${e.name}: ${e.message.split('\n')[0]!.slice(0, 300)}`;
  return `non-Error thrown: ${String(e).slice(0, 200)}`;
}

/**
 * Runs one input: its outcome, and a failure when it was slow or grew resident memory
 * or array buffers by more than MEMORY_BOUND during the call (measured per call, so
 * garbage left by earlier calls does not count against it).
 */
async function runOne(t: Target, bytes: Uint8Array): Promise<Outcome> {
  const rss0 = process.memoryUsage.rss();
  const buffers0 = process.memoryUsage().arrayBuffers;
  watchdog.begin(targets.indexOf(t), bytes);
  const t0 = performance.now();
  let out: Outcome;
  let value: unknown;
  try {
    value = await t.run(bytes);
    out = { kind: 'value', ms: 0, growth: 0 };
  } catch (e) {
    const clean = t.clean.some((c) => e instanceof c);
    out = clean ? { kind: 'clean', ms: 0, growth: 0, error: e } : { kind: 'bad', ms: 0, growth: 0, error: e, why: errorLine(e) };
  }
  out.ms = performance.now() - t0;
  // Measured while the result is still alive.
  const buffers = process.memoryUsage().arrayBuffers - buffers0;
  const rss = watchdog.callPeakRss() - rss0;
  watchdog.end();
  value = undefined;
  out.growth = Math.max(buffers, rss);
  if (out.kind !== 'bad') {
    if (out.ms > HANG_MS) out = { ...out, kind: 'bad', why: `took ${out.ms.toFixed(0)} ms (limit ${HANG_MS} ms)` };
    else if (rss > MEMORY_BOUND) out = { ...out, kind: 'bad', why: `resident memory grew by ${(rss / 2 ** 20).toFixed(0)} MB` };
    else if (buffers > MEMORY_BOUND) out = { ...out, kind: 'bad', why: `array buffers grew by ${(buffers / 2 ** 20).toFixed(0)} MB` };
  }
  return out;
}

function fixturePath(t: Target, bytes: Uint8Array): string {
  return join(SAVE_DIR, t.name, `${createHash('sha256').update(bytes).digest('hex').slice(0, 12)}.${t.ext}`);
}

function openFds(): number {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return 0;
  }
}

interface Report {
  mutations: number;
  seconds: number;
  values: number;
  clean: number;
  slowestMs: number;
  largestGrowth: number;
  failures: string[];
}

async function fuzz(t: Target): Promise<Report> {
  const r = new Rng(nameSeed(t.name));
  const cap = t.capMs * SCALE;
  const want = Math.round(t.mutations * SCALE);
  const started = performance.now();
  const report: Report = { mutations: 0, seconds: 0, values: 0, clean: 0, slowestMs: 0, largestGrowth: 0, failures: [] };
  const perKind = new Map<string, number>();
  while (report.mutations < want && performance.now() - started < cap) {
    const input = t.mutate(r.pick(t.seeds), r, t);
    const o = await runOne(t, input);
    report.mutations++;
    report.slowestMs = Math.max(report.slowestMs, o.ms);
    report.largestGrowth = Math.max(report.largestGrowth, o.growth);
    if (o.kind === 'value') report.values++;
    else if (o.kind === 'clean') report.clean++;
    else {
      // Keep a few inputs per kind of failure (numbers in the message do not count).
      const kind = o.why!.replace(/\d+/g, 'N').slice(0, 120);
      const seen = perKind.get(kind) ?? 0;
      perKind.set(kind, seen + 1);
      if (seen < 3 && report.failures.length < 30) {
        let saved = '(too large to save)';
        if (input.length <= MAX_FIXTURE) {
          saved = fixturePath(t, input);
          mkdirSync(join(SAVE_DIR, t.name), { recursive: true });
          writeFileSync(saved, input);
        }
        report.failures.push(`#${report.mutations}: ${o.why} [saved as ${saved}]`);
        if (o.error instanceof Error && o.error.stack && seen === 0) report.failures.push(o.error.stack.split('\n').slice(0, 4).join('\n'));
      }
    }
  }
  report.seconds = (performance.now() - started) / 1000;
  return report;
}

// ---- the tests -------------------------------------------------------------------------------------

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'midas-fuzz-'));
  mkdirSync(join(tmp, 'out'));
  targets = await buildTargets();
  watchdog = new Watchdog(targets);
  // Warm up every target once (lazy tables, module state) before the baseline.
  for (const t of targets) await runOne(t, t.seeds[0]!);
  // The converter starts from the checkpoints it converts (the others are the checkpoint target's).
  const convert = targets.find((t) => t.name === 'convert')!;
  const convertible: Uint8Array[] = [];
  for (const s of convert.seeds) if ((await runOne(convert, s)).kind === 'value') convertible.push(s);
  convert.seeds = convertible;
  baseRss = process.memoryUsage.rss();
});

afterAll(async () => {
  await watchdog?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const TARGET_NAMES = ['pickle', 'zip', 'checkpoint', 'convert', 'safetensors', 'png', 'jpeg'] as const;

describe('fuzz: every outcome is a value or a clean error, quickly, in bounded memory', () => {
  for (const name of TARGET_NAMES) {
    it(name, { timeout: 60_000 * Math.max(1, SCALE) }, async () => {
      const t = targets.find((x) => x.name === name)!;
      // Every seed is read cleanly before it is mutated.
      for (const s of t.seeds) expect((await runOne(t, s)).kind, `${name} seed`).not.toBe('bad');
      const fds = openFds();
      const rep = await fuzz(t);
      console.log(
        `fuzz ${name}: ${rep.mutations} mutations in ${rep.seconds.toFixed(1)} s ` +
          `(${rep.values} values, ${rep.clean} clean errors, ${rep.failures.length ? 'FAILURES' : 'no failures'}), ` +
          `slowest call ${rep.slowestMs.toFixed(0)} ms, largest growth in one call ${(rep.largestGrowth / 2 ** 20).toFixed(0)} MB, ` +
          `peak RSS since the start +${((watchdog.peakRss() - baseRss) / 2 ** 20).toFixed(0)} MB`,
      );
      expect(rep.failures, rep.failures.join('\n')).toEqual([]);
      expect(rep.mutations).toBeGreaterThanOrEqual(Math.min(100, t.mutations));
      expect(openFds() - fds, 'file descriptors left open').toBeLessThanOrEqual(4);
    });
  }
});

// ---- hand-made inputs: pickles and zip checkpoints -------------------------------------------------

/** A protocol-2 pickle written opcode by opcode. */
class PickleWriter {
  private readonly parts: number[] = [0x80, 2];
  /** Opcodes and raw bytes; strings are latin-1. */
  raw(...items: (number | string)[]): this {
    for (const it of items) {
      if (typeof it === 'number') this.parts.push(it);
      else for (const c of it) this.parts.push(c.charCodeAt(0));
    }
    return this;
  }
  str(s: string): this {
    const b = new TextEncoder().encode(s);
    this.raw(0x58, ...le(b.length, 4));
    for (const x of b) this.parts.push(x);
    return this;
  }
  int(n: number): this {
    if (n >= 0 && n < 256) return this.raw(0x4b, n);
    if (n >= -(2 ** 31) && n < 2 ** 31) return this.raw(0x4a, ...le(n, 4));
    return this.raw(0x8a, 8, ...le(n, 8)); // LONG1
  }
  global(module: string, name: string): this {
    return this.raw('c', module, '\n', name, '\n');
  }
  done(): Uint8Array {
    return Uint8Array.from([...this.parts, 0x2e]);
  }
}

function le(v: number, bytes: number): number[] {
  const b = new Uint8Array(bytes);
  putInt(b, 0, v, bytes, true);
  return [...b];
}

interface TensorSpecForTest {
  name: string;
  numel: number;
  shape: number[];
  stride: number[];
  key?: string;
}

/** The data.pkl of a state_dict (OrderedDict of float32 tensors), as torch.save writes it. */
function stateDictPickle(tensors: TensorSpecForTest[]): Uint8Array {
  const p = new PickleWriter().global('collections', 'OrderedDict').raw(')R');
  for (const t of tensors) {
    p.str(t.name).global('torch._utils', '_rebuild_tensor_v2').raw('(');
    p.raw('(').str('storage').global('torch', 'FloatStorage').str(t.key ?? '0').str('cpu').int(t.numel).raw('tQ');
    p.int(0).raw('(');
    for (const d of t.shape) p.int(d);
    p.raw('t(');
    for (const d of t.stride) p.int(d);
    p.raw('t', 0x89).global('collections', 'OrderedDict').raw(')R', 't', 'R', 's');
  }
  return p.done();
}

interface ZipEntryForTest {
  name: string;
  data: Uint8Array;
  method?: number;
  /** What the directory says the entry inflates to (default: data's length). */
  size?: number;
  /** The central directory's extra field (default none). */
  extra?: Uint8Array;
}

/** A zip archive as torch.save's miniz writes it, minus the alignment padding. */
function zipArchive(entries: ZipEntryForTest[]): Uint8Array {
  const locals: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = new TextEncoder().encode(e.name);
    const method = e.method ?? 0;
    const size = e.size ?? e.data.length;
    const common = [...le(20, 2), ...le(0, 2), ...le(method, 2), ...le(0, 4), ...le(crc32(e.data), 4), ...le(e.data.length, 4), ...le(size, 4), ...le(name.length, 2)];
    const local = concat(Uint8Array.from([...le(0x04034b50, 4), ...common, ...le(0, 2)]), name, e.data);
    const extra = e.extra ?? new Uint8Array(0);
    central.push(Uint8Array.from([...le(0x02014b50, 4), ...le(20, 2), ...common, ...le(extra.length, 2), ...le(0, 2), ...le(0, 2), ...le(0, 2), ...le(0, 4), ...le(offset, 4)]), name, extra);
    locals.push(local);
    offset += local.length;
  }
  const cd = concat(...central);
  const eocd = Uint8Array.from([...le(0x06054b50, 4), 0, 0, 0, 0, ...le(entries.length, 2), ...le(entries.length, 2), ...le(cd.length, 4), ...le(offset, 4), 0, 0]);
  return concat(...locals, cd, eocd);
}

/** A zip checkpoint: archive/data.pkl, archive/data/<key> for each storage, archive/version. */
function zipCheckpoint(pkl: Uint8Array, storages: Record<string, Uint8Array>): Uint8Array {
  return zipArchive([
    { name: 'archive/data.pkl', data: pkl },
    ...Object.entries(storages).map(([k, data]) => ({ name: `archive/data/${k}`, data })),
    { name: 'archive/version', data: tok('3\n')[0]! },
  ]);
}

/**
 * Runs `fn` and returns what it threw, checking it is an instance of `cls`, came within
 * `ms` and grew memory (resident and array buffers) by less than `mb`.
 */
async function refusedCheaply(fn: () => unknown, cls: abstract new (...args: never[]) => Error, ms = 2000, mb = 64): Promise<Error> {
  const rss0 = process.memoryUsage.rss();
  const ab0 = process.memoryUsage().arrayBuffers;
  watchdog.resetCallPeak();
  const t0 = performance.now();
  let err: unknown;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  const took = performance.now() - t0;
  expect(err, errorLine(err)).toBeInstanceOf(cls);
  expect(took, 'milliseconds').toBeLessThan(ms);
  expect((process.memoryUsage().arrayBuffers - ab0) / 2 ** 20, 'MB of array buffers').toBeLessThan(mb);
  expect((watchdog.callPeakRss() - rss0) / 2 ** 20, 'MB of peak resident memory').toBeLessThan(mb);
  return err as Error;
}

describe('absurd sizes and bombs are refused before anything large is allocated', () => {
  it('a checkpoint whose pickle claims a 2^40-element storage', async () => {
    const ckpt = zipCheckpoint(stateDictPickle([{ name: 'w', numel: 2 ** 40, shape: [4], stride: [1] }]), { '0': new Uint8Array(16) });
    const e = await refusedCheaply(() => readStateDict(tempFile(ckpt, 'pt')), CheckpointError);
    expect(e.message).toMatch(/archive\/data\/0 holds 16 bytes, but storage '0' is 1099511627776 float32/);
  });

  it('a tensor of 2^40 elements on a one-element storage (zero strides)', async () => {
    const ckpt = zipCheckpoint(stateDictPickle([{ name: 'w', numel: 1, shape: [2 ** 20, 2 ** 20], stride: [0, 0] }]), { '0': new Uint8Array(4) });
    const e = await refusedCheaply(() => readStateDict(tempFile(ckpt, 'pt')), CheckpointError);
    expect(e.message).toMatch(/tensor 'w' \[1048576, 1048576\] is over 2147483647 bytes/);
  });

  // Fixed in checkpoint.ts (MAX_EXPANDED_BYTES): this was read as one float and
  // materialised as a 1 GiB buffer, from a file of 400 bytes.
  it('an expanded tensor of 1 GiB from one stored float', async () => {
    const ckpt = zipCheckpoint(stateDictPickle([{ name: 'w', numel: 1, shape: [2 ** 28], stride: [0] }]), { '0': new Uint8Array(4) });
    expect(ckpt.length).toBeLessThan(1000);
    const e = await refusedCheaply(() => readStateDict(tempFile(ckpt, 'pt')), CheckpointError);
    expect(e.message).toMatch(/tensor 'w' \[268435456\] with stride \[0\] repeats 1 stored elements into 1073741824 bytes/);
    // Small expansions (position ids and the like) still read.
    const small = zipCheckpoint(stateDictPickle([{ name: 'w', numel: 3, shape: [4, 3], stride: [0, 1] }]), { '0': new Uint8Array(new Float32Array([1, 2, 3]).buffer) });
    expect([...(await readStateDict(tempFile(small, 'pt'))).get('w')!.data]).toEqual([1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]);
  });

  // Fixed in pickle.ts (copyBudget): OrderedDict(d) of one memoized 2000-item dict,
  // 20000 times, took seconds and would keep 4·10^7 items if the copies were kept.
  it('a pickle bomb: OrderedDict copies of one memoized dict', async () => {
    const p = new PickleWriter().raw('}q', 0, '(');
    for (let i = 0; i < 2000; i++) p.int(i).raw('N');
    p.raw('u0'); // SETITEMS, POP: the dict is in memo 0
    p.global('collections', 'OrderedDict').raw('q', 1, '0');
    for (let i = 0; i < 20000; i++) p.raw('h', 1, 'h', 0, 0x85, 'R0');
    p.raw('N');
    const e = await refusedCheaply(() => unpickle(p.done()), PickleError);
    expect(e.message).toMatch(/OrderedDict copies more items than a pickle of \d+ bytes can hold: refusing a pickle bomb/);
  });

  it("a pickle bomb: _rebuild_tensor_v2's size tuple named again and again", async () => {
    const p = new PickleWriter().raw('(');
    for (let i = 0; i < 5000; i++) p.int(1);
    p.raw('tq', 0, '0').global('torch._utils', '_rebuild_tensor_v2').raw('q', 1, '0', ']q', 2);
    for (let i = 0; i < 20000; i++) p.raw('h', 1, '(NK', 0, 'h', 0, 'h', 0, 0x89, 'NtRa'); // the tensors kept in a list
    const e = await refusedCheaply(() => unpickle(p.done()), PickleError);
    expect(e.message).toMatch(/_rebuild_tensor_v2's (size|stride) copies more items than a pickle/);
  });

  // Fixed in zip.ts: inflating was not bounded by the directory's size.
  it('a deflated data.pkl that inflates to 256 MB (its directory says 100 bytes)', async () => {
    // 1 MiB of zeros, flushed but not finished, repeated: a valid stream of 256 MiB.
    const mb = deflateRawSync(new Uint8Array(1 << 20), { finishFlush: zlibConstants.Z_SYNC_FLUSH });
    const bomb = concat(...new Array<Uint8Array>(256).fill(mb), deflateRawSync(new Uint8Array(0)));
    expect(bomb.length).toBeLessThan(512 << 10);
    const zip = zipArchive([{ name: 'archive/data.pkl', data: bomb, method: 8, size: 100 }]);
    const src = new MemorySource(zip);
    const [entry] = (await readZipDirectory(src, 'bomb.zip')).values();
    const e = await refusedCheaply(() => readZipEntry(src, entry!, 'bomb.zip'), ZipError);
    expect(e.message).toMatch(/archive\/data\.pkl inflates past the 100 bytes its directory entry says/);
    // And a directory that asks for 4 GB is refused before inflating at all.
    const big = zipArchive([{ name: 'archive/data.pkl', data: bomb, method: 8, size: 0xfffffffe }]);
    const src2 = new MemorySource(big);
    const [entry2] = (await readZipDirectory(src2, 'big.zip')).values();
    expect((await refusedCheaply(() => readZipEntry(src2, entry2!, 'big.zip'), ZipError)).message).toMatch(/says it inflates to 4294967294 bytes, over the/);
  });

  it('a safetensors header length of 2^60', async () => {
    const f = safetensors({}, new Uint8Array(0));
    new DataView(f.buffer).setBigUint64(0, 2n ** 60n, true);
    const e = await refusedCheaply(() => SafetensorsFile.parse(f), SafetensorsError);
    expect(e.message).toMatch(/header length 1152921504606847000 runs past the end of the file/);
  });

  it('a PNG of 100000x100000', async () => {
    const png = Uint8Array.from(read(IMAGES, 'rgb8.png'));
    const chunks = pngChunks(png)!;
    const ihdr = Uint8Array.from(chunks[0]!.data);
    putInt(ihdr, 0, 100000, 4, false);
    putInt(ihdr, 4, 100000, 4, false);
    chunks[0] = { type: 'IHDR', data: ihdr };
    const e = await refusedCheaply(() => decodeImage(pngFromChunks(chunks), 'huge.png'), ImageError);
    expect(e.message).toMatch(/^huge\.png: image is 100000x100000 \(10000\.0 megapixels\), over the limit/);
  });
});

describe('crafted inputs for bugs found while writing the fuzz test', () => {
  // Fixed in zip.ts: a zip64 extra field longer than the entry's extra data was read
  // past the end of the central directory (RangeError from the DataView).
  it('a zip64 extra field that runs past the directory', async () => {
    const zip = zipArchive([{ name: 'a', data: new Uint8Array(4), size: 0xffffffff, extra: Uint8Array.from([1, 0, 0xf0, 0xff]) }]);
    await expect(readWholeZip(zip)).rejects.toThrow(/a: zip64 extra field runs past the entry's extra data/);
    await expect(readWholeZip(zip)).rejects.toBeInstanceOf(ZipError);
  });

  // Fixed in zip.ts: a stored entry's bytes were taken to be `size` long whatever its
  // compressed size said, so a storage could be read from the next entry's bytes.
  it('a stored entry whose two sizes disagree', async () => {
    const pkl = stateDictPickle([{ name: 'w', numel: 4, shape: [4], stride: [1] }]);
    const zip = zipArchive([
      { name: 'archive/data.pkl', data: pkl },
      { name: 'archive/data/0', data: new Uint8Array(4), size: 16 },
      { name: 'archive/version', data: new Uint8Array(16) },
    ]);
    const e = await refusedCheaply(() => readStateDict(tempFile(zip, 'pt')), ZipError);
    expect(e.message).toMatch(/archive\/data\/0 is stored \(not compressed\) but has size 16 and compressed size 4/);
  });

  // Fixed in convert.ts: planSafetensors refused the name with a plain Error.
  it("a state_dict entry named '__metadata__'", async () => {
    const pkl = stateDictPickle([{ name: '__metadata__', numel: 1, shape: [1], stride: [1] }]);
    const e = await refusedCheaply(() => convertOnce(zipCheckpoint(pkl, { '0': new Uint8Array(4) })), ConvertError);
    expect(e.message).toMatch(/a tensor is named '__metadata__'/);
  });

  // Fixed in safetensors.ts: error messages quoted header values with JSON.stringify,
  // which overflows the stack on deeply nested arrays.
  it('a safetensors header value nested 100000 deep', async () => {
    const deep = '['.repeat(100000) + ']'.repeat(100000);
    for (const field of ['dtype', 'shape', 'data_offsets']) {
      const entry = { dtype: 'F32', shape: [1], data_offsets: [0, 4], [field]: DEEP };
      const text = JSON.stringify({ w: entry }).replace(JSON.stringify(DEEP), deep);
      const e = await refusedCheaply(() => SafetensorsFile.parse(safetensors(text, new Uint8Array(4))), SafetensorsError);
      expect(e.message.length).toBeLessThan(200);
    }
    expect(() => SafetensorsFile.parse(safetensors({ w: { dtype: 'toString', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)))).toThrow(
      /unknown dtype "toString"/,
    );
  });

  // Fixed in pickle.ts: String.fromCodePoint threw a RangeError past U+10FFFF.
  it('a protocol-0 UNICODE escape past U+10FFFF', () => {
    expect(() => unpickle(tok('V\\U00110000\n.')[0]!)).toThrow(/UNICODE escape \\U00110000 is past U\+10FFFF/);
    expect(() => unpickle(tok('V\\U00110000\n.')[0]!)).toThrow(PickleError);
    expect(unpickle(tok('V\\U0010ffff\\u00e9\n.')[0]!).value).toBe('\u{10ffff}é');
  });
});

// ---- the regression fixtures ------------------------------------------------------------------------
// Inputs the fuzzer once failed on, saved by it; each must now give the target's clean error.

describe('regression fixtures (test/fixtures/fuzz/<target>)', () => {
  it('are small files in folders named after the targets', () => {
    for (const dir of existsSync(FUZZ_FIXTURES) ? readdirSync(FUZZ_FIXTURES) : []) {
      expect(TARGET_NAMES, dir).toContain(dir);
      for (const f of readdirSync(join(FUZZ_FIXTURES, dir))) expect(read(join(FUZZ_FIXTURES, dir), f).length, f).toBeLessThanOrEqual(MAX_FIXTURE);
    }
  });
  for (const name of TARGET_NAMES) {
    const dir = join(FUZZ_FIXTURES, name);
    if (!existsSync(dir)) continue;
    it(`${name}: every saved input gives a clean error`, async () => {
      const t = targets.find((x) => x.name === name)!;
      const saved = readdirSync(dir).sort();
      expect(saved.length).toBeGreaterThan(0);
      for (const f of saved) {
        const o = await runOne(t, read(dir, f));
        expect(o.kind === 'bad' ? o.why : o.kind, `${name}/${f}`).toBe('clean');
      }
    });
  }
});
