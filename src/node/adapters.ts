// Which WebGPU adapters Dawn finds, and choosing one by part of its name.
//
// Dawn's Node binding has no call that lists adapters: `requestAdapter` returns one.
// What it does have (src/dawn/node/binding/GPU.cpp): with the flag `adapter=NAME`,
// requestAdapter enumerates the adapters of its backend (Vulkan on Linux) sorted as
// for the request (for 'high-performance': discrete GPUs, integrated GPUs, then CPU
// adapters; among equals the driver's order) and takes the first whose name contains
// NAME, case-sensitive. When none does it rejects with every name it enumerated:
//
//   no suitable backends found
//   Available adapters:
//    * backend: 'vulkan', name: 'SwiftShader Device (Subzero)'
//    * backend: 'vulkan', name: 'llvmpipe (LLVM 15.0.6, 256 bits)'
//
// So a name no adapter has lists them all, in Dawn's order, and each listed name,
// given back as the flag, opens that adapter (one Dawn instance per name: nodeGpu).
// Checked with lavapipe and SwiftShader both installed (VK_ADD_DRIVER_FILES): the
// names hold spaces, brackets and commas, and the flag takes them as they are.
import { adapterLabel, DEFAULT_POWER_PREFERENCE } from '../nn/device.js';
import { nodeGpu } from './gpu.js';

/** An adapter as Dawn names it. */
export interface DawnAdapter {
  /** Dawn's name (Vulkan's device name), e.g. 'llvmpipe (LLVM 15.0.6, 256 bits)'. */
  name: string;
  /** Dawn's backend, e.g. 'vulkan'. */
  backend: string;
  /** What `midas info` shows for it: vendor / architecture / device / description. */
  label: string;
}

/** A name no adapter has: Dawn then rejects and lists the ones it has. */
const LIST_ALL = '(midas-webgpu: list the adapters)';

/** No adapter's name or label contains the text asked for. */
export class AdapterNotFoundError extends Error {
  constructor(text: string, found: readonly DawnAdapter[]) {
    super(
      found.length
        ? `no WebGPU adapter matches '${text}' (found: ${found.map((a) => `'${a.name}'`).join(', ')})`
        : `no WebGPU adapter matches '${text}': Dawn found no adapter at all`,
    );
    this.name = 'AdapterNotFoundError';
  }
}

/** The adapters in Dawn's rejection message (see the header); throws if it is not that message. */
export function parseAdapterList(message: string): { name: string; backend: string }[] {
  if (!/Available adapters:/.test(message)) {
    throw new Error(`cannot list the WebGPU adapters: Dawn answered '${message.split('\n')[0]}' instead of listing them`);
  }
  const out: { name: string; backend: string }[] = [];
  for (const line of message.split('\n')) {
    const m = /^\s*\* backend: '([^']*)', name: '(.*)'\s*$/.exec(line);
    if (m) out.push({ backend: m[1]!, name: m[2]! });
  }
  return out;
}

/**
 * Every adapter Dawn finds, in the order it would take them for `openDevice`'s power
 * preference: the first is the one `openDevice(nodeGpu())` opens.
 */
export async function listAdapters(): Promise<DawnAdapter[]> {
  const lister = nodeGpu(LIST_ALL);
  // Core first, as openDevice asks; compatibility level only where core has none.
  for (const featureLevel of ['core', 'compatibility'] as const) {
    let found: GPUAdapter | null;
    try {
      found = await lister.requestAdapter({ powerPreference: DEFAULT_POWER_PREFERENCE, featureLevel });
    } catch (e) {
      const named = parseAdapterList((e as Error).message);
      return Promise.all(named.map(async (a) => ({ ...a, label: adapterLabel((await nodeGpu(a.name).requestAdapter({ featureLevel }))?.info) })));
    }
    if (found) throw new Error(`cannot list the WebGPU adapters: Dawn ignored its adapter= flag and returned '${adapterLabel(found.info)}'`);
  }
  return [];
}

/**
 * The first adapter (in Dawn's order) whose Dawn name or label contains `text`,
 * ignoring case; AdapterNotFoundError, listing what there is, when none does.
 */
export async function findAdapter(text: string): Promise<DawnAdapter> {
  if (!text.trim()) throw new Error('the adapter name to look for is empty');
  const all = await listAdapters();
  const t = text.toLowerCase();
  const hit = all.find((a) => a.name.toLowerCase().includes(t) || a.label.toLowerCase().includes(t));
  if (!hit) throw new AdapterNotFoundError(text, all);
  return hit;
}

/** What to look for: `given` (an --adapter or loadMidas option) if set, else $MIDAS_ADAPTER if set and not empty. */
export function adapterRequest(given?: string): string | undefined {
  if (given !== undefined) return given;
  const env = process.env['MIDAS_ADAPTER'];
  return env ? env : undefined;
}

/**
 * Dawn's GPU object for the adapter `adapterRequest(given)` names, or Dawn's default
 * one when none is named. The name is looked up here, so an unknown one fails before
 * any work, with the list of adapters.
 */
export async function chooseGpu(given?: string): Promise<GPU> {
  const text = adapterRequest(given);
  if (text === undefined) return nodeGpu();
  return nodeGpu((await findAdapter(text)).name);
}
