import { describe, expect, it } from 'vitest';
import { quietly } from '../src/nn/wait.js';

describe('quietly', () => {
  it('swaps setImmediate for a throttled one while waits are pending, and restores it after the last', async () => {
    const original = globalThis.setImmediate;
    let release1!: () => void;
    let release2!: () => void;
    const seen: boolean[] = [];
    const first = quietly(() => new Promise<void>((r) => { seen.push(globalThis.setImmediate !== original); release1 = r; }));
    const second = quietly(() => new Promise<void>((r) => { seen.push(globalThis.setImmediate !== original); release2 = r; }));
    expect(seen).toEqual([true, true]);
    release1();
    await first;
    expect(globalThis.setImmediate).not.toBe(original); // the second wait is still pending
    release2();
    await second;
    expect(globalThis.setImmediate).toBe(original);
  });

  it('still runs setImmediate callbacks meanwhile, with their arguments', async () => {
    const got = await quietly(() => new Promise<string>((resolve) => setImmediate((a: string, b: string) => resolve(a + b), 'x', 'y')));
    expect(got).toBe('xy');
  });

  it('restores setImmediate when the wait fails, and passes the error on', async () => {
    const original = globalThis.setImmediate;
    await expect(quietly(() => Promise.reject(new Error('map failed')))).rejects.toThrow('map failed');
    expect(globalThis.setImmediate).toBe(original);
  });
});
