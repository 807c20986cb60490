// Builds the demo page with esbuild: examples/web/main.ts (which imports the library's
// browser entry, src/browser/index.ts) -> <outdir>/main.js, plus index.html.
// Any import of a Node built-in (fs, node:path, …) anywhere in the graph fails the
// build, naming the importing file.
//
//   node examples/web/build.mjs [--outdir examples/web/dist] [--no-minify]
import { builtinModules } from 'node:module';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(here, '..', '..');
export const DEFAULT_OUTDIR = join(here, 'dist');

/** Browsers with WebGPU (Chrome/Edge 113, Safari 26, Firefox 141); the code is ES2022. */
const TARGET = ['es2022', 'chrome113', 'safari18', 'firefox141'];

const BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/** True for 'fs', 'node:fs', 'fs/promises', 'node:test', … */
export function isNodeBuiltin(specifier) {
  if (specifier.startsWith('node:')) return true;
  return BUILTINS.has(specifier) || BUILTINS.has(specifier.split('/')[0]);
}

/** An esbuild plugin that turns every import of a Node built-in into a build error. */
export function noNodeBuiltins() {
  return {
    name: 'no-node-builtins',
    setup(build) {
      build.onResolve({ filter: /.*/ }, (args) => {
        if (args.kind === 'entry-point' || !isNodeBuiltin(args.path)) return undefined;
        const from = args.importer ? relative(ROOT, args.importer) : '?';
        return { errors: [{ text: `Node built-in '${args.path}' imported by ${from}: the browser bundle must not use Node built-ins` }] };
      });
    },
  };
}

/**
 * Bundles `entry` for browsers (ESM). `write: false` keeps the output in memory.
 * Returns esbuild's result, with its metafile.
 */
export function bundle({ entry, outfile, write = true, minify = true }) {
  return esbuild.build({
    entryPoints: [entry],
    outfile,
    write,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: TARGET,
    minify,
    sourcemap: true,
    metafile: true,
    logLevel: 'silent',
    legalComments: 'none',
    plugins: [noNodeBuiltins()],
  });
}

/** Builds the demo into `outdir` (index.html, main.js, main.js.map). */
export async function buildDemo({ outdir = DEFAULT_OUTDIR, minify = true } = {}) {
  mkdirSync(outdir, { recursive: true });
  const result = await bundle({ entry: join(here, 'main.ts'), outfile: join(outdir, 'main.js'), minify });
  copyFileSync(join(here, 'index.html'), join(outdir, 'index.html'));
  return { outdir, result };
}

/** The library's browser entry as one ESM file, in memory (for the no-built-ins check). */
export function bundleLibrary() {
  return bundle({ entry: join(ROOT, 'src', 'browser', 'index.ts'), outfile: join(ROOT, 'dist', 'browser', 'midas-webgpu.js'), write: false });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const at = args.indexOf('--outdir');
  const outdir = at >= 0 ? resolve(args[at + 1]) : DEFAULT_OUTDIR;
  const t0 = performance.now();
  try {
    const { result } = await buildDemo({ outdir, minify: !args.includes('--no-minify') });
    const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
    console.log(`built ${relative(process.cwd(), outdir) || '.'}/ (${(bytes / 1024).toFixed(0)} KiB) in ${(performance.now() - t0).toFixed(0)} ms`);
  } catch (e) {
    for (const err of e.errors ?? [e]) {
      const loc = err.location ? `${err.location.file}:${err.location.line}: ` : '';
      console.error(`build failed: ${loc}${err.text ?? err.message}`);
    }
    process.exit(1);
  }
}
