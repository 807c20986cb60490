import { basename, dirname, extname, join } from 'node:path';
import { existsSync, rmSync } from 'node:fs';
import { architectureName, detectArchitecture, modelOfArchitecture } from '../midas/models.js';
import { modelForWeights } from '../midas/weights.js';
import { safetensorsNames } from '../node/weights.js';
import { cliModel, MODEL_OPTION, MODEL_USAGE } from './arch.js';
import type { Command } from './command.js';
import { UsageError } from './command.js';
import { parseOptions } from './main.js';
import { ProgressBar } from './progress.js';
import { convertCheckpoint, type ConvertProgress, type OutputDtype } from '../../tools/convert-weights/index.js';

const USAGE = `Usage: midas convert <checkpoint.pt> [-o out.safetensors] [--dtype f32|f16] [--model NAME]

Converts a PyTorch checkpoint (model-f46da743.pt, model-f6b98070.pt,
model-small-70d6b9c8.pt: zip or legacy torch.save files) into a safetensors file the
runtime loads, and says which architecture it holds. Nothing in the checkpoint is
executed: only tensors and plain containers are read.

Options:
${MODEL_USAGE.replace('picks the official checkpoint and the size', 'the checkpoint must hold its architecture')}
  -o, --output FILE   where to write (default: beside the checkpoint, e.g.
                      weights/model-f46da743.safetensors; .f16.safetensors for f16)
  --dtype f32|f16     the weights' type in the output (default f32); f16 rounds to
                      nearest even, and a value beyond float16's range is an error
  -q, --quiet         no progress bar and no summary

A checkpoint named like torch.hub's files (name-<sha256 prefix>.pt) is checked against
that prefix. Integer buffers (BatchNorm's num_batches_tracked) are left out.`;

/** The default output path: beside the input, named after it. */
export function defaultOutput(input: string, dtype: OutputDtype): string {
  const stem = basename(input, extname(input));
  return join(dirname(input), `${stem}${dtype === 'f16' ? '.f16' : ''}.safetensors`);
}

function mb(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

export const convertCommand: Command = {
  name: 'convert',
  summary: 'convert a PyTorch checkpoint (.pt) into safetensors weights',
  usage: USAGE,
  async run(argv) {
    const { values, positionals } = parseOptions(argv, {
      output: { type: 'string', short: 'o' },
      ...MODEL_OPTION,
      dtype: { type: 'string' },
      quiet: { type: 'boolean', short: 'q' },
    });
    if (positionals.length !== 1) {
      throw new UsageError(positionals.length ? `one checkpoint at a time (got ${positionals.length})` : 'which checkpoint? (midas convert <checkpoint.pt>)');
    }
    const input = positionals[0]!;
    const dtype = (values['dtype'] ?? 'f32') as string;
    if (dtype !== 'f32' && dtype !== 'f16') throw new UsageError(`--dtype must be f32 or f16, not '${dtype}'`);
    if (!existsSync(input)) throw new UsageError(`no such file: ${input}`);
    const output = (values['output'] as string | undefined) ?? defaultOutput(input, dtype);
    if (output === input) throw new UsageError('the output would overwrite the checkpoint');
    const quiet = values['quiet'] === true;
    const { name: model } = cliModel(values);

    const bar = quiet ? null : new ProgressBar({ label: 'converting', total: 0, unit: 'bytes' });
    // Ctrl-C stops between tensors and removes the temporary file.
    const abort = new AbortController();
    const onSignal = (): void => abort.abort(new Error('interrupted'));
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      const stats = await convertCheckpoint(input, output, {
        dtype,
        signal: abort.signal,
        ...(bar ? { onProgress: (p: ConvertProgress) => bar.update(p.bytesDone, `${p.tensorsDone}/${p.tensorsTotal} tensors`, p.bytesTotal) } : {}),
      });
      bar?.clear();
      const names = await safetensorsNames(output);
      try {
        if (model) modelForWeights(names, input, model);
      } catch (e) {
        rmSync(output, { force: true });
        throw e;
      }
      const arch = detectArchitecture(names);
      const held = arch ? ` of ${architectureName(modelOfArchitecture(arch).config)}` : '';
      if (!quiet) {
        const skipped = stats.skipped.length ? ` (${stats.skipped.length} integer buffers left out)` : '';
        console.log(
          `converted ${stats.tensors} tensors${skipped}, ${mb(stats.inputBytes)} MB ${stats.format} checkpoint${held} → ` +
            `${mb(stats.outputBytes)} MB ${dtype} in ${stats.seconds.toFixed(2)} s (${stats.mbPerSecond.toFixed(0)} MB/s): ${output}`,
        );
      }
      return 0;
    } catch (e) {
      bar?.clear();
      throw e;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
};
