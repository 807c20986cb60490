// Every kernel within WebGPU's compatibility mode, in Node: Dawn gives a device under
// compatibility validation and with its default limits (8 storage buffers a stage,
// 128 invocations a workgroup, 16 KiB uniforms, 128 MiB storage bindings, 256 MiB
// buffers, no shader-f16) when the adapter is asked for featureLevel 'compatibility'
// and the device for nothing more. The browser entry's loadMidas runs the reduced
// networks there (v2's structure, and v2.1 small's with its depthwise convs, ReLU6 and
// SAME padding); each must raise no validation error and match the core device's result.
// (test/browser.test.ts runs the same in Chromium, whose only hardware adapter here is
// compatibility-level OpenGL ES.)
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { loadMidas as loadMidasBrowser } from '../src/browser/index.js';
import { finiteRange } from '../src/midas/colormap.js';
import { decodeImage } from '../src/node/image.js';
import { nodeGpu } from '../src/node/gpu.js';
import { loadMidas } from '../src/node/load.js';
import { maxAbsDiff } from './reference.js';
import { REDUCED, REDUCED_MANIFEST, REDUCED_SMALL, REDUCED_WEIGHTS, type ReducedFixture } from './reduced.js';

const manifest = REDUCED_MANIFEST;
const WEIGHTS = REDUCED_WEIGHTS;
const IMAGE = new URL('./fixtures/transform/small_61x90.png', import.meta.url).pathname;

/** Dawn, but only ever a compatibility-level device with the default limits and no features. */
function compatibilityGpu(): GPU {
  const dawn = nodeGpu();
  return {
    async requestAdapter(options?: GPURequestAdapterOptions) {
      const adapter = await dawn.requestAdapter({ ...options, featureLevel: 'compatibility' });
      if (!adapter) return null;
      return new Proxy(adapter, {
        get(target, key) {
          if (key === 'requestDevice') return (desc?: GPUDeviceDescriptor) => target.requestDevice({ ...desc, requiredLimits: {}, requiredFeatures: [] });
          // As a browser's compatibility adapter on OpenGL ES: no optional features offered.
          if (key === 'features') return new Set<string>();
          const v = Reflect.get(target, key, target);
          return typeof v === 'function' ? v.bind(target) : v;
        },
      });
    },
    getPreferredCanvasFormat: () => 'rgba8unorm',
    wgslLanguageFeatures: dawn.wgslLanguageFeatures,
  } as GPU;
}

/** A reduced network on the compatibility device, inside a validation scope, against the core device: its share of the range. */
async function compatVsCore(fixture: ReducedFixture): Promise<number> {
  const size = fixture.manifest.size;
  const model = await loadMidasBrowser({ weights: readFileSync(fixture.weights), gpu: compatibilityGpu(), config: fixture.config, size });
  try {
    expect(model.featureLevel).toBe('compatibility');
    expect(model.runtime.features).toEqual({ f16: false, timestamps: false, subgroups: false });
    const rt = model.runtime;
    rt.device.pushErrorScope('validation');
    const compat = await model.predict({ ...decodeImage(IMAGE), channels: 3 });
    const error = await rt.device.popErrorScope();
    expect(error?.message ?? null).toBeNull();
    expect(compat.depth.every(Number.isFinite)).toBe(true);

    const core = await loadMidas({ weights: fixture.weights, config: fixture.config, size });
    const reference = await core.predict(IMAGE);
    core.dispose();
    const { min, max } = finiteRange(reference.depth);
    const rel = maxAbsDiff(compat.depth, reference.depth) / (max - min);
    console.log(`${fixture.name}: compatibility vs core device: ${rel.toExponential(3)} of the range`);
    return rel;
  } finally {
    model.dispose();
  }
}

