// The docs name files, functions, checkpoint keys and shapes: each is checked
// against the code here, so a rename or a new kernel that makes them wrong fails
// a test instead of misleading a reader.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MIDAS_SMALL, MIDAS_V2 } from '../src/midas/config.js';
import { MidasNet, STAGES } from '../src/midas/network.js';
import { summarize } from '../src/midas/summary.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DOCS = ['docs/ARCHITECTURE.md', 'README.md'];
const read = (rel: string) => readFileSync(path.join(ROOT, rel), 'utf8');

/** Relative link targets `[text](target)`, resolved from the document's folder (anchors dropped). */
function links(doc: string): string[] {
  return [...read(doc).matchAll(/\]\(([^)\s]+)\)/g)]
    .map((m) => m[1]!)
    .filter((t) => !/^(https?:|mailto:|#)/.test(t))
    .map((t) => path.relative(ROOT, path.resolve(ROOT, path.dirname(doc), t.replace(/#.*$/, ''))));
}

/** Repository paths written in the text (code, tables, diagrams): words starting with a top-level folder. */
function namedPaths(doc: string): string[] {
  const words = read(doc).match(/(?<![\w/.~$-])(?:\.ci|src|test|tools|bench|bin|docs)\/[\w./-]*\w/g) ?? [];
  return [...new Set(words)];
}

/** `{a,b}` alternatives expanded (nested braces not needed). */
function expand(pattern: string): string[] {
  const m = /\{([^{}]*)\}/.exec(pattern);
  if (!m) return [pattern];
  return m[1]!.split(',').flatMap((alt) => expand(pattern.slice(0, m.index) + alt + pattern.slice(m.index + m[0].length)));
}

/** Checkpoint keys and key patterns the text names: `pretrained…` / `scratch…` with at least one `.segment`. */
function namedKeys(doc: string): string[] {
  const found = read(doc).match(/(?<![\w.])(?:pretrained|scratch)(?:\.(?:[\w*]|\{[^}\s]*\})+)+/g) ?? [];
  return [...new Set(found)];
}

/** Whether `src` declares `name`: a function, class, const, type or interface, or a method or getter. */
function declares(src: string, name: string): boolean {
  const top = new RegExp(`(?:^|\\s)(?:export\\s+)?(?:(?:async|abstract|default|declare)\\s+)*(?:function\\*?|class|const|let|interface|type|enum)\\s+${name}\\b`, 'm');
  const member = new RegExp(`^\\s*(?:(?:public|private|protected|static|async|override|readonly|get|set)\\s+)*${name}\\s*[(<]`, 'm');
  return top.test(src) || member.test(src);
}

/** `[file](link)` followed by `name`s: in a table's next cell, or right after the link in prose. */
function namedSymbols(doc: string): { file: string; name: string }[] {
  const text = read(doc);
  const out: { file: string; name: string }[] = [];
  const resolve = (t: string) => path.relative(ROOT, path.resolve(ROOT, path.dirname(doc), t));
  const idents = (s: string) => [...s.matchAll(/`([A-Za-z_]\w*)`/g)].map((m) => m[1]!);
  for (const line of text.split('\n')) {
    if (!line.startsWith('|')) continue;
    const cells = line.split('|').map((c) => c.trim());
    cells.forEach((cell, i) => {
      const link = /^\[[^\]]*\]\(([^)]+\.ts)\)$/.exec(cell);
      if (link && cells[i + 1] !== undefined) for (const name of idents(cells[i + 1]!)) out.push({ file: resolve(link[1]!), name });
    });
  }
  for (const m of text.matchAll(/\]\(([^)\s]+\.ts)\)(?:,\s*|\s*\()((?:`[A-Za-z_]\w*`(?:,\s*|\s+and\s+)?)+)/g)) {
    for (const name of idents(m[2]!)) out.push({ file: resolve(m[1]!), name });
  }
  return out;
}

describe('docs name only what exists', () => {
  // Module keys (parameterless ones too: ReLU, maxpool, interpolate) and parameter keys,
  // of both architectures.
  const keys = new Set<string>();
  for (const net of [new MidasNet(MIDAS_V2), new MidasNet(MIDAS_SMALL)]) {
    for (const k of net.stateShapes().keys()) keys.add(k);
    for (const m of net.modules()) if (m.key) keys.add(m.key);
  }

  for (const doc of DOCS) {
    it(`${doc}: every relative link points at a file or folder of the repository`, () => {
      const missing = links(doc).filter((t) => !existsSync(path.join(ROOT, t)));
      expect(missing).toEqual([]);
    });

    it(`${doc}: every repository path it names exists`, () => {
      const named = namedPaths(doc);
      if (doc.startsWith('docs/')) expect(named.length).toBeGreaterThan(20);
      expect(named.filter((p) => !existsSync(path.join(ROOT, p)))).toEqual([]);
    });

    it(`${doc}: every checkpoint key pattern it names matches MidasNet's keys`, () => {
      const named = namedKeys(doc);
      if (doc.startsWith('docs/')) expect(named.length).toBeGreaterThan(20);
      const bad = named.filter((pattern) =>
        expand(pattern).some((k) => {
          const re = new RegExp(`^${k.replace(/\./g, '\\.').replace(/\*/g, '[^.]+')}$`);
          return ![...keys].some((key) => re.test(key));
        }),
      );
      expect(bad).toEqual([]);
    });

    it(`${doc}: every function or class named next to a file is declared in that file`, () => {
      const named = namedSymbols(doc);
      if (doc.startsWith('docs/')) expect(named.length).toBeGreaterThan(30);
      const bad = named.filter(({ file, name }) => !existsSync(path.join(ROOT, file)) || !declares(read(file), name));
      expect(bad).toEqual([]);
    });
  }

  it('docs/ARCHITECTURE.md: the stage table gives each stage its module key, shape and stride at 384x384', () => {
    const rows = summarize(MIDAS_V2, 384, 384).rows;
    const table = [...read('docs/ARCHITECTURE.md').matchAll(/^\| `(\w+)` \| `([\w.]+)` \| \[([\d, ]+)\] \| (\d+) \|$/gm)];
    expect(table.map((m) => m[1])).toEqual([...STAGES]);
    for (const [, stage, key, shape, stride] of table) {
      // The output of a module is that of the last kernel run under its key.
      const last = rows.filter((r) => r.key === key || r.key.startsWith(`${key}.`)).at(-1);
      expect(last, `${stage}: ${key} runs no kernel`).toBeDefined();
      expect(shape!.split(', ').map(Number), stage).toEqual([...last!.output]);
      expect(Number(stride), stage).toBe(384 / last!.output[1]!);
    }
    // The stage names are network.ts's and the keys the ones forward() keeps.
    const stageKeys = Object.fromEntries(table.map((m) => [m[1], m[2]]));
    expect(stageKeys['layer3']).toBe('pretrained.layer3');
    expect(stageKeys['path1']).toBe('scratch.refinenet1');
  });

  it('docs/ARCHITECTURE.md: the number of kernel dispatches of a forward pass is the summary\'s', () => {
    const m = /(\d+) kernel dispatches\s+for\s+MiDaS v2 at 384×384/.exec(read('docs/ARCHITECTURE.md'));
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBe(summarize(MIDAS_V2, 384, 384).rows.length);
  });

  it('the checks themselves catch a wrong path, key and name', () => {
    expect(expand('scratch.refinenet{1,2}.resConfUnit{1,2}')).toHaveLength(4);
    expect(keys.has('pretrained.layer3.22.conv2.weight')).toBe(true);
    expect(keys.has('pretrained.layer3.23.conv2.weight')).toBe(false);
    expect(keys.has('pretrained.layer3.1.4.conv_pwl.weight')).toBe(true);
    expect(keys.has('pretrained.layer3.1.5.conv_pwl.weight')).toBe(false);
    expect(declares(read('src/midas/model.ts'), 'resizeBack')).toBe(true);
    expect(declares(read('src/midas/model.ts'), 'resizeForth')).toBe(false);
  });
});
