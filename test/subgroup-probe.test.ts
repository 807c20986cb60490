// The lane probe (src/nn/subgroup_probe.ts): subgroups that behave as the fast kernels
// assume are used; a driver that reports lanes it does not run is caught and the
// kernels take their portable paths. lavapipe's vector width sets its subgroup size
// (LP_NATIVE_VECTOR_WIDTH / 32 lanes), so one machine gives both kinds: at 512 bits
// real 16-lane subgroups, at 1024 bits 32 lanes reported but 16 run. Mesa's shader
// cache does not tell the widths apart, so each width here compiles into a folder of
// its own (never the one the other tests use).
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeSubgroups } from '../src/nn/subgroup_probe.js';
import { separateLavapipeCache } from '../src/node/gpu.js';
import { testRuntime } from './gpu.js';
import { runNode } from './spawn.js';

const BIN = fileURLToPath(new URL('../bin/midas.js', import.meta.url));
let home: string;
beforeAll(() => {
  home = mkdtempSync(path.join(os.tmpdir(), 'midas-probe-'));
});
afterAll(() => rmSync(home, { recursive: true, force: true }));

/**
 * `midas ...` on lavapipe with `bits`-wide vectors, with no shader cache folder given:
 * `separateLavapipeCache` puts it under XDG_CACHE_HOME (a folder of this test's).
 */
function midasAt(bits: number, args: string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env, MIDAS_HOME: home, LP_NATIVE_VECTOR_WIDTH: String(bits), XDG_CACHE_HOME: path.join(home, 'xdg') };
  delete env['MESA_SHADER_CACHE_DIR'];
  return runNode([BIN, ...args], { env, timeout: 600_000 });
}

/** `midas info --json` on lavapipe at `bits`: what the runtime made of its subgroups. */
async function infoAt(bits: number): Promise<{ name: string; subgroups: number[]; subgroupProbe?: string; features: { subgroups: boolean } }> {
  const r = await midasAt(bits, ['info', '--adapter', 'llvmpipe', '--json']);
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout);
}

// A cold Mesa shader cache makes lavapipe compile every variant first.
const SLOW = 600_000;

describe('subgroup lane probe', () => {
  it('a lavapipe vector width set without a cache folder gets a cache folder of its own', () => {
    const home = os.homedir();
    const env: NodeJS.ProcessEnv = { LP_NATIVE_VECTOR_WIDTH: '512' };
    separateLavapipeCache(env);
    expect(env['MESA_SHADER_CACHE_DIR']).toBe(path.join(home, '.cache', 'mesa_shader_cache_lp512'));
    const xdg: NodeJS.ProcessEnv = { LP_NATIVE_VECTOR_WIDTH: '1024', XDG_CACHE_HOME: '/c' };
    separateLavapipeCache(xdg);
    expect(xdg['MESA_SHADER_CACHE_DIR']).toBe(path.join('/c', 'mesa_shader_cache_lp1024'));
    const given: NodeJS.ProcessEnv = { LP_NATIVE_VECTOR_WIDTH: '512', MESA_SHADER_CACHE_DIR: '/mine' };
    separateLavapipeCache(given);
    expect(given['MESA_SHADER_CACHE_DIR']).toBe('/mine');
    const none: NodeJS.ProcessEnv = {};
    separateLavapipeCache(none);
    expect(none['MESA_SHADER_CACHE_DIR']).toBeUndefined();
  });

  it('the test adapter passes it at its own width and fails it at twice that', async () => {
    const rt = await testRuntime();
    expect(rt.features.subgroups).toBe(true);
    expect(rt.subgroupProbe).toBeUndefined();
    const width = rt.subgroupMinSize;
    const maxThreads = Math.min(rt.limits.maxComputeInvocationsPerWorkgroup, rt.limits.maxComputeWorkgroupSizeX);
    expect(await probeSubgroups(rt.device, width, maxThreads)).toBeNull();
    // Planned for twice the lanes the device runs: broadcasts reach past a subgroup.
    expect(await probeSubgroups(rt.device, 2 * width, maxThreads)).toBe(
      `subgroups of ${2 * width} lanes failed the lane probe (${Math.max(16, 4 * width)}-thread workgroups, ${2 * width}-thread workgroups): broadcasts or shuffles do not reach the lanes the driver reports`,
    );
  });

  it('lavapipe at 1024 bits reports 32 lanes and runs 16: refused, and the model kernels still match the CPU', async () => {
    const info = await infoAt(1024);
    expect(info.name).toContain('1024 bits');
    expect(info.features.subgroups).toBe(false);
    expect(info.subgroups).toEqual([0, 0]);
    expect(info.subgroupProbe).toMatch(/^subgroups of 32 lanes failed the lane probe/);
    const check = await midasAt(1024, ['info', '--check', '--adapter', 'llvmpipe', '--size', '64']);
    expect(check.status).toBe(0);
    expect(check.stdout.trim().split('\n').at(-1)).toMatch(/^pass: all \d+ kernel variants .* on llvmpipe \(LLVM [\d.]+, 1024 bits\)/);
  }, SLOW);

  it("lavapipe at 512 bits: 16-lane subgroups pass and are used, compiled into the width's own cache folder; the model's kernels on them match the CPU", async () => {
    const info = await infoAt(512);
    expect(info.features.subgroups).toBe(true);
    expect(info.subgroups).toEqual([16, 16]);
    expect(info.subgroupProbe).toBeUndefined();
    const cache = path.join(home, 'xdg', 'mesa_shader_cache_lp512');
    expect(existsSync(cache) && readdirSync(cache).length > 0).toBe(true);
    const check = await midasAt(512, ['info', '--check', '--adapter', 'llvmpipe', '--size', '64']);
    expect(check.status).toBe(0);
    expect(check.stdout.trim().split('\n').at(-1)).toMatch(/^pass: all \d+ kernel variants .* on llvmpipe \(LLVM [\d.]+, 512 bits\)/);
  }, SLOW);
});