describe('compatibility mode', () => {
  it('the whole pipeline runs on a compatibility device with default limits, with no validation error, as on core', async () => {
    const model = await loadMidasBrowser({ weights: readFileSync(WEIGHTS), gpu: compatibilityGpu(), config: REDUCED, size: manifest.size });
    try {
      const rt = model.runtime;
      expect(model.featureLevel).toBe('compatibility');
      expect(rt.features).toEqual({ f16: false, timestamps: false, subgroups: false });
      expect(rt.limits.maxComputeInvocationsPerWorkgroup).toBe(128);
      expect(rt.limits.maxStorageBuffersPerShaderStage).toBe(8);
      expect(rt.limits.maxStorageBufferBindingSize).toBe(128 * 2 ** 20);

      // The scope does see compatibility's rules: a 256-thread workgroup is refused there.
      rt.device.pushErrorScope('validation');
      rt.pipeline('@compute @workgroup_size(256) fn main() {}');
      expect((await rt.device.popErrorScope())?.message).toMatch(/workgroup_size\(256, 1, 1\) that exceeds/);

      const image = decodeImage(IMAGE);
      rt.device.pushErrorScope('validation');
      const compat = await model.predict({ ...image, channels: 3 });
      const error = await rt.device.popErrorScope();
      expect(error?.message ?? null).toBeNull();

      const core = await loadMidas({ weights: WEIGHTS, config: REDUCED, size: manifest.size });
      const reference = await core.predict(IMAGE);
      core.dispose();
      const { min, max } = finiteRange(reference.depth);
      const rel = maxAbsDiff(compat.depth, reference.depth) / (max - min);
      console.log(`compatibility vs core device: ${rel.toExponential(3)} of the range`);
      // The core device has subgroups and runs the shared-weight kernels, which
      // sum in another order than the portable ones the compat device runs: 1.2e-6 seen.
      expect(rel).toBeLessThanOrEqual(1e-5);
    } finally {
      model.dispose();
    }
  });

  it('the reduced small network (depthwise, ReLU6, SAME padding) runs on a compatibility device with no validation error, as on core', async () => {
    // The core device has subgroups and runs the shared-weight kernels, which sum in another order.
    expect(await compatVsCore(REDUCED_SMALL)).toBeLessThanOrEqual(1e-5);
  });

  it("a model name of the other architecture than the file's is refused before any device is opened", async () => {
    // No config: the architecture is read from the keys, which the reduced network shares with the real one.
    let asked = false;
    const gpu = { requestAdapter: async () => ((asked = true), null) } as unknown as GPU;
    await expect(loadMidasBrowser({ weights: readFileSync(REDUCED_SMALL.weights), gpu, model: 'v2' })).rejects.toThrow(
      /<weights> holds a MiDaS v2\.1 small \(EfficientNet-Lite3\) checkpoint, but model 'v2' is MiDaS v2 \/ v2\.1 large \(ResNeXt-101\) \(use model 'small'/,
    );
    await expect(loadMidasBrowser({ weights: readFileSync(REDUCED_WEIGHTS), gpu, model: 'small' })).rejects.toThrow(
      /holds a MiDaS v2 \/ v2\.1 large \(ResNeXt-101\) checkpoint, but model 'small' is MiDaS v2\.1 small.*\(use model 'v2'/,
    );
    expect(asked).toBe(false);
  });

  it("precision 'f16' without shader-f16 is refused by name", async () => {
    await expect(
      loadMidasBrowser({ weights: readFileSync(WEIGHTS), gpu: compatibilityGpu(), config: REDUCED, size: 128, precision: 'f16' }),
    ).rejects.toThrow(/precision 'f16' needs the adapter's shader-f16 feature.*compatibility/);
  });

  it('a PyTorch checkpoint given to the browser loader says how to convert it', async () => {
    const pt = readFileSync(new URL('./fixtures/weights/basic_zip.pt', import.meta.url));
    await expect(loadMidasBrowser({ weights: pt, gpu: compatibilityGpu(), config: REDUCED })).rejects.toThrow(/PyTorch checkpoint.*midas convert/);
  });
});
