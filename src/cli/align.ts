// `midas align`: a prediction fitted to known depths (scale and shift in inverse-depth
// space, src/midas/align.ts), written as metric depth, with AbsRel and δ<1.25.
import { readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { PNG } from 'pngjs';
import { AlignError, alignToDepth, DEFAULT_MAX_DEPTH_FACTOR, type AlignResult, type TargetKind } from '../midas/align.js';
import { DEFAULT_MAX_PIXELS } from '../node/image.js';
import { OutputError, parsePfm, writePfm } from '../node/outputs.js';
import { UsageError, type Command } from './command.js';
import { parseOptions } from './main.js';

const USAGE = `Usage: midas align <prediction> <target> [-o out.pfm] [options]

Fits a prediction (relative inverse depth, as \`midas predict -f pfm\` writes it) to
known depths by least squares in inverse-depth space, as the MiDaS authors do:
scale s and shift t minimise the sum of (s * p + t - 1/D)^2 over the valid pixels,
then depth = 1 / (s * p + t). Prints scale, shift, the valid pixels, AbsRel and
δ<1.25 over them, and writes the aligned metric depth.

  <prediction>  a single-channel PFM, or a grayscale PNG (predict's 16-bit PNG is an
                affine map of its disparity, so it aligns as well, to its 16 bits)
  <target>      a single-channel PFM (float) or a grayscale 8- or 16-bit PNG (values
                as stored, divided by --target-scale); same size as the prediction.
                Valid where finite and > 0: 0 means no data.

Options:
  -o, --output FILE       write the aligned depth as a float32 PFM (MiDaS's layout);
                          without it nothing is written
  -m, --mask FILE         a PNG (valid where not black) or single-channel PFM (valid
                          where non-zero and not NaN) of the prediction's size
      --target-kind K     depth (default) or disparity: the target is inverse depth
                          already and is fitted as it is; the output is then 1 over
                          its units (inverse metres give metres)
      --target-scale K    divide the target's values by K (default 1): 1000 for a PNG
                          in millimetres, 256 for KITTI's depth PNGs; for KITTI's
                          disparity PNGs (--target-kind disparity), 256 x baseline x
                          focal length in pixels gives inverse metres
      --max-depth M       cap the output at M (target units): aligned disparities
                          below 1/M, zero and negative ones included, become 1/M
                          (default: ${DEFAULT_MAX_DEPTH_FACTOR} x the largest valid target depth)
      --overwrite         replace an existing output file
      --json              print the results as one JSON object instead

The fit needs at least 2 valid pixels (mask set, target finite and > 0, prediction
finite) on which the prediction is not constant. AbsRel = mean |depth - D| / D and
δ<1.25 = the fraction with max(depth / D, D / depth) < 1.25, both over the valid
pixels, in the target's depth units.

Exit status: 0 on success, 1 when the inputs cannot be read or aligned (or the
output written), 2 on bad arguments.`;

/** A single-channel map from a PFM or PNG file. */
export interface MapFile {
  data: Float32Array;
  width: number;
  height: number;
  /** e.g. "PFM", "16-bit PNG". */
  format: string;
}

function readBytes(file: string): Uint8Array {
  try {
    if (statSync(file).isDirectory()) throw new OutputError(file, 'is a folder, not a file');
    return readFileSync(file);
  } catch (e) {
    if (e instanceof OutputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new OutputError(file, code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : `cannot read (${(e as Error).message})`);
  }
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const COLOR_TYPES: Record<number, string> = { 0: 'grayscale', 2: 'RGB', 3: 'palette', 4: 'grayscale+alpha', 6: 'RGBA' };

interface RawPng {
  /** 4 samples a pixel (pngjs's RGBA expansion), unscaled: 0..2^bitDepth - 1. */
  data: Uint8Array | Uint16Array;
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
}

/** The PNG's samples as stored (no rescaling of 16-bit or low bit depths). */
function readRawPng(bytes: Uint8Array, file: string): RawPng {
  // The size from IHDR first, so a hostile header allocates nothing.
  if (bytes.length >= 24) {
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const w = v.getUint32(16);
    const h = v.getUint32(20);
    if (w * h > DEFAULT_MAX_PIXELS) throw new OutputError(file, `PNG is ${w}x${h}, over the limit of ${DEFAULT_MAX_PIXELS / 1e6} megapixels`);
  }
  let png: { width: number; height: number; depth?: number; colorType?: number; data: Uint8Array | Uint16Array };
  try {
    png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), { skipRescale: true }) as unknown as typeof png;
  } catch (e) {
    throw new OutputError(file, `corrupt PNG (${(e as Error).message})`);
  }
  return { data: png.data, width: png.width, height: png.height, bitDepth: png.depth ?? 8, colorType: png.colorType ?? 6 };
}

function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b);
}

