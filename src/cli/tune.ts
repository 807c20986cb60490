// `midas tune`: times the candidate tiles of every tiled conv on this adapter and
// saves the fastest, which loadMidas (and so `midas predict`) uses from then on.
import { tileText, type TunedConv } from '../kernels/tuner.js';
import { tuneNetwork } from '../midas/tune.js';
import { Runtime } from '../nn/runtime.js';
import { adapterKey, saveTuning, tuningFile } from '../node/tuning.js';
import { ADAPTER_OPTION, ADAPTER_USAGE, cliGpu } from './adapter.js';
import { cliModel, MODEL_OPTION, MODEL_USAGE, modelTitle, modelWithoutWeights } from './arch.js';
import { UsageError, type Command } from './command.js';
import { parseOptions, parseSize } from './main.js';

const USAGE = `Usage: midas tune [--model NAME] [--size N] [--only KEY] [--runs N] [--adapter TEXT] [--json] [-q]

Times every candidate tile for each convolution that the tiled kernels run on an
N x N input on this adapter, and the rows kernel where it can run a 3x3 conv
(random weights: the timing does not depend on them), and saves the fastest in $MIDAS_HOME/tuning.json (~/.cache/midas-webgpu),
under this adapter's name. loadMidas and \`midas predict\` use them from then on;
without a saved tuning they use built-in choices, swept on lavapipe.

Options:
${MODEL_USAGE}
  -s, --size N     input side, a multiple of 32 (default: the model's, 384 or 256)
      --only KEY   only convs under this checkpoint key (e.g. pretrained.layer3)
      --runs N     timed runs per candidate after a first one that compiles it (default 3)
${ADAPTER_USAGE}
      --json       print the results as JSON
  -q, --quiet      no line per conv`;

const ms = (x: number) => `${x.toFixed(1)} ms`;

function line(r: TunedConv): string {
  const gain = r.builtin.ms / r.best.ms;
  return `${r.spec.key.padEnd(40)} ${r.tileKey.padEnd(18)} ` +
    `built-in ${tileText(r.builtin.tile).padEnd(11)} ${ms(r.builtin.ms).padStart(10)}   ` +
    `best ${tileText(r.best.tile).padEnd(11)} ${ms(r.best.ms).padStart(10)}  ${gain.toFixed(2)}x`;
}

export const tuneCommand: Command = {
  name: 'tune',
  summary: 'time the conv tiles on this adapter and save the fastest for later runs',
  usage: USAGE,
  async run(argv) {
    const { values, positionals } = parseOptions(argv, {
      ...MODEL_OPTION,
      size: { type: 'string', short: 's' },
      only: { type: 'string' },
      runs: { type: 'string' },
      ...ADAPTER_OPTION,
      json: { type: 'boolean' },
      quiet: { type: 'boolean', short: 'q' },
    });
    if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    const choice = cliModel(values);
    const { info, config } = modelWithoutWeights(choice);
    const size = parseSize(values['size'] as string | undefined, info.size);
    const runsText = values['runs'] as string | undefined;
    const runs = runsText === undefined ? 3 : Number(runsText);
    if (!(/^\d+$/.test(runsText ?? '3') && runs >= 1)) throw new UsageError(`--runs must be a positive integer (got '${runsText}')`);
    const quiet = !!values['quiet'] || !!values['json'];
    const rt = await Runtime.create(await cliGpu(values));
    try {
      if (!quiet) console.log(`tuning ${modelTitle(choice, info)} for ${adapterKey(rt)} at ${size}x${size}`);
      const { results, tiles } = await tuneNetwork(rt, config, size, {
        runs,
        only: values['only'] as string | undefined,
        onConv: quiet ? undefined : (_done, _total, r) => console.log(line(r)),
      });
      await saveTuning(rt, tiles, size);
      const builtinMs = results.reduce((a, r) => a + r.builtin.ms, 0);
      const bestMs = results.reduce((a, r) => a + r.best.ms, 0);
      if (values['json']) {
        console.log(JSON.stringify({
          adapter: adapterKey(rt), size, file: tuningFile(),
          convs: results.map((r) => ({ key: r.spec.key, tileKey: r.tileKey, input: r.spec.input, timed: r.timed, best: r.best, builtin: r.builtin })),
        }, null, 2));
      } else {
        console.log(`saved ${tiles.size} tiles in ${tuningFile()}; these convs once each: ${ms(builtinMs)} built-in, ${ms(bestMs)} tuned (${(builtinMs / bestMs).toFixed(2)}x)`);
      }
      return 0;
    } finally {
      rt.destroy();
    }
  },
};
