import { describe, expect, it } from 'vitest';
import { relu } from '../src/kernels/elementwise.js';
import { testRuntime } from './gpu.js';
import { random } from './reference.js';

describe('tensor runtime', () => {
  it('round-trips data through upload and read', async () => {
    const rt = await testRuntime();
    const x = random(1001, 1);
    const t = rt.upload(x, [7, 11, 13]);
    expect(await t.read()).toEqual(x);
    t.dispose();
  });

  it('reuses pooled buffers: a repeated pass allocates nothing new', async () => {
    const rt = await testRuntime();
    const pass = async () => {
      const x = rt.upload(random(4096, 2), [1, 8, 8, 64]);
      const y = relu(rt, x);
      x.dispose();
      const z = relu(rt, y);
      y.dispose();
      await z.read();
      z.dispose();
    };
    await pass();
    const before = rt.stats();
    for (let i = 0; i < 5; i++) await pass();
    const after = rt.stats();
    expect(after.allocatedBuffers).toBe(before.allocatedBuffers);
    expect(after.liveTensors).toBe(before.liveTensors);
  });

  it('reuses bind groups: a repeated pass creates none, and trim() drops those of destroyed buffers', async () => {
    const rt = await testRuntime();
    const input = random(4096, 2);
    const pass = async () => {
      const x = rt.upload(input, [1, 8, 8, 64]);
      const y = relu(rt, x);
      x.dispose();
      const z = relu(rt, y);
      y.dispose();
      const out = await z.read();
      z.dispose();
      return out;
    };
    const first = await pass();
    await pass();
    const before = rt.stats();
    for (let i = 0; i < 5; i++) expect(await pass()).toEqual(first);
    expect(rt.stats().bindGroupsCreated).toBe(before.bindGroupsCreated);
    expect(before.bindGroupsCached).toBeGreaterThan(0);
    rt.trim();
    expect(rt.stats().bindGroupsCached).toBe(0);
    // New buffers, new groups, same answer.
    expect(await pass()).toEqual(first);
    expect(rt.stats().bindGroupsCreated).toBeGreaterThan(before.bindGroupsCreated);
  });

  it('an upload while work is pending never overwrites a buffer that work still reads', async () => {
    const rt = await testRuntime();
    const a = rt.upload(Float32Array.from([1, -2, 3, -4]), [4]);
    const y = relu(rt, a); // recorded, not yet submitted
    a.dispose(); // its buffer goes back to the pool...
    const b = rt.upload(Float32Array.from([-9, -9, -9, -9]), [4]); // ...and is reused here
    expect(await y.read()).toEqual(Float32Array.from([1, 0, 3, 0]));
    expect(await b.read()).toEqual(Float32Array.from([-9, -9, -9, -9]));
    y.dispose();
    b.dispose();
  });

  it('batches many dispatches into one submit', async () => {
    const rt = await testRuntime();
    await rt.sync();
    const s0 = rt.stats();
    let t = rt.upload(random(256, 3), [256]);
    for (let i = 0; i < 10; i++) {
      const next = relu(rt, t);
      t.dispose();
      t = next;
    }
    await t.read();
    t.dispose();
    const s1 = rt.stats();
    expect(s1.dispatches - s0.dispatches).toBe(10);
    expect(s1.submits - s0.submits).toBe(1);
  });

  it('using a disposed tensor is an error, not garbage', async () => {
    const rt = await testRuntime();
    const t = rt.upload(new Float32Array(4), [4]);
    t.dispose();
    expect(() => relu(rt, t)).toThrow(/used after dispose/);
  });

  it('caches pipelines by shader and constants', async () => {
    const rt = await testRuntime();
    const code = '@compute @workgroup_size(1) fn main() {}';
    expect(rt.pipeline(code)).toBe(rt.pipeline(code));
  });

  it('times passes with timestamp queries when the adapter has them', async () => {
    const rt = await testRuntime();
    if (!rt.features.timestamps) {
      expect(rt.startProfile()).toBe(false);
      return;
    }
    expect(rt.startProfile()).toBe(true);
    const x = rt.upload(random(1 << 16, 4), [1 << 16]);
    const y = relu(rt, x);
    const timings = await rt.stopProfile();
    expect(timings.map((t) => t.label)).toEqual([`relu [${1 << 16}]`]);
    expect(timings[0]!.ms).toBeGreaterThanOrEqual(0);
    x.dispose();
    y.dispose();
  });
});