function isPfm(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0x50 && (bytes[1] === 0x66 || bytes[1] === 0x46) && (bytes[2] === 0x0a || bytes[2] === 0x0d || bytes[2] === 0x20 || bytes[2] === 0x09);
}

function notMap(bytes: Uint8Array, file: string): OutputError {
  const head = [...bytes.subarray(0, 8)];
  const text = head.every((c) => c === 9 || c === 10 || c === 13 || (c >= 32 && c < 127));
  const start = text ? JSON.stringify(String.fromCharCode(...head)) : head.map((c) => c.toString(16).padStart(2, '0')).join(' ');
  return new OutputError(file, `not a PFM or PNG file (starts with ${bytes.length ? start : 'nothing: empty file'})`);
}

/**
 * A single-channel PFM, or a grayscale PNG (colour type 0, any bit depth) with its
 * values as stored; the format comes from the first bytes, not the name.
 */
export function readMapFile(file: string): MapFile {
  const bytes = readBytes(file);
  if (isPfm(bytes)) {
    const pfm = parsePfm(bytes, file);
    if (pfm.channels !== 1) throw new OutputError(file, 'is a colour PFM (PF, 3 channels); a single-channel map (Pf) is needed');
    return { data: pfm.data, width: pfm.width, height: pfm.height, format: 'PFM' };
  }
  if (isPng(bytes)) {
    const png = readRawPng(bytes, file);
    if (png.colorType !== 0) {
      throw new OutputError(file, `is a ${COLOR_TYPES[png.colorType] ?? `colour type ${png.colorType}`} PNG; a grayscale PNG (one value a pixel) is needed`);
    }
    const data = new Float32Array(png.width * png.height);
    for (let i = 0; i < data.length; i++) data[i] = png.data[i * 4]!;
    return { data, width: png.width, height: png.height, format: `${png.bitDepth}-bit PNG` };
  }
  throw notMap(bytes, file);
}

/** A mask: PNG of any colour type (valid where R, G or B is non-zero; alpha ignored) or a single-channel PFM. */
export function readMaskFile(file: string): { data: Uint8Array | Float32Array; width: number; height: number; format: string } {
  const bytes = readBytes(file);
  if (isPng(bytes)) {
    const png = readRawPng(bytes, file);
    const data = new Uint8Array(png.width * png.height);
    for (let i = 0; i < data.length; i++) data[i] = png.data[i * 4] || png.data[i * 4 + 1] || png.data[i * 4 + 2] ? 1 : 0;
    return { data, width: png.width, height: png.height, format: `${png.bitDepth}-bit PNG` };
  }
  if (isPfm(bytes)) return readMapFile(file);
  throw notMap(bytes, file);
}

function positiveNumber(text: string | undefined, option: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n <= 0) throw new UsageError(`${option} must be a number > 0 (got '${text}')`);
  return n;
}

/** The same file, by path or (when both exist) by device and inode: links included. */
function sameFile(a: string, b: string): boolean {
  if (path.resolve(a) === path.resolve(b)) return true;
  try {
    if (realpathSync(a) === realpathSync(b)) return true;
    const sa = statSync(a);
    const sb = statSync(b);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false;
  }
}

function exists(file: string): boolean {
  try {
    statSync(file);
    return true;
  } catch {
    return false;
  }
}

/** Up to 7 significant digits, without trailing zeros. */
function num(x: number): string {
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1e-4 && a < 1e7 ? String(Number(x.toPrecision(7))) : x.toExponential(6).replace(/\.?0+e/, 'e');
}

function pct(count: number, total: number): string {
  return `${((100 * count) / total).toFixed(count === total ? 0 : 2)}%`;
}

