import type { Command } from './command.js';
import { parseOptions } from './main.js';
import { Runtime } from '../nn/runtime.js';
import { nodeGpu } from '../node/gpu.js';

export const infoCommand: Command = {
  name: 'info',
  summary: 'show the WebGPU adapter, its features and the limits we run under',
  usage: 'Usage: midas info [--json]\n\nOpens the WebGPU adapter the way predict does and prints what it offers.',
  async run(argv) {
    const { values } = parseOptions(argv, { json: { type: 'boolean' } });
    const rt = await Runtime.create(nodeGpu());
    const info = { adapter: rt.adapterName, features: rt.features, limits: rt.limits };
    if (values['json']) console.log(JSON.stringify(info, null, 2));
    else {
      console.log(`adapter:  ${info.adapter}`);
      console.log(`features: ${Object.entries(info.features).map(([k, v]) => `${k}=${v ? 'yes' : 'no'}`).join('  ')}`);
      for (const [k, v] of Object.entries(info.limits)) console.log(`  ${k.padEnd(36)} ${v}`);
    }
    rt.destroy();
    return 0;
  },
};
