// Device bootstrap on any `GPU` object (Node's `webgpu` package or a browser's
// `navigator.gpu`). Nothing here imports Node built-ins.
import { probeSubgroups } from './subgroup_probe.js';

export interface DeviceFeatures {
  /** `shader-f16`: WGSL `f16` arithmetic and storage. */
  readonly f16: boolean;
  /** `timestamp-query`: GPU-side timing of compute passes. */
  readonly timestamps: boolean;
  /** `subgroups`: subgroup built-ins in WGSL. */
  readonly subgroups: boolean;
}

export interface OpenDeviceOptions {
  powerPreference?: GPUPowerPreference;
  /**
   * Also ask for a compatibility-level adapter when the core one is a fallback
   * (software) adapter, and take it when it is not a fallback itself. Browsers want
   * this: Chromium without a GPU offers SwiftShader at core level but lavapipe through
   * OpenGL ES at compatibility level, about 4x faster. Default false: Dawn in Node
   * reports lavapipe itself as a fallback, and the compatibility request gives the same.
   */
  avoidFallbackAdapter?: boolean;
  /** Ask for these features when the adapter has them (default: all three). */
  wantFeatures?: Partial<Record<keyof DeviceFeatures, boolean>>;
  /** Cap limits below the adapter's (tests use this to reach a limit with small inputs). */
  capLimits?: Partial<Record<RaisedLimit, number>>;
}

export class NoAdapterError extends Error {
  constructor(detail: string) {
    super(
      `no WebGPU adapter found (${detail}). On a machine without a GPU install a software ` +
        `Vulkan driver that Dawn accepts: Mesa lavapipe 25.x (Debian 12: ` +
        `apt-get install -t bookworm-backports mesa-vulkan-drivers); see README "Machines without a GPU".`,
    );
    this.name = 'NoAdapterError';
  }
}

/** The limits we raise from WebGPU's defaults to what the adapter really offers. */
export const RAISED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

export type RaisedLimit = (typeof RAISED_LIMITS)[number];

export interface OpenedDevice {
  adapter: GPUAdapter;
  device: GPUDevice;
  features: DeviceFeatures;
  limits: Record<RaisedLimit, number>;
  /** Adapter description for reports: vendor, architecture, device, description. */
  adapterName: string;
  /** The smallest subgroup the device may run (0 without the subgroups feature). */
  subgroupMinSize: number;
  /** The largest subgroup the device may run (0 without the subgroups feature). */
  subgroupMaxSize: number;
  /**
   * Why the adapter's subgroups are not used although it offers them: they failed the
   * lane probe (`probeSubgroups`); `features.subgroups` is then false. Absent otherwise.
   */
  subgroupProbe?: string;
  /** The feature level of the adapter taken (see `openDevice`). */
  featureLevel: 'core' | 'compatibility';
}

/** The power preference `openDevice` asks for unless told otherwise. */
export const DEFAULT_POWER_PREFERENCE: GPUPowerPreference = 'high-performance';

/** An adapter for reports: vendor, architecture, device, description (those it gives). */
export function adapterLabel(info: GPUAdapterInfo | undefined): string {
  return [info?.vendor, info?.architecture, info?.device, info?.description].filter((s) => s).join(' / ') || 'unknown adapter';
}

export async function openDevice(gpu: GPU, options: OpenDeviceOptions = {}): Promise<OpenedDevice> {
  // Core first; `featureLevel: 'compatibility'` when there is no core adapter (a
  // browser on OpenGL ES, D3D11) or, if asked, when core offers only a fallback one.
  // Every kernel stays within compatibility mode's rules and default limits.
  const powerPreference = options.powerPreference ?? DEFAULT_POWER_PREFERENCE;
  let adapter = await gpu.requestAdapter({ powerPreference });
  let featureLevel: OpenedDevice['featureLevel'] = 'core';
  if (!adapter || (options.avoidFallbackAdapter && adapter.info?.isFallbackAdapter)) {
    const compat = await gpu.requestAdapter({ powerPreference, featureLevel: 'compatibility' });
    if (compat && (!adapter || !compat.info?.isFallbackAdapter)) {
      adapter = compat;
      featureLevel = 'compatibility';
    }
  }
  if (!adapter) throw new NoAdapterError('requestAdapter() returned null at both feature levels, core and compatibility');

  const want = { f16: true, timestamps: true, subgroups: true, ...options.wantFeatures };
  const has = (name: string) => adapter.features.has(name);
  let features: DeviceFeatures = {
    f16: want.f16 && has('shader-f16'),
    timestamps: want.timestamps && has('timestamp-query'),
    subgroups: want.subgroups && has('subgroups'),
  };
  const requiredFeatures: GPUFeatureName[] = [];
  if (features.f16) requiredFeatures.push('shader-f16');
  if (features.timestamps) requiredFeatures.push('timestamp-query');
  if (features.subgroups) requiredFeatures.push('subgroups' as GPUFeatureName);

  const requiredLimits: Record<string, number> = {};
  for (const name of RAISED_LIMITS) requiredLimits[name] = adapter.limits[name];

  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  const limits = {} as Record<RaisedLimit, number>;
  // A cap applies to what our code plans with (WebGPU never lowers a limit below its default).
  for (const name of RAISED_LIMITS) limits[name] = Math.min(device.limits[name], options.capLimits?.[name] ?? Infinity);

  const info = adapter.info;
  const adapterName = adapterLabel(info);
  let subgroupProbe: string | undefined;
  if (features.subgroups) {
    const maxThreads = Math.min(device.limits.maxComputeInvocationsPerWorkgroup, device.limits.maxComputeWorkgroupSizeX);
    subgroupProbe = (await probeOnce(device, adapterName, info?.subgroupMinSize ?? 0, maxThreads)) ?? undefined;
    // The device keeps the feature (harmless); our kernels plan as if it had none.
    if (subgroupProbe) features = { ...features, subgroups: false };
  }
  const subgroupMinSize = features.subgroups ? (info?.subgroupMinSize ?? 0) : 0;
  const subgroupMaxSize = features.subgroups ? (info?.subgroupMaxSize ?? 0) : 0;
  return { adapter, device, features, limits, adapterName, subgroupMinSize, subgroupMaxSize, featureLevel, ...(subgroupProbe ? { subgroupProbe } : {}) };
}

/**
 * The lane probe's verdict per adapter and width: a driver's subgroups do not change
 * within a process, and helper devices (the shader warm-up) open the same adapter.
 */
const probed = new Map<string, Promise<string | null>>();
function probeOnce(device: GPUDevice, adapterName: string, width: number, maxThreads: number): Promise<string | null> {
  const key = `${adapterName}|${width}|${maxThreads}`;
  let verdict = probed.get(key);
  if (!verdict) probed.set(key, (verdict = probeSubgroups(device, width, maxThreads)));
  return verdict;
}