export const alignCommand: Command = {
  name: 'align',
  summary: 'fit a prediction to known depths (scale and shift) and write metric depth',
  usage: USAGE,
  async run(argv) {
    const { values, positionals } = parseOptions(argv, {
      output: { type: 'string', short: 'o' },
      mask: { type: 'string', short: 'm' },
      'target-kind': { type: 'string' },
      'target-scale': { type: 'string' },
      'max-depth': { type: 'string' },
      overwrite: { type: 'boolean' },
      json: { type: 'boolean' },
    });
    if (positionals.length !== 2) {
      throw new UsageError(
        positionals.length < 2
          ? `needs a prediction and a target (midas align <prediction.pfm> <target.pfm|png> [-o out.pfm]); got ${positionals.length} file${positionals.length === 1 ? '' : 's'}`
          : `one prediction and one target (got ${positionals.length} files: ${positionals.join(' ')})`,
      );
    }
    const [predFile, targetFile] = positionals as [string, string];
    const kind = (values['target-kind'] ?? 'depth') as string;
    if (kind !== 'depth' && kind !== 'disparity') throw new UsageError(`--target-kind must be depth or disparity, not '${kind}'`);
    const targetScale = positiveNumber(values['target-scale'] as string | undefined, '--target-scale') ?? 1;
    const maxDepth = positiveNumber(values['max-depth'] as string | undefined, '--max-depth');
    const maskFile = values['mask'] as string | undefined;
    const output = values['output'] as string | undefined;
    const overwrite = values['overwrite'] === true;
    const json = values['json'] === true;

    if (output !== undefined) {
      const inputs: [string, string][] = [['prediction', predFile], ['target', targetFile]];
      if (maskFile !== undefined) inputs.push(['mask', maskFile]);
      for (const [what, file] of inputs) {
        if (sameFile(output, file)) throw new UsageError(`the output ${output} is the ${what} file; choose another -o`);
      }
      // Checked again, atomically, when written; here so a long read is not wasted.
      if (!overwrite && exists(output)) throw new OutputError(output, 'already exists (pass --overwrite to replace it)');
    }

    const pred = readMapFile(predFile);
    const target = readMapFile(targetFile);
    const size = (m: { width: number; height: number }) => `${m.width}x${m.height}`;
    if (target.width !== pred.width || target.height !== pred.height) {
      throw new AlignError('size', `the target ${targetFile} is ${size(target)} but the prediction ${predFile} is ${size(pred)}; they must be the same size`);
    }
    const mask = maskFile === undefined ? undefined : readMaskFile(maskFile);
    if (mask && (mask.width !== pred.width || mask.height !== pred.height)) {
      throw new AlignError('size', `the mask ${maskFile} is ${size(mask)} but the prediction ${predFile} is ${size(pred)}; they must be the same size`);
    }

    let targetValues: Float32Array | Float64Array = target.data;
    if (targetScale !== 1) {
      targetValues = new Float64Array(target.data.length);
      for (let i = 0; i < targetValues.length; i++) targetValues[i] = target.data[i]! / targetScale;
    }
    const result: AlignResult = alignToDepth(pred.data, targetValues, {
      targetKind: kind as TargetKind,
      ...(mask ? { mask: mask.data } : {}),
      ...(maxDepth !== undefined ? { maxDepth } : {}),
    });

    const warnings: string[] = [];
    if (result.scale < 0) {
      warnings.push('the scale is negative: the prediction grows with depth, not with inverse depth (is it a depth map rather than MiDaS output, or is --target-kind wrong?)');
    }
    if (output !== undefined) writePfm(output, result.depth, pred.width, pred.height, { overwrite });

    const total = pred.width * pred.height;
    let maskSet = total;
    if (mask) {
      maskSet = 0;
      for (const v of mask.data) if (v !== 0 && !Number.isNaN(v)) maskSet++;
    }
    if (json) {
      console.log(
        JSON.stringify({
          prediction: predFile,
          target: targetFile,
          mask: maskFile ?? null,
          width: pred.width,
          height: pred.height,
          targetKind: kind,
          targetScale,
          scale: result.scale,
          shift: result.shift,
          validPixels: result.validCount,
          maskPixels: maskSet,
          totalPixels: total,
          maxDepth: result.maxDepth,
          maxDepthDefault: maxDepth === undefined,
          clampedPixels: result.clampedCount,
          absRel: result.absRel,
          delta1: result.delta1,
          output: output ?? null,
          warnings,
        }),
      );
    } else {
      const scaleNote = targetScale !== 1 ? ` / ${num(targetScale)}` : '';
      const lines = [
        `prediction  ${predFile} (${size(pred)}, ${pred.format})`,
        `target      ${targetFile} (${target.format}${scaleNote}, ${kind})`,
        ...(mask ? [`mask        ${maskFile} (${mask.format}, ${maskSet} of ${total} set)`] : []),
        `scale       ${num(result.scale)}`,
        `shift       ${num(result.shift)}`,
        `valid       ${result.validCount} of ${total} pixels (${pct(result.validCount, total)})`,
        `max depth   ${num(result.maxDepth)}${maxDepth === undefined ? ` (${DEFAULT_MAX_DEPTH_FACTOR} x the largest valid target depth)` : ''}; ` +
          `${result.clampedCount} pixel${result.clampedCount === 1 ? '' : 's'} clamped to it`,
        `AbsRel      ${result.absRel.toFixed(4)}`,
        `δ<1.25      ${result.delta1.toFixed(4)} (${(100 * result.delta1).toFixed(2)}%)`,
        ...(output !== undefined ? [`wrote       ${output}`] : []),
      ];
      console.log(lines.join('\n'));
    }
    for (const w of warnings) console.error(`midas align: warning: ${w}`);
    return 0;
  },
};
