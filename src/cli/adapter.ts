// `--adapter TEXT` (or $MIDAS_ADAPTER), shared by every command that opens a device:
// the adapter whose name contains TEXT, looked up before any other work so that a
// name that matches nothing fails at once, listing the adapters there are.
import { adapterRequest, findAdapter } from '../node/adapters.js';
import { nodeGpu } from '../node/gpu.js';
import { UsageError } from './command.js';

/** The `--adapter` option's usage line. */
export const ADAPTER_USAGE = `      --adapter TEXT the WebGPU adapter whose name contains TEXT, ignoring case
                     (\`midas info --all\` lists them; default: $MIDAS_ADAPTER, else
                     Dawn's first)`;

/** The `--adapter` option for parseOptions. */
export const ADAPTER_OPTION = { adapter: { type: 'string' } } as const;

/**
 * Dawn's exact name of the adapter `--adapter` (else $MIDAS_ADAPTER) asks for, or
 * undefined for Dawn's default; an AdapterNotFoundError when none matches.
 */
export async function cliAdapter(values: Record<string, unknown>): Promise<string | undefined> {
  const given = values['adapter'] as string | undefined;
  if (given !== undefined && !given.trim()) throw new UsageError('--adapter needs a name, or a part of one (`midas info --all` lists them)');
  const text = adapterRequest(given);
  return text === undefined ? undefined : (await findAdapter(text)).name;
}

/** Dawn's GPU object for `--adapter` (see `cliAdapter`). */
export async function cliGpu(values: Record<string, unknown>): Promise<GPU> {
  return nodeGpu(await cliAdapter(values));
}
