// The agreed layout, checked: the runtime, kernels and network import nothing
// Node-only (they must run on a browser's navigator.gpu), and weights/ holds no weights.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BROWSER_SAFE = ['src/nn', 'src/kernels', 'src/midas'];
const NODE_ONLY = /from\s+['"](node:[^'"]+|fs|path|os|url|zlib|crypto|child_process|stream|http|https|webgpu|pngjs|jpeg-js)['"]|\bprocess\.|\brequire\(|\bBuffer\b/;

function files(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

describe('layout', () => {
  for (const dir of BROWSER_SAFE) {
    it(`${dir} imports no Node built-ins or Node-only packages`, () => {
      const offenders = files(dir).flatMap((f) =>
        readFileSync(path.join(ROOT, f), 'utf8')
          .split('\n')
          .map((line, i) => ({ f, i, line }))
          .filter(({ line }) => !line.trim().startsWith('//') && !line.trim().startsWith('*') && NODE_ONLY.test(line))
          .map(({ f, i, line }) => `${f}:${i + 1}: ${line.trim()}`),
      );
      expect(offenders).toEqual([]);
    });
  }

  it('weights/ holds only its README and .gitignore in git', () => {
    const tracked = execFileSync('git', ['ls-files', 'weights'], { cwd: ROOT, encoding: 'utf8' }).trim().split('\n').sort();
    expect(tracked).toEqual(['weights/.gitignore', 'weights/README.md']);
  });

  // npm 11.16+ lists every install script not reviewed in package.json's allowScripts
  // (and npm 12 skips them): webgpu's and esbuild's must run, so each is declared true;
  // onnxruntime-node's postinstall only downloads what this project does not use (CUDA
  // EP binaries, from a host CI cannot reach; its CPU and WebGPU EPs are in the npm
  // package), so it is declared false: npm skips it silently.
  it("package.json's allowScripts names exactly the locked packages that have install scripts", () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { allowScripts?: Record<string, boolean> };
    const lock = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { hasInstallScript?: boolean }>;
    };
    const scripted = Object.entries(lock.packages)
      .filter(([where, p]) => where && p.hasInstallScript)
      .map(([where]) => where.slice(where.lastIndexOf('node_modules/') + 'node_modules/'.length))
      .sort();
    expect(scripted).toContain('webgpu');
    expect(Object.keys(pkg.allowScripts ?? {}).sort()).toEqual(scripted);
    const denied = Object.entries(pkg.allowScripts ?? {}).filter(([, v]) => v !== true);
    expect(denied).toEqual([['onnxruntime-node', false]]);
  });

  // ONNX Runtime is a peer the e2e bench measures (bench/ort-run.ts), a dev dependency:
  // nothing the package ships may load it.
  it('onnxruntime-node is a dev dependency that src/ and tools/ never import', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies?: object; devDependencies?: object };
    expect(Object.keys(pkg.devDependencies ?? {})).toContain('onnxruntime-node');
    expect(Object.keys(pkg.dependencies ?? {})).not.toContain('onnxruntime-node');
    const offenders = [...files('src'), ...files('tools')].filter((f) => /onnxruntime/.test(readFileSync(path.join(ROOT, f), 'utf8')));
    expect(offenders).toEqual([]);
  });
});
