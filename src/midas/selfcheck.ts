// `midas info --check`: does this device compute what the model needs? Every kernel
// variant a prediction runs on it (kernel_variants.ts) runs once at a small input
// size (the smallest that gets the same shader) against a CPU reference.
import type { Runtime } from '../nn/runtime.js';
import type { MidasConfig } from './config.js';
import { caseMaker, type CheckCase } from './check_cases.js';
import { compare } from './cpu_kernels.js';
import { metaLike, modelVariants, type KernelVariant } from './kernel_variants.js';
import type { Precision } from './network.js';

export interface SelfCheckOptions {
  config: MidasConfig;
  /** The transform's side (the model's default size: which kernels run can depend on it). */
  size: number;
  precision?: Precision;
  /**
   * Testing the check itself: variants whose name contains this get their main input
   * off by 3 at element 0 on the GPU side only (as a kernel that reads its input
   * wrongly would), so they must fail.
   */
  breakKernel?: string;
  /** Called as each variant is done. */
  onVariant?: (r: VariantResult) => void;
}

export interface VariantResult {
  /** The kernel and its fused work, e.g. `conv2d_tiled 3x3/1 g32 256->256 [relu]` (see `variantName`). */
  name: string;
  /** Dispatches of a prediction that run it, and the checkpoint key of the first. */
  dispatches: number;
  scope: string;
  ok: boolean;
  /** The NHWC input it ran on (empty when it could not run). */
  input: readonly number[];
  /** The output with the largest error against its tolerance: the error and the tolerance there. */
  error: number;
  tolerance: number;
  /** Outputs compared with the reference. */
  compared: number;
  ms: number;
  /** Why it failed without a comparison (no reference, no size that runs its shader, an exception). */
  problem?: string;
}

export interface SelfCheckResult {
  adapter: string;
  dispatches: number;
  variants: VariantResult[];
  ok: boolean;
  ms: number;
}

/** Runs every kernel variant of a prediction on `rt` against a CPU reference. */
export async function selfCheck(rt: Runtime, options: SelfCheckOptions): Promise<SelfCheckResult> {
  const t0 = performance.now();
  const precision = options.precision ?? 'f32';
  if (precision !== 'f32' && !rt.features.f16) {
    throw new Error(`precision '${precision}' needs the shader-f16 feature, which ${rt.adapterName} does not have`);
  }
  const { variants, dispatches } = modelVariants(rt, options.config, options.size, precision);
  const results: VariantResult[] = [];
  for (const v of variants) {
    const r = await checkVariant(rt, v, !!options.breakKernel && v.name.includes(options.breakKernel));
    results.push(r);
    options.onVariant?.(r);
  }
  return { adapter: rt.adapterName, dispatches, variants: results, ok: results.every((r) => r.ok), ms: performance.now() - t0 };
}

async function checkVariant(rt: Runtime, v: KernelVariant, perturbed: boolean): Promise<VariantResult> {
  const t0 = performance.now();
  const base = { name: v.name, dispatches: v.dispatches, scope: v.scope };
  const failed = (problem: string, input: readonly number[] = []): VariantResult =>
    ({ ...base, ok: false, input, error: Infinity, tolerance: 0, compared: 0, ms: performance.now() - t0, problem });
  if (typeof v.call === 'string') return failed(v.call);
  const found = smallestCase(rt, v);
  if (typeof found === 'string') return failed(found);
  const saved = rt.records;
  rt.records = [];
  // A shader the adapter refuses is a WebGPU error, not an exception: caught here.
  rt.device.pushErrorScope('internal');
  rt.device.pushErrorScope('validation');
  let scopes = 2;
  const popErrors = async () => {
    const messages: string[] = [];
    for (; scopes > 0; scopes--) {
      const e = await rt.device.popErrorScope();
      if (e) messages.push(e.message.split('\n')[0]!);
    }
    return messages;
  };
  try {
    const out = found.run(rt, perturbed);
    const ran = rt.records.at(-1)?.shader;
    try {
      const gpu = await out.read();
      const errors = await popErrors();
      if (errors.length) return failed(`WebGPU error: ${errors[0]}`, found.input);
      if (ran !== v.shader) return failed('the small case ran another shader than the model', found.input);
      const c = compare(gpu, found.reference(), out.size);
      return { ...base, ok: c.ok, input: found.input, error: c.error, tolerance: c.tolerance, compared: c.compared, ms: performance.now() - t0 };
    } finally {
      out.dispose();
    }
  } catch (e) {
    return failed((e as Error).message.split('\n')[0]!, found.input);
  } finally {
    await popErrors();
    rt.records = saved;
  }
}

/** The call at the smallest input size whose dispatch runs the variant's shader on a device like `rt`, with data. */
function smallestCase(rt: Runtime, v: KernelVariant): CheckCase | string {
  const maker = caseMaker(v.call as Exclude<KernelVariant['call'], string>);
  const meta = metaLike(rt);
  for (const [h, w] of maker.sizes) {
    const probe = maker.at(h, w, false);
    if (!probe) continue;
    meta.records = [];
    try {
      probe.run(meta).dispose();
    } catch {
      continue; // too small for the window, or a limit: try the next size
    }
    if (meta.records.at(-1)?.shader === v.shader) return maker.at(h, w, true)!;
  }
  return 'no input size up to the model\'s runs the same shader';
}
