import type { Command } from './command.js';
import { parseOptions } from './main.js';
import { Runtime } from '../nn/runtime.js';
import { nodeGpu } from '../node/gpu.js';
import { readTuning, tuningFile } from '../node/tuning.js';

export const infoCommand: Command = {
  name: 'info',
  summary: 'show the WebGPU adapter, its features and the limits we run under',
  usage:
    'Usage: midas info [--json]\n\nOpens the WebGPU adapter the way predict does and prints what it offers, and\n' +
    'whether `midas tune` has saved tiles for it.',
  async run(argv) {
    const { values } = parseOptions(argv, { json: { type: 'boolean' } });
    const rt = await Runtime.create(nodeGpu());
    const saved = readTuning(rt);
    const tuning = saved ? { file: tuningFile(), tiles: Object.keys(saved.tiles).length, size: saved.size, tuned: saved.tuned } : null;
    const info = { adapter: rt.adapterName, subgroups: [rt.subgroupMinSize, rt.subgroupMaxSize], features: rt.features, limits: rt.limits, tuning };
    if (values['json']) console.log(JSON.stringify(info, null, 2));
    else {
      console.log(`adapter:  ${info.adapter}`);
      console.log(`features: ${Object.entries(info.features).map(([k, v]) => `${k}=${v ? 'yes' : 'no'}`).join('  ')}`);
      if (rt.features.subgroups) console.log(`subgroups: ${rt.subgroupMinSize}-${rt.subgroupMaxSize} lanes`);
      console.log(
        tuning
          ? `tuning:   ${tuning.tiles} conv tiles saved ${tuning.tuned.slice(0, 10)} at ${tuning.size}x${tuning.size} (${tuning.file})`
          : `tuning:   none saved for this adapter (built-in tiles; \`midas tune\` times them)`,
      );
      for (const [k, v] of Object.entries(info.limits)) console.log(`  ${k.padEnd(36)} ${v}`);
    }
    rt.destroy();
    return 0;
  },
};
