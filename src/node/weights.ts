// Where the weights come from: a converted file, a PyTorch checkpoint (converted
// once and cached), or a model's official checkpoint downloaded on first use.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { convertCheckpoint, type ConvertProgress } from '../../tools/convert-weights/index.js';
import { MODELS, type OfficialCheckpoint } from '../midas/models.js';
import { SafetensorsFile } from '../nn/safetensors.js';
import { StreamedSafetensors } from './streamed.js';
import { download, DownloadError } from './download.js';

/** `$MIDAS_HOME`, else `~/.cache/midas-webgpu`. */
export function midasHome(): string {
  return process.env['MIDAS_HOME'] || path.join(os.homedir(), '.cache', 'midas-webgpu');
}

export interface ResolveHooks {
  /** Progress of a download (bytes). */
  onDownload?: (done: number, total: number) => void;
  /** Progress of a conversion. */
  onConvert?: (p: ConvertProgress) => void;
  /** A one-line note of what is happening ("downloading …", "converting …"). */
  log?: (line: string) => void;
}

const isCheckpoint = (head: Buffer) =>
  (head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) || (head[0] === 0x80 && head[1] === 0x02);

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * The path of a converted (safetensors) weights file for `spec`:
 * - a safetensors file: itself;
 * - a PyTorch checkpoint: its conversion, cached in midasHome()/converted by content hash;
 * - nothing: the `official` checkpoint (default MiDaS v2's) from the cache, downloaded
 *   first if missing (`$MIDAS_WEIGHTS_URL` overrides the URL).
 */
export async function resolveWeights(
  spec: string | undefined,
  hooks: ResolveHooks = {},
  official: OfficialCheckpoint = MODELS.v2.checkpoint,
): Promise<string> {
  const home = midasHome();
  if (spec) {
    let head: Buffer;
    try {
      const fd = await fs.open(spec, 'r');
      head = Buffer.alloc(8);
      await fd.read(head, 0, 8, 0);
      await fd.close();
    } catch (e) {
      throw new Error(`${spec}: cannot read weights (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    if (!isCheckpoint(head)) return spec;
    const digest = (await sha256(spec)).slice(0, 16);
    const cached = path.join(home, 'converted', `${path.basename(spec).replace(/\.[^.]*$/, '')}-${digest}.safetensors`);
    if (!existsSync(cached)) {
      await fs.mkdir(path.dirname(cached), { recursive: true });
      hooks.log?.(`converting ${spec} -> ${cached} (once)`);
      await convertCheckpoint(spec, cached, { onProgress: hooks.onConvert });
    }
    return cached;
  }

  // As torch.hub: the cached file is named after the URL's last segment, whose
  // "-<hex>." part is the sha256 prefix the download must match.
  const url = process.env['MIDAS_WEIGHTS_URL'] || official.url;
  const name = path.basename(new URL(url).pathname) || official.file;
  const checkpoint = path.join(home, name);
  const converted = path.join(home, name.replace(/\.[^.]*$/, '') + '.safetensors');
  if (existsSync(converted)) return converted;
  if (!existsSync(checkpoint)) {
    hooks.log?.(`downloading ${url} -> ${checkpoint}`);
    try {
      await download(url, checkpoint, { onProgress: hooks.onDownload });
    } catch (e) {
      const why = e instanceof DownloadError ? e.message : String(e);
      throw new Error(`no weights: could not download the official checkpoint (${why}); download ${url} by hand and pass --weights FILE, or put it in ${home}`);
    }
  }
  hooks.log?.(`converting ${checkpoint} -> ${converted} (once)`);
  await convertCheckpoint(checkpoint, converted, { onProgress: hooks.onConvert });
  return converted;
}

/** Reads and validates a safetensors file (the whole file in memory; tensors are views over it). */
export function readSafetensors(file: string): SafetensorsFile {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new Error(`${file}: cannot read weights (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return SafetensorsFile.parse(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), file);
}

/** The tensor names of a safetensors file, from its header alone (the data is not read). */
export async function safetensorsNames(file: string): Promise<string[]> {
  const source = StreamedSafetensors.open(file);
  try {
    return [...source.shapes().keys()];
  } finally {
    source.close();
  }
}
