// `midas info`: the adapter a command would open and what it offers; --all: every
// adapter Dawn finds; --check: the model's kernels run on the adapter against the CPU.
import type { Command } from './command.js';
import { UsageError } from './command.js';
import { parseOptions, parseSize } from './main.js';
import { useTiles } from '../kernels/conv2d_tiled.js';
import type { Precision } from '../midas/network.js';
import { selfCheck, type SelfCheckResult } from '../midas/selfcheck.js';
import { NoAdapterError } from '../nn/device.js';
import { Runtime } from '../nn/runtime.js';
import { surveyAdapters } from '../node/adapter_report.js';
import { listAdapters } from '../node/adapters.js';
import { nodeGpu } from '../node/gpu.js';
import { readTuning, tuningFile } from '../node/tuning.js';
import { ADAPTER_OPTION, ADAPTER_USAGE, cliAdapter } from './adapter.js';
import { cliModel, MODEL_OPTION, MODEL_USAGE, modelTitle, modelWithoutWeights } from './arch.js';
import { printCheck, printSurvey } from './info_print.js';

const USAGE = `Usage: midas info [--adapter TEXT] [--all] [--check [--model NAME] [--size N] [--precision P]] [--json]

Opens the WebGPU adapter the way predict does and prints what it offers, and
whether \`midas tune\` has saved tiles for it.

Options:
${ADAPTER_USAGE}
      --all          every adapter Dawn finds, in its order: features, subgroup
                     sizes, limits; which one the defaults open, and why
      --check        run every kernel variant the model runs on the adapter (with
                     --all: on each adapter) once, at a small size, against a CPU
                     reference: pass or FAIL per kernel with its largest error and
                     the tolerance; exit status 1 if any fails. Attach its output to
                     a bug report.
${MODEL_USAGE}
  -s, --size N       with --check: the input side whose kernels to check (default:
                     the model's, 384 or 256)
      --precision P  with --check: f32, f16 or f16-math, as for predict (default: f32)
      --json         machine-readable output

Environment: MIDAS_ADAPTER=TEXT as --adapter; MIDAS_CHECK_BREAK=TEXT (to test the
check itself) gives the GPU a wrong input for the variants whose name contains TEXT.`;

/** Dawn's name of the adapter it opens by default: the first it lists. */
async function firstName(): Promise<string | undefined> {
  return (await listAdapters())[0]?.name;
}

export const infoCommand: Command = {
  name: 'info',
  summary: 'show the WebGPU adapter(s), their features and limits; --check runs the kernels against the CPU',
  usage: USAGE,
  async run(argv) {
    const { values, positionals } = parseOptions(argv, {
      json: { type: 'boolean' },
      all: { type: 'boolean' },
      check: { type: 'boolean' },
      ...ADAPTER_OPTION,
      ...MODEL_OPTION,
      size: { type: 'string', short: 's' },
      precision: { type: 'string' },
    });
    if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    const json = !!values['json'];
    const check = !!values['check'];
    for (const o of ['model', 'size', 'precision']) {
      if (values[o] !== undefined && !check) throw new UsageError(`--${o} applies to --check only`);
    }
    if (values['all'] && values['adapter'] !== undefined) throw new UsageError('--all lists every adapter: drop --adapter');
    const precision = ((values['precision'] as string | undefined) ?? 'f32') as Precision;
    if (precision !== 'f32' && precision !== 'f16' && precision !== 'f16-math') {
      throw new UsageError(`--precision must be f32, f16 or f16-math (got '${precision}')`);
    }
    const choice = cliModel(values);
    const { info: model, config } = modelWithoutWeights(choice);
    const size = parseSize(values['size'] as string | undefined, model.size);
    const title = `${modelTitle(choice, model)} at ${size}x${size}, ${precision}`;

    /** The check on one adapter (Dawn's name; undefined: Dawn's default), with the tiles predict would use there. */
    const checkOn = async (name: string | undefined): Promise<SelfCheckResult & { name: string }> => {
      const rt = await Runtime.create(nodeGpu(name));
      try {
        const saved = readTuning(rt);
        if (saved) useTiles(rt, Object.entries(saved.tiles));
        const shown = name ?? (await firstName()) ?? rt.adapterName;
        if (!json) {
          console.log(`checking ${title}, on ${shown}${saved ? ' with the tiles midas tune saved' : ''}`);
          console.log(`  (${rt.adapterName})`);
        }
        const r = await selfCheck(rt, {
          config, size, precision,
          breakKernel: process.env['MIDAS_CHECK_BREAK'] || undefined,
          onVariant: json ? undefined : (v) => console.log(printCheck.line(v)),
        });
        if (!json) console.log(printCheck.summary(r, shown));
        return { name: shown, ...r };
      } finally {
        rt.destroy();
      }
    };

    if (values['all']) {
      const survey = await surveyAdapters();
      if (!survey.adapters.length) throw new NoAdapterError('Dawn lists none');
      if (!json) printSurvey(survey);
      const checks: SelfCheckResult[] = [];
      if (check) {
        for (const a of survey.adapters) {
          if (!json) console.log('');
          checks.push(await checkOn(a.name));
        }
      }
      if (json) console.log(JSON.stringify({ ...survey, ...(check ? { checks } : {}) }, null, 2));
      return checks.every((c) => c.ok) ? 0 : 1;
    }

    const name = await cliAdapter(values);
    if (check) {
      const r = await checkOn(name);
      if (json) console.log(JSON.stringify({ model: modelTitle(choice, model), size, precision, ...r }, null, 2));
      return r.ok ? 0 : 1;
    }

    const rt = await Runtime.create(nodeGpu(name));
    try {
      const saved = readTuning(rt);
      const tuning = saved ? { file: tuningFile(), tiles: Object.keys(saved.tiles).length, size: saved.size, tuned: saved.tuned } : null;
      const dawnName = name ?? (await firstName());
      const info = { adapter: rt.adapterName, name: dawnName, subgroups: [rt.subgroupMinSize, rt.subgroupMaxSize], ...(rt.subgroupProbe ? { subgroupProbe: rt.subgroupProbe } : {}), features: rt.features, limits: rt.limits, tuning };
      if (json) console.log(JSON.stringify(info, null, 2));
      else {
        console.log(`adapter:  ${info.adapter}`);
        if (dawnName) console.log(`name:     ${dawnName} (what --adapter matches; \`midas info --all\` lists every adapter)`);
        console.log(`features: ${Object.entries(info.features).map(([k, v]) => `${k}=${v ? 'yes' : 'no'}`).join('  ')}`);
        if (rt.features.subgroups) console.log(`subgroups: ${rt.subgroupMinSize}-${rt.subgroupMaxSize} lanes`);
        if (rt.subgroupProbe) console.log(`subgroups: not used: ${rt.subgroupProbe}`);
        console.log(
          tuning
            ? `tuning:   ${tuning.tiles} conv tiles saved ${tuning.tuned.slice(0, 10)} at ${tuning.size}x${tuning.size} (${tuning.file})`
            : `tuning:   none saved for this adapter (built-in tiles; \`midas tune\` times them)`,
        );
        for (const [k, v] of Object.entries(info.limits)) console.log(`  ${k.padEnd(36)} ${v}`);
      }
    } finally {
      rt.destroy();
    }
    return 0;
  },
};
