import { describe, expect, it } from 'vitest';
import { NoAdapterError, openDevice } from '../src/nn/device.js';
import { testRuntime } from './gpu.js';

describe('device bootstrap', () => {
  it('a GPU with no adapter gives an error that says what to install', async () => {
    const noAdapter = { requestAdapter: async () => null } as unknown as GPU;
    await expect(openDevice(noAdapter)).rejects.toThrow(NoAdapterError);
    await expect(openDevice(noAdapter)).rejects.toThrow(/mesa-vulkan-drivers/);
  });

  it("opens Dawn's adapter with its real limits, not WebGPU's defaults", async () => {
    const rt = await testRuntime();
    // WebGPU's default maxStorageBufferBindingSize is 128 MiB; we ask for the adapter's.
    expect(rt.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 1024 * 1024);
    expect(rt.limits.maxBufferSize).toBeGreaterThanOrEqual(rt.limits.maxStorageBufferBindingSize);
    expect(rt.adapterName.length).toBeGreaterThan(0);
  });
});
