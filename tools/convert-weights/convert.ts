// A PyTorch checkpoint → a safetensors file of float32 or float16 weights.
import { basename } from 'node:path';
import { endianness } from 'node:os';
import { f16round } from '@petamoriken/float16';
import { toFloat16Bits as halfBits } from '../../src/nn/half.js';
import { bfloat16ToFloat32, float16ToFloat32, type SafetensorsDtype } from '../../src/nn/safetensors.js';
import { Checkpoint, type CheckpointFormat, type CheckpointTensor } from './checkpoint.js';
import { ELEMENT_SIZE, type StorageDtype } from './pickle.js';
import { AtomicFile, encodeHeader, planSafetensors } from './safetensors-write.js';

/** Written as `__metadata__.format_version`; bump when the layout or conventions change. */
export const WEIGHTS_FORMAT_VERSION = '1';

export type OutputDtype = 'f32' | 'f16';

export interface ConvertProgress {
  tensorsDone: number;
  tensorsTotal: number;
  /** Source tensor bytes converted so far / in all. */
  bytesDone: number;
  bytesTotal: number;
  elapsedSeconds: number;
}

export interface ConvertOptions {
  dtype?: OutputDtype;
  onProgress?: (p: ConvertProgress) => void;
  /**
   * Check the file's sha256 against the prefix in its name, as torch.hub does for
   * `name-<hex>.pt` (default true). A mismatch is an error and nothing is written.
   */
  checkHash?: boolean;
  /** Stops the conversion between tensors; the temporary file is removed. */
  signal?: AbortSignal;
}

export interface SkippedTensor {
  name: string;
  dtype: StorageDtype;
  shape: number[];
}

export interface ConvertStats {
  input: string;
  output: string;
  format: CheckpointFormat;
  /** 'model' when the state_dict came from a `{"model": ..., "optimizer": ...}` dict. */
  wrappedIn: string | null;
  dtype: OutputDtype;
  sha256: string;
  /** Tensors written. */
  tensors: number;
  /** Elements written. */
  numbers: number;
  /** Integer / bool buffers (e.g. BatchNorm's num_batches_tracked) left out. */
  skipped: SkippedTensor[];
  /** Non-zero values that became zero in float16. */
  f16Underflows: number;
  inputBytes: number;
  outputBytes: number;
  seconds: number;
  /** Input bytes per second / 1e6. */
  mbPerSecond: number;
  /** The process's largest resident memory seen during the conversion (sampled per tensor), bytes. */
  peakRssBytes: number;
}

export class ConvertError extends Error {
  override name = 'ConvertError';
}

const FLOAT_DTYPES: ReadonlySet<StorageDtype> = new Set(['float32', 'float16', 'bfloat16', 'float64']);

/** The sha256 prefix torch.hub reads from a file name (`-([a-f0-9]*)\.`), or null. */
export function hubHashPrefix(path: string): string | null {
  const m = /-([a-f0-9]*)\./.exec(basename(path));
  return m && m[1] ? m[1] : null;
}

function asView<T>(bytes: Uint8Array, es: number, make: (b: ArrayBufferLike, o: number, n: number) => T): T {
  if (bytes.byteOffset % es) bytes = bytes.slice();
  return make(bytes.buffer, bytes.byteOffset, bytes.byteLength / es);
}

function rangeError(name: string, target: string, index: number, value: number): ConvertError {
  return new ConvertError(`tensor '${name}': value ${value} (element ${index}) is out of ${target} range`);
}

/** Source bytes (contiguous, little-endian, `dtype`) as float32 values. */
function toFloat32(bytes: Uint8Array, dtype: StorageDtype, name: string): Float32Array {
  switch (dtype) {
    case 'float32':
      return asView(bytes, 4, (b, o, n) => new Float32Array(b, o, n));
    case 'float16':
      return float16ToFloat32(asView(bytes, 2, (b, o, n) => new Uint16Array(b, o, n)));
    case 'bfloat16':
      return bfloat16ToFloat32(asView(bytes, 2, (b, o, n) => new Uint16Array(b, o, n)));
    case 'float64': {
      const src = asView(bytes, 8, (b, o, n) => new Float64Array(b, o, n));
      const out = new Float32Array(src.length); // assignment rounds to nearest even
      for (let i = 0; i < src.length; i++) {
        out[i] = src[i]!;
        if (!Number.isFinite(out[i]!) && Number.isFinite(src[i]!)) throw rangeError(name, 'float32', i, src[i]!);
      }
      return out;
    }
    default:
      throw new ConvertError(`tensor '${name}' is ${dtype}, not floating point`);
  }
}

/** The least magnitude that rounds to infinity in float16: 65504 + half its ulp (a tie, rounded to even). */
const F16_OVERFLOW = 65520;

/**
 * float32/float64 values → float16 bits, rounding to nearest even (`src/nn/half.ts`).
 * float64 sources are rounded once, straight to float16 (@petamoriken/float16's
 * `f16round`), never through float32: the float32 holding the result is then packed
 * exactly. A finite value that rounds to infinity is an error naming the tensor;
 * `underflows` counts non-zero values that became ±0.
 */
export function toFloat16Bits(values: Float32Array | Float64Array, name: string): { bits: Uint16Array; underflows: number } {
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!;
    if (Math.abs(x) >= F16_OVERFLOW && Number.isFinite(x)) throw rangeError(name, 'float16', i, x);
  }
  const f32 = values instanceof Float64Array ? Float32Array.from(values, f16round) : values;
  const bits = halfBits(f32, `tensor '${name}'`);
  let underflows = 0;
  for (let i = 0; i < values.length; i++) if ((bits[i]! & 0x7fff) === 0 && values[i] !== 0) underflows++;
  return { bits, underflows };
}

