#!/usr/bin/env node
// The second Vulkan implementation: the GPU test files that cover every kernel
// variant, the reduced networks and one full-size parity, run again with SwiftShader
// (4-lane subgroups, no shader-f16, 256 invocations per workgroup) as the only
// driver. Debian's chromium ships it. MIDAS_TEST_ADAPTER makes test/gpu.ts fail
// if the device it opens is not SwiftShader, so a run that fell back to another
// driver cannot pass unnoticed.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const SWIFTSHADER_FILES = [
  'test/kernels.test.ts',
  'test/depthwise.test.ts',
  'test/modules.test.ts',
  'test/pytorch.test.ts',
  'test/midas.test.ts',
  'test/selfcheck.test.ts',
  'test/e2e-fullsize.test.ts',
];

if (!existsSync(ICD)) {
  console.error(`test:swiftshader: SwiftShader's Vulkan driver ${ICD} is missing: apt-get install chromium`);
  process.exit(1);
}
const env = { ...process.env, VK_ICD_FILENAMES: ICD, MIDAS_TEST_ADAPTER: 'SwiftShader', MIDAS_ADAPTER: '' };
delete env.VK_DRIVER_FILES;
delete env.VK_ADD_DRIVER_FILES;
const vitest = fileURLToPath(new URL('../node_modules/vitest/vitest.mjs', import.meta.url));
console.log(`== the GPU tests again on SwiftShader (${SWIFTSHADER_FILES.length} files)`);
const run = spawnSync(process.execPath, [vitest, 'run', ...SWIFTSHADER_FILES, ...process.argv.slice(2)], { env, stdio: 'inherit' });
process.exit(run.status ?? 1);
