// `midas info --all`: every adapter Dawn finds, what each offers, and which one the
// defaults take and why.
import { adapterLabel, DEFAULT_POWER_PREFERENCE, openDevice, RAISED_LIMITS, type RaisedLimit } from '../nn/device.js';
import { listAdapters } from './adapters.js';
import { nodeGpu } from './gpu.js';

export interface AdapterReport {
  /** Dawn's name: what `--adapter` matches (with the label). */
  name: string;
  backend: string;
  /** vendor / architecture / device / description, as `midas info` shows it. */
  label: string;
  /** A software (CPU) adapter, by Dawn's account. */
  fallback: boolean;
  /** Every feature the adapter offers, sorted. */
  features: string[];
  /** The subgroup sizes it reports ([0, 0] without the subgroups feature). */
  subgroups: [number, number];
  /** The limits `openDevice` raises to the adapter's (src/nn/device.ts). */
  limits: Record<RaisedLimit, number>;
}

export interface AdapterSurvey {
  adapters: AdapterReport[];
  /** Index in `adapters` of the one a plain `openDevice(nodeGpu())` opens; -1 for none. */
  defaultIndex: number;
  /** Why that one, in a sentence or two. */
  why: string;
}

/** Lists and describes every adapter, and works out which the defaults open. */
export async function surveyAdapters(): Promise<AdapterSurvey> {
  const found = await listAdapters();
  const adapters: AdapterReport[] = [];
  for (const a of found) {
    const adapter = await nodeGpu(a.name).requestAdapter({ powerPreference: DEFAULT_POWER_PREFERENCE });
    if (!adapter) continue;
    const limits = {} as Record<RaisedLimit, number>;
    for (const k of RAISED_LIMITS) limits[k] = adapter.limits[k];
    const info = adapter.info;
    adapters.push({
      name: a.name,
      backend: a.backend,
      label: adapterLabel(info),
      fallback: !!info?.isFallbackAdapter,
      features: [...adapter.features].map(String).sort(),
      subgroups: adapter.features.has('subgroups') ? [info?.subgroupMinSize ?? 0, info?.subgroupMaxSize ?? 0] : [0, 0],
      limits,
    });
  }
  if (!adapters.length) return { adapters, defaultIndex: -1, why: 'Dawn found no adapter' };
  // What the defaults really open: openDevice on Dawn's default GPU object.
  const opened = await openDevice(nodeGpu());
  opened.device.destroy();
  const defaultIndex = adapters.findIndex((a) => a.label === opened.adapterName);
  return { adapters, defaultIndex, why: explain(adapters, defaultIndex, opened.featureLevel) };
}

/** The reasons behind `openDevice`'s choice, from what it asks and how Dawn orders adapters. */
function explain(adapters: readonly AdapterReport[], chosen: number, level: 'core' | 'compatibility'): string {
  const asked =
    `openDevice asks Dawn for a '${DEFAULT_POWER_PREFERENCE}' adapter at ${level} feature level` +
    (level === 'core' ? ' (compatibility level only where there is no core adapter)' : ' (there is no core adapter)') +
    ', and in Node takes a software (fallback) adapter as it is';
  const order = "Dawn ranks discrete GPUs first, then integrated GPUs, then CPU adapters, keeping the driver's order among equals";
  const pick = adapters[chosen];
  if (!pick) return `${asked}; ${order}. The adapter it opened is not among those listed.`;
  const why = adapters.every((a) => a.fallback)
    ? `every adapter here is a software one, so the first in the drivers' order wins: ${pick.name}`
    : pick.fallback
      ? `${pick.name} comes first though it is a software one`
      : `${pick.name} is the first that is not a software adapter`;
  return `${asked}; ${order}: ${why}.`;
}
