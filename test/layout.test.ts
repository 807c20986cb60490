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
});