function convertTensor(bytes: Uint8Array, t: CheckpointTensor, out: OutputDtype): { data: Uint8Array; underflows: number } {
  if (out === 'f32') {
    const f = toFloat32(bytes, t.dtype, t.name);
    return { data: new Uint8Array(f.buffer, f.byteOffset, f.byteLength), underflows: 0 };
  }
  if (t.dtype === 'float16') return { data: bytes, underflows: 0 };
  const values = t.dtype === 'float64' ? asView(bytes, 8, (b, o, n) => new Float64Array(b, o, n)) : toFloat32(bytes, t.dtype, t.name);
  const { bits, underflows } = toFloat16Bits(values, t.name);
  return { data: new Uint8Array(bits.buffer), underflows };
}

/**
 * Converts a PyTorch checkpoint (zip or legacy `torch.save`, a state_dict or
 * `{"model": state_dict, ...}`) into a safetensors file at `outPath`. Floating-point
 * tensors are written as `dtype`; integer and bool buffers are left out (listed in
 * `skipped`). The output appears only when complete (written beside it, then renamed).
 */
export async function convertCheckpoint(inPath: string, outPath: string, options: ConvertOptions = {}): Promise<ConvertStats> {
  if (endianness() !== 'LE') throw new ConvertError('converting weights needs a little-endian machine');
  const dtype = options.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'f16') throw new ConvertError(`unknown output dtype '${dtype as string}' (f32 or f16)`);
  const started = performance.now();
  const elapsed = (): number => (performance.now() - started) / 1000;
  const ckpt = await Checkpoint.open(inPath);
  let out: AtomicFile | null = null;
  try {
    const kept = ckpt.tensors.filter((t) => FLOAT_DTYPES.has(t.dtype));
    const skipped = ckpt.tensors.filter((t) => !FLOAT_DTYPES.has(t.dtype)).map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape }));
    if (!kept.length) throw new ConvertError(`${inPath}: no floating-point tensors in the state_dict (${ckpt.tensors.length} entries)`);
    // safetensors reserves this name; planSafetensors refused it with a plain Error.
    if (kept.some((t) => t.name === '__metadata__')) {
      throw new ConvertError(`${inPath}: a tensor is named '__metadata__', which safetensors reserves for the metadata`);
    }
    const stDtype: SafetensorsDtype = dtype === 'f32' ? 'F32' : 'F16';
    const plan = planSafetensors(kept.map((t) => ({ name: t.name, dtype: stDtype, shape: t.shape })));
    const metadata = (sha: string): Record<string, string> => ({
      format: 'pt',
      format_version: WEIGHTS_FORMAT_VERSION,
      source: basename(inPath),
      source_sha256: sha,
      source_format: ckpt.format,
      dtype: stDtype,
    });
    const header = encodeHeader(plan.tensors, metadata('0'.repeat(64)));

    out = await AtomicFile.create(outPath);
    await out.write(header);
    const byName = new Map(kept.map((t) => [t.name, t]));
    const ordered = plan.tensors.map((p) => byName.get(p.name)!);
    const bytesTotal = kept.reduce((a, t) => a + t.numel * ELEMENT_SIZE[t.dtype], 0);
    let bytesDone = 0;
    let numbers = 0;
    let underflows = 0;
    let peakRss = process.memoryUsage.rss();
    const report = (i: number): void =>
      options.onProgress?.({ tensorsDone: i, tensorsTotal: ordered.length, bytesDone, bytesTotal, elapsedSeconds: elapsed() });
    report(0);

    // Read one tensor ahead while the current one is converted and written.
    const read = (i: number): Promise<Uint8Array> | null => {
      if (i >= ordered.length) return null;
      const p = ckpt.readTensor(ordered[i]!);
      p.catch(() => {}); // awaited below; this only keeps an early failure from going unhandled
      return p;
    };
    let next = read(0);
    for (let i = 0; i < ordered.length; i++) {
      options.signal?.throwIfAborted();
      const t = ordered[i]!;
      const bytes = await next!;
      next = read(i + 1);
      const { data, underflows: u } = convertTensor(bytes, t, dtype);
      const p = plan.tensors[i]!;
      if (data.byteLength !== p.end - p.begin) throw new Error(`internal: tensor '${t.name}' converted to ${data.byteLength} bytes, planned ${p.end - p.begin}`);
      await out.write(data);
      underflows += u;
      numbers += t.numel;
      bytesDone += t.numel * ELEMENT_SIZE[t.dtype];
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
      report(i + 1);
    }
    options.signal?.throwIfAborted();

    const sha256 = await ckpt.sha256();
    const prefix = options.checkHash === false ? null : hubHashPrefix(inPath);
    if (prefix && !sha256.startsWith(prefix)) {
      throw new ConvertError(
        `${inPath}: sha256 is ${sha256}, but the file name says it starts with ${prefix}: the download is corrupt or incomplete`,
      );
    }
    const finalHeader = encodeHeader(plan.tensors, metadata(sha256));
    if (finalHeader.length !== header.length) throw new Error('internal: header length changed');
    await out.writeAt(0, finalHeader);
    const outputBytes = out.position;
    await out.commit();
    out = null;

    const seconds = elapsed();
    return {
      input: inPath,
      output: outPath,
      format: ckpt.format,
      wrappedIn: ckpt.wrappedIn,
      dtype,
      sha256,
      tensors: kept.length,
      numbers,
      skipped,
      f16Underflows: underflows,
      inputBytes: ckpt.fileSize,
      outputBytes,
      seconds,
      mbPerSecond: ckpt.fileSize / 1e6 / seconds,
      peakRssBytes: Math.max(peakRss, process.memoryUsage.rss()),
    };
  } catch (e) {
    await out?.abort();
    throw e;
  } finally {
    await ckpt.close();
  }
}
