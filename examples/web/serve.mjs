// A tiny static server for the demo, bound to 127.0.0.1 (a secure context for WebGPU
// without TLS). Files only: no listing, no paths outside the mounted folders.
//
//   node examples/web/serve.mjs [--port 8080] [--build] [--weights file.safetensors] [--fixtures]
//
// --build      builds the page first (npm run demo does)
// --weights    also serves that file at /weights/<name> and prints a URL that loads it
// --fixtures   also serves test/fixtures at /fixtures/ and prints URLs that run the
//              tests' reduced networks (v2's and the small model's structure) on a
//              fixture image (no real weights needed)
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { basename, dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(here, '..', '..');

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.safetensors': 'application/octet-stream',
  '.pfm': 'application/octet-stream',
};

/**
 * Serves `root` at / and each `mounts[prefix]` (a folder, or one file) at prefix
 * ('/fixtures/' -> a folder; '/weights/x.safetensors' -> a file). `routes` are
 * fixed in-memory answers: { '/arch.json': { type, body } }.
 * Resolves to { url, port, close() } once listening.
 */
export function startServer({ root, host = '127.0.0.1', port = 0, mounts = {}, routes = {}, log = false } = {}) {
  const table = [['/', resolve(root)], ...Object.entries(mounts).map(([p, dir]) => [p, resolve(dir)])].sort(
    (a, b) => b[0].length - a[0].length, // longest prefix first
  );
  const server = createServer((req, res) => {
    const send = (status, text) => {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
      res.end(text);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n');
    let path;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      return send(400, 'bad path\n');
    }
    if (path.includes('\0')) return send(400, 'bad path\n');
    const route = routes[path];
    if (route) {
      res.writeHead(200, { 'content-type': route.type, 'content-length': Buffer.byteLength(route.body), 'cache-control': 'no-store' });
      return res.end(req.method === 'HEAD' ? undefined : route.body);
    }
    let file = null;
    for (const [prefix, target] of table) {
      if (path === prefix || (prefix.endsWith('/') && path.startsWith(prefix))) {
        const rest = path.slice(prefix.length);
        const candidate = resolve(target, `.${sep}${rest}`);
        if (candidate !== target && !candidate.startsWith(target + sep)) return send(403, 'forbidden\n');
        file = candidate;
        break;
      }
    }
    if (!file) return send(404, 'not found\n');
    let stat;
    try {
      stat = statSync(file);
      if (stat.isDirectory()) {
        file = join(file, 'index.html');
        stat = statSync(file);
      }
    } catch {
      return send(404, 'not found\n');
    }
    if (log) console.log(`${req.method} ${path}`);
    res.writeHead(200, {
      'content-type': TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
      'content-length': stat.size,
      'cache-control': 'no-store',
    });
    if (req.method === 'HEAD') return res.end();
    createReadStream(file).on('error', () => res.destroy()).pipe(res);
  });
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const addr = server.address();
      const url = `http://${host}:${addr.port}`;
      resolvePromise({
        url,
        port: addr.port,
        close: () =>
          new Promise((done) => {
            server.closeAllConnections?.();
            server.close(() => done());
          }),
      });
    });
  });
}

/**
 * A test fixture's reduced network (test/fixtures/midas or test/fixtures/small,
 * manifest.json: the Python generator's config dict) as a MidasConfig.
 */
export function reducedArch(manifestJson) {
  const m = JSON.parse(manifestJson).config;
  if (m.stages) {
    return {
      arch: 'efficientnet_lite3',
      stemChannels: m.stem,
      dsChannels: m.ds,
      stages: m.stages.map(([kernel, stride, expand, out, repeats]) => ({ kernel, stride, expand, out, repeats })),
      features: m.features,
      head: m.head,
      bnEps: m.bn_eps,
    };
  }
  return {
    blocks: m.blocks,
    planes: m.planes,
    stemChannels: m.stem,
    groups: m.groups,
    widthPerGroup: m.width_per_group,
    features: m.features,
    head: m.head,
  };
}

/**
 * The tests' reduced networks: fixture folder, the route serving its MidasConfig, and
 * the model it has the structure of (a config skips reading the model from the keys,
 * so the page is told which one to name).
 */
export const FIXTURE_NETWORKS = [
  { folder: 'midas', route: '/reduced-arch.json', model: 'v2' },
  { folder: 'small', route: '/reduced-small-arch.json', model: 'small' },
];

/** The page's query that runs a reduced network on a fixture image at the fixtures' size. */
export function fixtureQuery({ folder, route, model }, size = 128) {
  return `?arch=${route}&model=${model}&size=${size}&weights=/fixtures/${folder}/reduced.safetensors&image=/fixtures/transform/small_61x90.png`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (name) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const outdir = resolve(opt('--outdir') ?? join(here, 'dist'));
  if (args.includes('--build')) {
    const { buildDemo } = await import('./build.mjs');
    await buildDemo({ outdir });
  }
  try {
    statSync(join(outdir, 'index.html'));
  } catch {
    console.error(`no built page in ${outdir}: run 'npm run demo' (or node examples/web/build.mjs) first`);
    process.exit(1);
  }
  const mounts = {};
  const routes = {};
  const links = [];
  const weights = opt('--weights');
  if (weights) {
    const name = basename(weights);
    mounts[`/weights/${name}`] = weights;
    links.push(`?weights=/weights/${encodeURIComponent(name)}`);
  }
  if (args.includes('--fixtures')) {
    const { readFileSync } = await import('node:fs');
    mounts['/fixtures/'] = join(ROOT, 'test', 'fixtures');
    for (const { folder, route, model } of FIXTURE_NETWORKS) {
      const arch = reducedArch(readFileSync(join(ROOT, 'test', 'fixtures', folder, 'manifest.json'), 'utf8'));
      routes[route] = { type: 'application/json', body: JSON.stringify(arch) };
      links.push(fixtureQuery({ folder, route, model }));
    }
  }
  const port = Number(opt('--port') ?? process.env.PORT ?? 8080);
  let server;
  try {
    server = await startServer({ root: outdir, port, mounts, routes, log: args.includes('--log') });
  } catch (e) {
    console.error(e.code === 'EADDRINUSE' ? `port ${port} is in use: try --port 0 (any free port) or --port 8081` : e.message);
    process.exit(1);
  }
  console.log(`midas-webgpu demo: ${server.url}/`);
  for (const l of links) console.log(`  ${server.url}/${l}`);
  console.log('Chromium without a GPU: --enable-unsafe-webgpu --use-angle=vulkan --ignore-gpu-blocklist --use-webgpu-adapter=opengles');
  console.log('Ctrl-C stops the server.');
}
