// `summary` runs the network on a meta runtime (no GPU, no weights). Its totals are
// MiDaS v2's known figures, and its rows are exactly what a real forward pass runs.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MIDAS_SMALL, MIDAS_V2, type MidasConfig } from '../src/midas/config.js';
import { MidasNet } from '../src/midas/network.js';
import { summarize } from '../src/midas/summary.js';
import { testRuntime } from './gpu.js';
import { REDUCED, REDUCED_SMALL, REDUCED_V2 } from './reduced.js';
import { runNode } from './spawn.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

describe('summary', () => {
  it('MiDaS v2 at 384x384: 105,362,945 parameters, 103.44 GMAC (encoder 48.23, decoder 55.21), as SPEC.md gives', () => {
    const s = summarize(MIDAS_V2, 384, 384);
    expect(s.params).toBe(105_362_945);
    expect(s.params + s.buffers).toBe(105_565_929);
    expect(s.macs).toBe(103_443_333_120);
    const encoder = s.rows.filter((r) => r.key.startsWith('pretrained.')).reduce((a, r) => a + r.macs, 0);
    expect(encoder).toBe(48_231_088_128);
    expect(s.rows[0]).toMatchObject({ key: 'pretrained.layer1.0', output: [1, 192, 192, 64], params: 64 * 3 * 49 + 2 * 64 });
    expect(s.rows.at(-1)).toMatchObject({ key: 'scratch.output_conv.4', output: [1, 384, 384, 1], params: 33 });
    // Every parameter is used once, except refinenet4's first unit (it has one input).
    expect(s.params - s.rows.reduce((a, r) => a + r.params, 0)).toBe(2 * (256 * 256 * 9 + 256));
    expect(s.largestActivationBytes).toBe(384 * 384 * 128 * 4);
    expect(s.peakLiveBytes - s.weightBytes).toBeLessThanOrEqual(2 * s.largestActivationBytes);
  });

  it('MiDaS v2.1 small at 256x256: 21,320,545 parameters, 4.595 GMAC (backbone 1.080, decoder 3.515), as SPEC.md §8 gives; 10.339 GMAC at 384', () => {
    const s = summarize(MIDAS_SMALL, 256, 256);
    expect(s.params).toBe(21_320_545);
    expect(s.params + s.buffers).toBe(21_394_729);
    expect(s.macs / 1e9).toBeCloseTo(4.595, 3);
    const backbone = s.rows.filter((r) => r.key.startsWith('pretrained.')).reduce((a, r) => a + r.macs, 0);
    expect(backbone / 1e9).toBeCloseTo(1.080, 3);
    expect((s.macs - backbone) / 1e9).toBeCloseTo(3.515, 3);
    expect(summarize(MIDAS_SMALL, 384, 384).macs / 1e9).toBeCloseTo(10.339, 3);
    // The stride-2 depthwise convs run on the depthwise kernel with TF SAME padding (one extra row and column after).
    expect(s.rows.find((r) => r.key === 'pretrained.layer2.0.0.conv_dw')).toMatchObject({ output: [1, 32, 32, 192] });
    expect(s.rows.find((r) => r.key === 'pretrained.layer2.0.0.conv_dw')!.op).toMatch(/^depthwise 5x5\/2/);
    expect(s.rows.at(-1)).toMatchObject({ key: 'scratch.output_conv.4', output: [1, 256, 256, 1], params: 33 });
    // refinenet4's first unit never runs (one input), as in v2.
    expect(s.params - s.rows.reduce((a, r) => a + r.params, 0)).toBe(2 * (512 * 512 * 9 + 512));
  });

  it('the CLI says which model it summarizes: --model small at its own 256', async () => {
    const r = await runNode([path.join(ROOT, 'bin/midas.js'), 'summary', '--model', 'small']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('MiDaS v2.1 small (EfficientNet-Lite3; hub "MiDaS_small") at 256x256');
    expect(r.stdout).toMatch(/parameters: 21,320,545 \(21\.3 M\)/);
    expect(r.stdout).toMatch(/compute: +4\.60 GMAC/);
  });

  for (const fx of [REDUCED_V2, REDUCED_SMALL]) it(`${fx.name}: lists exactly the dispatches of a real forward pass, in order, with the real run's output shapes`, async () => {
    const rt = await testRuntime();
    const net = new MidasNet(fx.config);
    const weights = new Map([...net.stateShapes()].map(([k, shape]) => [k, { shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.5) }]));
    net.prepare(rt, weights);
    rt.records = [];
    const x = rt.upload(new Float32Array(96 * 64 * 3), [1, 96, 64, 3]);
    net.forward(x).depth.dispose();
    const real = rt.records;
    rt.records = null;
    x.dispose();
    net.dispose();
    const s = summarize(fx.config, 96, 64, rt);
    expect(s.rows.map((r) => `${r.key}: ${r.op} -> ${r.output.join('x')}`)).toEqual(real.map((r) => `${r.scope}: ${r.kernel} -> ${r.output.join('x')}`));
  });

  it('the CLI prints the table and the totals; --profile times every row on the GPU', async () => {
    const r = await runNode([path.join(ROOT, 'bin/midas.js'), 'summary', '--size', '384']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^1 +pretrained\.layer1\.0 +conv2d_tiled 7x7\/2 g1 3->64 \[relu\] +1x192x192x64 +9,536 +346\.8 M$/m);
    expect(r.stdout).toMatch(/parameters: 105,362,945 \(105\.4 M\)/);
    expect(r.stdout).toMatch(/compute: +103\.44 GMAC/);
    const arch = path.join(mkdtempSync(path.join(os.tmpdir(), 'midas-summary-')), 'arch.json');
    writeFileSync(arch, JSON.stringify(REDUCED));
    const env = { ...process.env, MIDAS_ARCH: arch };
    const p = await runNode([path.join(ROOT, 'bin/midas.js'), 'summary', '--size', '64', '--profile'], { env });
    expect(p.status, p.stderr).toBe(0);
    expect(p.stdout).toMatch(/#\s+key\s+op\s+output\s+params\s+MACs\s+ms\s+share\s+GFLOP\/s/);
    expect(p.stdout).toMatch(/profile: +\d+ ms GPU time/);
    const c = await runNode([path.join(ROOT, 'bin/midas.js'), 'summary', '--size', '64', '--profile', '--no-timestamps'], { env });
    expect(c.status, c.stderr).toBe(0);
    expect(c.stdout).toMatch(/no timestamp-query feature: no per-layer times; per stage on the CPU clock: pretrained\.layer1 \d+ ms, .*scratch\.output_conv \d+ ms; \d+ ms in all/);
  });
});
