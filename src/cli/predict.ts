// `midas predict`: images or folders in, depth maps out, one bad image never stops the rest.
import { accessSync, constants, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { COLOR_MAPS, type ColorMapName } from '../midas/colormap.js';
import type { Precision } from '../midas/network.js';
import { loadMidas } from '../node/load.js';
import { writeColorPng, writePfm, writePng16 } from '../node/outputs.js';
import { UsageError, type Command } from './command.js';
import { archFromEnv } from './arch.js';
import { parseOptions } from './main.js';
import { ProgressBar } from './progress.js';

const FORMATS = ['pfm', 'png', 'color'] as const;
type Format = (typeof FORMATS)[number];
const IMAGE_EXT = /\.(jpe?g|png)$/i;

const USAGE = `Usage: midas predict <images or folders...> [options]

Writes relative inverse depth (larger = nearer) for each JPEG or PNG.

Options:
  -o, --output DIR       output folder (default: ./output)
  -f, --format LIST      comma-separated: pfm, png, color (default: png,color)
                           pfm    DIR/<stem>.pfm        float32, as MiDaS's run.py writes it
                           png    DIR/<stem>.png        16-bit gray, min-max scaled
                           color  DIR/<stem>-color.png  colour map, min-max scaled
      --colormap NAME    inferno or turbo (default: inferno)
  -w, --weights FILE     converted .safetensors or a PyTorch .pt checkpoint (converted
                         once and cached). Default: the official MiDaS v2 checkpoint,
                         downloaded to $MIDAS_HOME (~/.cache/midas-webgpu) on first use.
  -s, --size N           network input side, a positive multiple of 32 (default: 384)
      --precision P      f32 or f16 (f16: half-precision weights on the GPU) (default: f32)
      --overwrite        replace existing outputs (default: images whose outputs all
                         exist are skipped)
  -q, --quiet            no progress bar

Exit status: 0 when every image was written, 1 when any failed, 2 on bad arguments.`;

interface Job {
  input: string;
  outputs: { format: Format; file: string }[];
}

function parseFormats(text: string): Format[] {
  const list = text.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = list.filter((f) => !(FORMATS as readonly string[]).includes(f));
  if (bad.length || !list.length) {
    throw new UsageError(`unknown --format '${bad.join(',') || text}' (choose from ${FORMATS.join(', ')})`);
  }
  return [...new Set(list)] as Format[];
}

function parseSize(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 32 || n % 32 !== 0) throw new UsageError(`--size must be a positive multiple of 32 (got '${text}')`);
  return n;
}

/** The images named on the command line, folders expanded (sorted, not recursive). Problems go to `errors`. */
function collectInputs(args: string[], errors: string[]): string[] {
  const out: string[] = [];
  for (const arg of args) {
    let st;
    try {
      st = statSync(arg);
    } catch {
      errors.push(`${arg}: no such file or folder`);
      continue;
    }
    if (st.isDirectory()) {
      const found = readdirSync(arg)
        .filter((n) => IMAGE_EXT.test(n))
        .sort()
        .map((n) => path.join(arg, n))
        .filter((p) => statSync(p).isFile());
      if (!found.length) errors.push(`${arg}: folder has no .jpg, .jpeg or .png images`);
      out.push(...found);
    } else {
      out.push(arg);
    }
  }
  return out;
}

function outputName(stem: string, format: Format): string {
  return format === 'pfm' ? `${stem}.pfm` : format === 'png' ? `${stem}.png` : `${stem}-color.png`;
}

function planJobs(inputs: string[], outDir: string, formats: Format[], errors: string[]): Job[] {
  const jobs: Job[] = [];
  const claimed = new Map<string, string>();
  const inputSet = new Set(inputs.map((p) => path.resolve(p)));
  for (const input of inputs) {
    const stem = path.basename(input).replace(/\.[^.]*$/, '');
    const outputs = formats.map((format) => ({ format, file: path.join(outDir, outputName(stem, format)) }));
    const clash = outputs.find((o) => claimed.has(path.resolve(o.file)) || inputSet.has(path.resolve(o.file)));
    if (clash) {
      const other = claimed.get(path.resolve(clash.file));
      errors.push(
        other
          ? `${input}: its output ${clash.file} is also ${other}'s; rename one or predict them separately`
          : `${input}: its output ${clash.file} would overwrite an input; choose another -o folder`,
      );
      continue;
    }
    for (const o of outputs) claimed.set(path.resolve(o.file), input);
    jobs.push({ input, outputs });
  }
  return jobs;
}

