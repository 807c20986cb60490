// Depth map files, as the original MiDaS run.py / utils.py writes them (SPEC §4),
// plus a colour picture. Node-only.
//
// Every write is atomic: the bytes go to a temporary file in the same folder
// (`.<name>.tmp-<pid>-<random>`), which is fsynced and then renamed over the target
// (or hard-linked to it when overwriting is not allowed, so an existing file is never
// replaced even by a race). On any failure the temporary file is removed.
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { PNG } from 'pngjs';
import { colorize, type ColorMapName, type ValueRange } from '../midas/colormap.js';
import { depthMapProblem, depthTo16, encodePfm } from '../midas/depthmap.js';

export { depthTo16 };

/** A failure to write or read an output file, as one line naming the file. */
export class OutputError extends Error {
  override name = 'OutputError';
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`);
  }
}

export interface WriteOptions {
  /** Replace an existing file (default false: an existing file is an error). */
  overwrite?: boolean;
  /** For the PNG pictures: the values mapped to black and white (default: the map's min..max). */
  range?: ValueRange;
}

function checkMap(depth: Float32Array, width: number, height: number, file: string): void {
  const problem = depthMapProblem(depth, width, height);
  if (problem) throw new OutputError(file, problem);
}

// ---- PFM ---------------------------------------------------------------------------

/**
 * Writes a single-channel PFM exactly as MiDaS's utils.write_pfm: header
 * `Pf\n{w} {h}\n-1.000000\n` (negative scale: little-endian), then float32 rows
 * from the bottom row up. `depth` is row-major, top row first.
 */
export function writePfm(path: string, depth: Float32Array, width: number, height: number, opts: WriteOptions = {}): void {
  checkMap(depth, width, height, path);
  writeFileAtomic(path, encodePfm(depth, width, height), opts);
}

export interface PfmImage {
  /** Row-major, top row first; `channels` values a pixel. */
  data: Float32Array;
  width: number;
  height: number;
  /** 1 for `Pf`, 3 for `PF`. */
  channels: 1 | 3;
  /** |scale| from the header (its sign only tells the byte order). */
  scale: number;
  littleEndian: boolean;
}

/** Reads a PFM (`Pf` or `PF`, either byte order), flipping it back to top row first. */
export function readPfm(path: string): PfmImage {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new OutputError(path, code === 'ENOENT' ? 'no such file' : `cannot read (${(e as Error).message})`);
  }
  return parsePfm(bytes, path);
}

export function parsePfm(bytes: Uint8Array, file = '<pfm>'): PfmImage {
  // Three whitespace-separated tokens (type, "w h", scale), then one whitespace byte.
  const tokens: string[] = [];
  let p = 0;
  const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
  while (tokens.length < 4 && p < bytes.length && p < 256) {
    while (p < bytes.length && isSpace(bytes[p]!)) p++;
    const start = p;
    while (p < bytes.length && !isSpace(bytes[p]!)) p++;
    if (p > start) tokens.push(String.fromCharCode(...bytes.subarray(start, p)));
  }
  const [type, w, h, s] = tokens;
  if (type !== 'Pf' && type !== 'PF') throw new OutputError(file, 'not a PFM file (no Pf/PF header)');
  const width = Number(w);
  const height = Number(h);
  const scale = Number(s);
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new OutputError(file, `corrupt PFM header (size '${w} ${h}')`);
  }
  if (!Number.isFinite(scale) || scale === 0) throw new OutputError(file, `corrupt PFM header (scale '${s}')`);
  if (p >= bytes.length || !isSpace(bytes[p]!)) throw new OutputError(file, 'truncated PFM header');
  const dataStart = p + 1;
  const channels = type === 'PF' ? 3 : 1;
  const count = width * height * channels;
  if (bytes.length - dataStart < count * 4) {
    throw new OutputError(file, `truncated PFM (needs ${count * 4} data bytes, has ${bytes.length - dataStart})`);
  }
  const littleEndian = scale < 0;
  const view = new DataView(bytes.buffer, bytes.byteOffset + dataStart, count * 4);
  const data = new Float32Array(count);
  const row = width * channels;
  for (let y = 0; y < height; y++) {
    const dst = (height - 1 - y) * row;
    for (let i = 0; i < row; i++) data[dst + i] = view.getFloat32((y * row + i) * 4, littleEndian);
  }
  return { data, width, height, channels, scale: Math.abs(scale), littleEndian };
}

// ---- PNG ---------------------------------------------------------------------------

/** 16-bit grayscale PNG of the min-max scaled depth (see `depthTo16`). */
export function writePng16(path: string, depth: Float32Array, width: number, height: number, opts: WriteOptions = {}): void {
  checkMap(depth, width, height, path);
  const values = depthTo16(depth, opts.range);
  // pngjs takes 16-bit input in platform order and writes big-endian.
  const png = new PNG({ width, height, bitDepth: 16, colorType: 0, inputColorType: 0, inputHasAlpha: false });
  png.data = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  writeFileAtomic(path, PNG.sync.write(png, { bitDepth: 16, colorType: 0, inputColorType: 0, inputHasAlpha: false }), opts);
}

/**
 * Reads back a 16-bit gray PNG as `writePng16` writes it: the values / 65535 (0..1),
 * row-major. A PNG of another kind is refused.
 */
export function readPng16(path: string): { values: Float32Array; width: number; height: number } {
  let png: PNG;
  try {
    png = PNG.sync.read(readFileSync(path), { skipRescale: true } as never);
  } catch (e) {
    throw new OutputError(path, `cannot read as a PNG (${(e as Error).message})`);
  }
  const { depth, colorType } = png as unknown as { depth: number; colorType: number };
  if (depth !== 16 || colorType !== 0) throw new OutputError(path, 'not a 16-bit gray PNG');
  // pngjs expands it to RGBA 16-bit samples.
  const data = png.data as unknown as Uint16Array;
  const values = new Float32Array(png.width * png.height);
  for (let i = 0; i < values.length; i++) values[i] = data[4 * i]! / 65535;
  return { values, width: png.width, height: png.height };
}

/** 8-bit RGB PNG of the depth through a colour map (inferno by default), min-max scaled. */
export function writeColorPng(
  path: string,
  depth: Float32Array,
  width: number,
  height: number,
  map: ColorMapName = 'inferno',
  opts: WriteOptions = {},
): void {
  checkMap(depth, width, height, path);
  let rgb: Uint8Array;
  try {
    rgb = colorize(depth, map, opts.range);
  } catch (e) {
    throw new OutputError(path, (e as Error).message);
  }
  const png = new PNG({ width, height, colorType: 2, inputColorType: 2, inputHasAlpha: false });
  png.data = Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength);
  writeFileAtomic(path, PNG.sync.write(png, { colorType: 2, inputColorType: 2, inputHasAlpha: false }), opts);
}

// ---- atomic writes -----------------------------------------------------------------

/**
 * Writes `bytes` to `path` through a temporary file in the same folder, fsync and
 * rename (or link, without `overwrite`). Leaves nothing behind on failure.
 */
export function writeFileAtomic(path: string, bytes: Uint8Array, opts: WriteOptions = {}): void {
  const dir = dirname(path);
  const tmp = temporaryName(path);
  if (!opts.overwrite && exists(path)) throw alreadyExists(path);
  let fd: number | undefined;
  let created = false;
  try {
    fd = openSync(tmp, 'wx', 0o666);
    created = true;
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    if (opts.overwrite) {
      renameSync(tmp, path);
    } else {
      linkOrRename(tmp, path);
    }
    created = false;
  } catch (e) {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        /* already failing */
      }
    }
    if (created) {
      try {
        unlinkSync(tmp);
      } catch {
        /* already failing */
      }
    }
    if (e instanceof OutputError) throw e;
    throw new OutputError(path, writeProblem(e, dir));
  }
  syncDir(dir);
}

/**
 * The temporary name a file is written under before it is renamed into place:
 * `.<name>.tmp-<pid>-<random>` in the same folder (what `midas predict` removes when
 * the process that left it is gone).
 */
export function temporaryName(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/**
 * Moves a finished temporary file (written by another process, e.g. ffmpeg) to
 * `path`: fsync, then rename (or link, without `overwrite`, so an existing file is
 * never replaced). The temporary file is gone afterwards, whatever happens.
 */
export function commitTemporary(tmp: string, path: string, opts: WriteOptions = {}): void {
  const dir = dirname(path);
  try {
    if (!opts.overwrite && exists(path)) throw alreadyExists(path);
    const fd = openSync(tmp, 'r+');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (opts.overwrite) renameSync(tmp, path);
    else linkOrRename(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* already failing, or already moved */
    }
    if (e instanceof OutputError) throw e;
    throw new OutputError(path, writeProblem(e, dir));
  }
  syncDir(dir);
}

/** Without overwrite: link() fails on an existing target, atomically; fall back to rename. */
function linkOrRename(tmp: string, path: string): void {
  try {
    linkSync(tmp, path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw alreadyExists(path);
    // A filesystem without hard links: the exists() check above has to do.
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS' || code === 'EXDEV') {
      if (exists(path)) throw alreadyExists(path);
      renameSync(tmp, path);
      return;
    }
    throw e;
  }
  unlinkSync(tmp);
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch (e) {
    // ENOTDIR: a parent is a file, so nothing is there; the write itself reports it.
    const code = (e as NodeJS.ErrnoException).code;
    return code !== 'ENOENT' && code !== 'ENOTDIR';
  }
}

function alreadyExists(path: string): OutputError {
  return new OutputError(path, 'already exists (pass overwrite: true, or --overwrite, to replace it)');
}

function writeProblem(e: unknown, dir: string): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return `cannot write: folder ${dir} does not exist`;
  if (code === 'ENOTDIR') return `cannot write: ${dir} is not a folder`;
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return `cannot write: permission denied in ${dir}`;
  if (code === 'EISDIR') return 'cannot write: a folder has that name';
  if (code === 'ENOSPC') return 'cannot write: no space left on the device';
  return `cannot write (${(e as Error).message})`;
}

/** fsync the folder so the rename itself is durable; not possible everywhere (Windows). */
function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    /* best effort */
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