/**
 * Temporary files (`.<name>.tmp-<pid>-<hex>`, see writeFileAtomic) left by a run that
 * was killed: removed when their process is gone.
 */
function removeStaleTemporaries(dir: string): void {
  for (const name of readdirSync(dir)) {
    const m = /^\..+\.tmp-(\d+)-[0-9a-f]+$/.exec(name);
    if (!m) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') rmSync(path.join(dir, name), { force: true });
    }
  }
}

export const predictCommand: Command = {
  name: 'predict',
  summary: 'depth maps for images or folders of images',
  usage: USAGE,
  async run(argv) {
    const { values, positionals } = parseOptions(argv, {
      output: { type: 'string', short: 'o' },
      format: { type: 'string', short: 'f' },
      colormap: { type: 'string' },
      weights: { type: 'string', short: 'w' },
      size: { type: 'string', short: 's' },
      precision: { type: 'string' },
      overwrite: { type: 'boolean' },
      quiet: { type: 'boolean', short: 'q' },
    });
    if (!positionals.length) throw new UsageError('no images given (see midas predict --help)');
    const formats = parseFormats((values['format'] as string | undefined) ?? 'png,color');
    const size = values['size'] !== undefined ? parseSize(values['size'] as string) : 384;
    const precision = ((values['precision'] as string | undefined) ?? 'f32') as Precision;
    if (precision !== 'f32' && precision !== 'f16') throw new UsageError(`--precision must be f32 or f16 (got '${precision}')`);
    const colormap = ((values['colormap'] as string | undefined) ?? 'inferno') as ColorMapName;
    if (!COLOR_MAPS.includes(colormap)) throw new UsageError(`unknown --colormap '${colormap}' (choose from ${COLOR_MAPS.join(', ')})`);
    const overwrite = !!values['overwrite'];
    const quiet = !!values['quiet'];
    const outDir = (values['output'] as string | undefined) ?? 'output';

    try {
      mkdirSync(outDir, { recursive: true });
      accessSync(outDir, constants.W_OK);
    } catch (e) {
      throw new Error(`${outDir}: cannot write to the output folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }

    removeStaleTemporaries(outDir);
    const errors: string[] = [];
    let failed = 0;
    const jobs = planJobs(collectInputs(positionals, errors), outDir, formats, errors);
    const todo = overwrite ? jobs : jobs.filter((j) => !j.outputs.every((o) => existsSync(o.file)));
    const skipped = jobs.length - todo.length;
    if (skipped && !quiet) console.error(`skipping ${skipped} image(s) whose outputs exist (use --overwrite to redo them)`);

    if (todo.length) {
      const download = new ProgressBar({ label: 'downloading', total: 0, unit: 'bytes' });
      const convert = new ProgressBar({ label: 'converting', total: 0, unit: 'bytes' });
      const model = await loadMidas({
        weights: values['weights'] as string | undefined,
        config: archFromEnv(),
        size,
        precision,
        log: quiet ? undefined : (line) => console.error(line),
        onDownload: quiet ? undefined : (done, total) => download.update(done, '', total),
        onConvert: quiet ? undefined : (p) => convert.update(p.bytesDone, `${p.tensorsDone}/${p.tensorsTotal} tensors`, p.bytesTotal),
      });
      download.clear();
      convert.clear();
      const bar = new ProgressBar({ label: 'predict', total: todo.length, unit: 'items' });
      try {
        for (let i = 0; i < todo.length; i++) {
          const job = todo[i]!;
          if (!quiet) bar.update(i, path.basename(job.input));
          try {
            const { depth, width, height } = await model.predict(job.input);
            for (const o of job.outputs) {
              if (o.format === 'pfm') writePfm(o.file, depth, width, height, { overwrite });
              else if (o.format === 'png') writePng16(o.file, depth, width, height, { overwrite });
              else writeColorPng(o.file, depth, width, height, colormap, { overwrite });
            }
          } catch (e) {
            const msg = (e as Error).message;
            errors.push(msg.includes(job.input) ? msg : `${job.input}: ${msg}`);
            failed++;
          }
        }
        if (!quiet) bar.update(todo.length);
      } finally {
        bar.clear();
        model.dispose();
      }
    }
    if (!quiet) console.error(`${todo.length - failed} written, ${skipped} skipped, ${errors.length} failed -> ${outDir}`);
    for (const e of errors) console.error(`error: ${e}`);
    return errors.length ? 1 : 0;
  },
};
