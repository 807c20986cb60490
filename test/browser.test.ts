// The library in a real browser page: the demo (examples/web) built with esbuild,
// served on 127.0.0.1, driven in Debian's headless Chromium by playwright-core. The
// page runs the tests' reduced networks (MiDaS v2's structure, and v2.1 small's:
// EfficientNet-Lite3 with depthwise convs, ReLU6 and SAME padding) on a fixture PNG
// through navigator.gpu; the depth must equal the Node run on the same files within
// 1e-5 of the range.
//
// Chromium gets WebGPU on this GPU-less machine only through its OpenGL ES backend on
// lavapipe, at compatibility level (SPEC.md §7), so this is also the proof that every
// kernel runs under compatibility mode. No Chromium is a failure, not a skip.
//
// The page's camera runs on Chromium's fake camera playing a clip ffmpeg makes here
// (`--use-file-for-fake-video-capture`); its frames reach the page through YUV, so the
// page's depth is checked against Node's on the pixels the page reports.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { colorize, finiteRange } from '../src/midas/colormap.js';
import { decodeImage } from '../src/node/image.js';
import { loadMidas } from '../src/node/load.js';
// @ts-expect-error plain ESM helpers without type declarations
import { buildDemo, bundle, bundleLibrary, isNodeBuiltin, ROOT } from '../examples/web/build.mjs';
// @ts-expect-error plain ESM helpers without type declarations
import { FIXTURE_NETWORKS, fixtureQuery, startServer } from '../examples/web/serve.mjs';
import { REDUCED_SMALL, REDUCED_V2, type ReducedFixture } from './reduced.js';
import { run as runChild } from './spawn.js';

const CHROMIUM = process.env['MIDAS_CHROMIUM'] ?? '/usr/bin/chromium';
/** SPEC.md §7 (WebGPU on lavapipe through ANGLE's GL ES) plus the headless ones of the machine notes. */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // Not --disable-gpu: with it the compatibility adapter is SwiftShader too.
  '--enable-unsafe-webgpu',
  '--use-angle=vulkan',
  '--ignore-gpu-blocklist',
  '--use-webgpu-adapter=opengles',
];

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const SIZE = REDUCED_V2.manifest.size; // 128, both networks
const WEIGHTS = REDUCED_V2.weights;
const IMAGE = join(FIXTURES, 'transform', 'small_61x90.png'); // lossless: both sides see the same pixels
const ARTIFACTS = join(ROOT, 'test-artifacts', 'browser');
/** The fake camera's clip: a moving test pattern, uncompressed (y4m), looped by Chromium. */
const CLIP = { width: 128, height: 96, frames: 8, rate: 30 };

/** The served reduced networks: the fixture, and the page's query that runs it (serve.mjs's --fixtures links). */
const NETWORKS: { fixture: ReducedFixture; model: string; route: string; query: string }[] = [REDUCED_V2, REDUCED_SMALL].map((fixture) => {
  const folder = fixture.dir.pathname.replace(/\/$/, '').split('/').pop();
  const served = (FIXTURE_NETWORKS as { folder: string; route: string; model: string }[]).find((n) => n.folder === folder)!;
  return { fixture, model: served.model, route: served.route, query: fixtureQuery(served, fixture.manifest.size) as string };
});

/** The page's state (examples/web/main.ts's DemoState), as far as these tests read it. */
declare global {
  interface Window {
    midasDemo: Omit<PageRun, 'width' | 'height' | 'depth' | 'rgb'> & {
      rgb: Uint8Array | null;
      result: { width: number; height: number; depth: Float32Array } | null;
      camera: {
        running: boolean;
        frames: number;
        dropped: number;
        fps: number;
        rgb: Uint8Array | null;
        result: { width: number; height: number; depth: Float32Array } | null;
        frameMs: number | null;
      };
    };
  }
}

interface PageRun {
  status: string;
  error: string | null;
  runs: number;
  model: string | null;
  size: number | null;
  width: number;
  height: number;
  depth: number[];
  rgb: number[];
  adapter: { featureLevel: string; name: string; isFallbackAdapter?: boolean; features: string[]; limits: Record<string, number> } | null;
  timings: { weightsMs?: number; predictMs?: number };
}

async function waitForRun(page: Page, runs: number): Promise<PageRun> {
  await page.waitForFunction(
    (n) => window.midasDemo?.status === 'error' || (window.midasDemo?.status === 'done' && window.midasDemo.runs >= n),
    runs,
    // A cold shader cache compiles every pipeline on first use: with an empty Mesa cache the
    // reduced small network's first page run took 209 s on a 2-core CPU (ANGLE on lavapipe).
    { timeout: 540_000, polling: 100 },
  );
  return page.evaluate(() => {
    const s = window.midasDemo;
    return {
      status: s.status,
      error: s.error,
      runs: s.runs,
      model: s.model,
      size: s.size,
      width: s.result?.width ?? 0,
      height: s.result?.height ?? 0,
      depth: s.result ? Array.from(s.result.depth) : [],
      rgb: s.rgb ? Array.from(s.rgb) : [],
      adapter: s.adapter,
      timings: s.timings,
    };
  });
}

/** Distinct colours and the largest channel spread of a PNG (a blank one has 1 and 0). */
function pngVariety(bytes: Buffer): { colours: number; spread: number; width: number; height: number } {
  const png = PNG.sync.read(bytes);
  const seen = new Set<number>();
  let min = 255;
  let max = 0;
  for (let i = 0; i < png.data.length; i += 4) {
    const [r, g, b] = [png.data[i]!, png.data[i + 1]!, png.data[i + 2]!];
    seen.add((r << 16) | (g << 8) | b);
    min = Math.min(min, r, g, b);
    max = Math.max(max, r, g, b);
  }
  return { colours: seen.size, spread: max - min, width: png.width, height: png.height };
}

/**
 * The page's depth against the Node entry's on the same input (default: the fixture
 * image, whose decoded pixels must equal the page's): max |diff| and its share of the range.
 */
async function compareWithNode(
  run: PageRun,
  net: (typeof NETWORKS)[number],
  input: string | { data: Uint8Array; width: number; height: number; channels: 3 } = IMAGE,
): Promise<{ diff: number; range: number; rel: number; node: Float32Array }> {
  const t0 = performance.now();
  const model = await loadMidas({ weights: net.fixture.weights, config: net.fixture.config, size: net.fixture.manifest.size });
  const node = await model.predict(input);
  model.dispose();
  console.log(`node (${net.fixture.name}): load + predict ${(performance.now() - t0).toFixed(0)} ms`);

  expect([run.width, run.height]).toEqual([node.width, node.height]);
  if (typeof input === 'string') {
    // The browser's decoder (createImageBitmap + canvas) gave the very pixels pngjs did.
    expect(Buffer.from(Uint8Array.from(run.rgb)).equals(Buffer.from(decodeImage(input).data))).toBe(true);
  }
  const browserDepth = Float32Array.from(run.depth);
  expect(browserDepth.every(Number.isFinite)).toBe(true);
  const { min, max } = finiteRange(node.depth);
  let diff = 0;
  for (let i = 0; i < browserDepth.length; i++) diff = Math.max(diff, Math.abs(browserDepth[i]! - node.depth[i]!));
  const rel = diff / (max - min);
  console.log(
    `browser vs node (${net.fixture.name}): max |diff| ${diff.toExponential(3)} over a range of ${(max - min).toFixed(4)} (${rel.toExponential(3)} of it)`,
  );
  return { diff, range: max - min, rel, node: node.depth };
}

/** Pixels of the page's depth canvas that show `depth` through inferno (within 1 per channel), as a share. */
async function depthPanelMatch(page: Page, depth: Float32Array): Promise<number> {
  const shown = await page.evaluate(() => {
    const c = document.getElementById('depth') as HTMLCanvasElement;
    return Array.from(c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data);
  });
  const expected = colorize(depth, 'inferno');
  let same = 0;
  for (let i = 0; i < depth.length; i++) {
    if ([0, 1, 2].every((c) => Math.abs(shown[4 * i + c]! - expected[3 * i + c]!) <= 1)) same++;
  }
  return same / depth.length;
}

/**
 * The fake camera's clip: ffmpeg's moving test pattern as y4m (raw 4:2:0, the format
 * Chromium's file capture plays), and the same frames decoded to RGB by ffmpeg.
 */
async function makeClip(dir: string): Promise<{ y4m: string; rgb: Buffer }> {
  const y4m = join(dir, 'camera.y4m');
  const raw = join(dir, 'camera.rgb');
  const { width, height, frames, rate } = CLIP;
  const ffmpeg = async (args: string[]) => {
    const r = await runChild('ffmpeg', ['-nostdin', '-v', 'error', ...args], { timeout: 60_000 });
    if (r.error || r.status !== 0) throw new Error(`ffmpeg ${args.join(' ')}: ${r.error?.message ?? r.stderr.trim()} (the camera test needs Debian's ffmpeg)`);
  };
  await ffmpeg(['-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=${rate}`, '-frames:v', String(frames), '-pix_fmt', 'yuv420p', '-y', y4m]);
  // Chromium converts the camera's frames with the BT.709 matrix and bilinear chroma: the same here.
  await ffmpeg(['-i', y4m, '-vf', 'scale=in_color_matrix=bt709:flags=bilinear+accurate_rnd+full_chroma_int', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-y', raw]);
  const rgb = readFileSync(raw);
  expect(rgb.length).toBe(width * height * 3 * frames);
  return { y4m, rgb };
}

/** Mean |difference| per channel between RGB frames `a` and the `index`-th frame of `clip`, and the share within 2. */
function frameDiff(a: Uint8Array, clip: Buffer, index: number): { mean: number; within2: number } {
  const off = index * a.length;
  let sum = 0;
  let near = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - clip[off + i]!);
    sum += d;
    if (d <= 2) near++;
  }
  return { mean: sum / a.length, within2: near / a.length };
}

describe('the browser bundle', () => {
  it('contains no Node built-ins: the library entry and the demo build, with a check that does catch one', async () => {
    const lib = await bundleLibrary();
    const inputs = Object.keys(lib.metafile.inputs);
    expect(inputs).toContain('src/browser/index.ts');
    // Nothing from the Node side of the package, nor a built-in esbuild left external.
    expect(inputs.filter((p) => /^src\/(node|cli)\//.test(p) || p.startsWith('tools/'))).toEqual([]);
    const imports = Object.values(lib.metafile.inputs).flatMap((i: any) => i.imports.map((x: any) => x.path as string));
    expect(imports.filter(isNodeBuiltin)).toEqual([]);
    const code = lib.outputFiles.find((f: any) => f.path.endsWith('.js'))!.text as string;
    expect(code).not.toMatch(/\brequire\(|from\s*["']node:|import\(["']node:/);

    // The guard itself: an entry that reaches a built-in through the Node entry fails to build.
    const dir = mkdtempSync(join(tmpdir(), 'midas-builtin-'));
    try {
      const entry = join(dir, 'entry.ts');
      writeFileSync(entry, `import { loadMidas } from ${JSON.stringify(join(ROOT, 'src', 'node', 'load.ts'))};\nconsole.log(loadMidas);\n`);
      const failure = await bundle({ entry, outfile: join(dir, 'out.js'), write: false }).then(
        () => null,
        (e: { errors?: { text: string }[] }) => e,
      );
      const texts = (failure?.errors ?? []).map((e: { text: string }) => e.text);
      expect(texts).toContainEqual(expect.stringMatching(/^Node built-in 'node:fs' imported by src\/node\//));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('package.json sends bundlers to the browser entry', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    const dot = pkg.exports['.'];
    expect(Object.keys(dot)[0]).toBe('browser'); // first: a bundler that sets both 'browser' and 'node' gets it
    expect(dot.browser.import).toBe('./dist/src/browser/index.js');
    expect(dot.browser.types).toBe('./dist/src/browser/index.d.ts');
    expect(pkg.exports['./browser'].import).toBe('./dist/src/browser/index.js');
    expect(existsSync(join(ROOT, 'src', 'browser', 'index.ts'))).toBe(true);
  });
});

describe('the demo page in headless Chromium', () => {
  let browser: Browser | undefined;
  let server: { url: string; close: () => Promise<void> } | undefined;
  let site: string | undefined;
  let page: Page;
  /** The fake camera's clip decoded by ffmpeg to RGB, frame after frame. */
  let clipRgb: Buffer | undefined;

  /** A setup failure fails every test below (a failing beforeAll would only mark them skipped). */
  let setupError: unknown = null;
  const ready = () => {
    if (setupError) throw setupError;
  };

  beforeAll(async () => {
    try {
      await setup();
    } catch (e) {
      setupError = e;
    }
  });

  async function setup(): Promise<void> {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `Chromium not found at ${CHROMIUM}: the browser test needs Debian's Chromium ` +
          '(apt-get install -y chromium; .ci/run installs it). No browser is ever downloaded.',
      );
    }
    site = mkdtempSync(join(tmpdir(), 'midas-web-'));
    const t0 = performance.now();
    await buildDemo({ outdir: site, minify: false });
    const tBuild = performance.now() - t0;
    server = await startServer({
      root: site,
      mounts: { '/fixtures/': FIXTURES },
      routes: Object.fromEntries(NETWORKS.map((n) => [n.route, { type: 'application/json', body: JSON.stringify(n.fixture.config) }])),
    });
    const clip = await makeClip(site);
    clipRgb = clip.rgb;
    const camera = ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${clip.y4m}`];
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS, ...camera], timeout: 30_000 });
    page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    page.on('pageerror', (e) => console.error(`[page] ${e.message}`));
    console.log(`demo built in ${tBuild.toFixed(0)} ms; Chromium ${browser.version()} up at ${(performance.now() - t0).toFixed(0)} ms`);
    mkdirSync(ARTIFACTS, { recursive: true });
  }

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (site) rmSync(site, { recursive: true, force: true });
  });

  it('runs the reduced network from URLs; depth equals the Node run within 1e-5 of the range; screenshot not blank', async () => {
    ready();
    const net = NETWORKS[0]!;
    await page.goto(`${server!.url}/${net.query}`);
    const run = await waitForRun(page, 1);
    expect(run.error).toBeNull();
    expect(run.status).toBe('done');
    expect([run.model, run.size]).toEqual(['v2', SIZE]);

    const a = run.adapter!;
    const limits = ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxStorageBuffersPerShaderStage', 'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupStorageSize', 'maxUniformBufferBindingSize']
      .map((k) => `${k} ${a.limits[k]}`)
      .join(', ');
    console.log(
      `Chromium adapter: '${a.name}', ${a.featureLevel} level, fallback ${a.isFallbackAdapter}, features [${a.features.join(', ')}]; ${limits}`,
    );
    console.log(`page: weights ${run.timings.weightsMs!.toFixed(0)} ms, first predict ${run.timings.predictMs!.toFixed(0)} ms`);
    // Never SwiftShader when the GL ES adapter exists; no f16/subgroups/timestamps there.
    expect(a.isFallbackAdapter).toBe(false);
    expect(['core', 'compatibility']).toContain(a.featureLevel);

    // Node: the same files through the Node entry (pngjs decoding, Dawn on lavapipe).
    const { rel, node } = await compareWithNode(run, net);
    expect(rel).toBeLessThanOrEqual(1e-5);

    // The depth panel shows this map through the colour map.
    expect(await depthPanelMatch(page, node)).toBeGreaterThan(0.99);

    const shot = await page.screenshot({ path: join(ARTIFACTS, 'demo.png'), fullPage: true });
    const depthShot = await page.locator('#depth').screenshot({ path: join(ARTIFACTS, 'depth-panel.png') });
    const whole = pngVariety(shot);
    const panel = pngVariety(depthShot);
    console.log(`screenshot ${whole.width}x${whole.height}: ${whole.colours} colours; depth panel ${panel.colours} colours`);
    expect(whole.colours).toBeGreaterThan(500); // the photo and the depth map, not a blank page
    expect(panel.colours).toBeGreaterThan(50);
    expect(panel.spread).toBeGreaterThan(100);
  });

  it('picked files (File objects) give the same depth bit for bit; downloads are PFM and PNG', async () => {
    ready();
    const before = await page.evaluate(() => window.midasDemo.runs);
    const first = await page.evaluate(() => Array.from(window.midasDemo.result!.depth));
    await page.setInputFiles('#weights-file', WEIGHTS);
    await page.setInputFiles('#image-file', IMAGE);
    const run = await waitForRun(page, before + 2); // weights reload re-predicts, then the picked image
    expect(run.error).toBeNull();
    expect(run.depth).toEqual(first);
    console.log(`page: predict with warm pipelines ${run.timings.predictMs!.toFixed(0)} ms`);

    const [pfm] = await Promise.all([page.waitForEvent('download'), page.click('#dl-pfm')]);
    const pfmBytes = readFileSync((await pfm.path())!);
    expect(pfm.suggestedFilename()).toBe('small_61x90.pfm');
    const header = `Pf\n${run.width} ${run.height}\n-1.000000\n`;
    expect(pfmBytes.subarray(0, header.length).toString('latin1')).toBe(header);
    expect(pfmBytes.length).toBe(header.length + run.width * run.height * 4);
    const bottomLeft = pfmBytes.readFloatLE(header.length); // PFM rows go bottom-up
    expect(bottomLeft).toBe(Math.fround(run.depth[(run.height - 1) * run.width]!));

    const [png] = await Promise.all([page.waitForEvent('download'), page.click('#dl-png16')]);
    const decoded = PNG.sync.read(readFileSync((await png.path())!), { skipRescale: true } as never);
    expect([decoded.width, decoded.height]).toEqual([run.width, run.height]);
  });

  it('runs the reduced small network (depthwise, ReLU6, SAME padding) on the compatibility adapter; depth equals Node within 1e-5 of the range', async () => {
    ready();
    const net = NETWORKS[1]!;
    const p = await browser!.newPage({ viewport: { width: 1100, height: 900 } });
    p.on('pageerror', (e) => console.error(`[page] ${e.message}`));
    try {
      await p.goto(`${server!.url}/${net.query}`);
      const run = await waitForRun(p, 1);
      expect(run.error).toBeNull();
      expect(run.status).toBe('done');
      expect([run.model, run.size]).toEqual(['small', SIZE]);
      // Chromium's OpenGL ES backend: compatibility level, so the portable kernels (no
      // subgroups) in f32 (no shader-f16) are the ones checked here.
      const a = run.adapter!;
      expect(a.isFallbackAdapter).toBe(false);
      expect(a.featureLevel).toBe('compatibility');
      expect(a.features).not.toContain('subgroups');
      expect(a.features).not.toContain('shader-f16');
      console.log(`page (${net.fixture.name}): weights ${run.timings.weightsMs!.toFixed(0)} ms, predict ${run.timings.predictMs!.toFixed(0)} ms`);

      const { rel, node } = await compareWithNode(run, net);
      expect(rel).toBeLessThanOrEqual(1e-5);
      expect(await depthPanelMatch(p, node)).toBeGreaterThan(0.99);

      // The page names what it loaded, and the picker shows the model the URL gave.
      expect(await p.locator('#model').inputValue()).toBe('small');
      const label = await p.locator('#model-label').innerText();
      expect(label).toContain('MiDaS v2.1 small (EfficientNet-Lite3');
      expect(label).toMatch(/reduced test network; input 128x128/);
      const shot = await p.screenshot({ path: join(ARTIFACTS, 'demo-small.png'), fullPage: true });
      const panel = pngVariety(await p.locator('#depth').screenshot({ path: join(ARTIFACTS, 'depth-panel-small.png') }));
      expect(pngVariety(shot).colours).toBeGreaterThan(500);
      expect(panel.colours).toBeGreaterThan(50);
    } finally {
      await p.close();
    }
  }, 600_000);

  it('the camera: a fake camera playing a known clip gets depth on each new frame; a frame equals Node on its pixels within 1e-5 of the range; Stop closes it', async () => {
    ready();
    const net = NETWORKS[1]!; // the small network's structure: the one meant for live video
    const p = await browser!.newPage({ viewport: { width: 1100, height: 900 } });
    p.on('pageerror', (e) => console.error(`[page] ${e.message}`));
    try {
      await p.goto(`${server!.url}/${net.query.replace(/&image=[^&]*/, '')}`);
      await p.waitForFunction(() => ['ready', 'error'].includes(window.midasDemo?.status), undefined, { timeout: 540_000 });
      expect(await p.evaluate(() => window.midasDemo.error)).toBeNull();
      await p.click('#camera-start');
      const FRAMES = 3;
      await p.waitForFunction((n) => window.midasDemo.error !== null || window.midasDemo.camera.frames >= n, FRAMES, { timeout: 540_000, polling: 100 });
      expect(await p.evaluate(() => window.midasDemo.error)).toBeNull();
      await p.locator('.panels').screenshot({ path: join(ARTIFACTS, 'camera.png') });
      await p.click('#camera-stop');

      // Stopped: the stream is closed, and the state holds the last frame the panel shows.
      const cam = await p.evaluate(() => {
        const s = window.midasDemo;
        const v = document.getElementById('camera-video') as HTMLVideoElement;
        return {
          running: s.camera.running,
          srcObject: v.srcObject !== null,
          frames: s.camera.frames,
          dropped: s.camera.dropped,
          fps: s.camera.fps,
          frameMs: s.camera.frameMs,
          width: s.camera.result!.width,
          height: s.camera.result!.height,
          depth: Array.from(s.camera.result!.depth),
          rgb: Array.from(s.camera.rgb!),
          stats: document.getElementById('camera-stats')!.textContent,
          stopDisabled: (document.getElementById('camera-stop') as HTMLButtonElement).disabled,
        };
      });
      console.log(`page camera: ${cam.stats}`);
      expect(cam.running).toBe(false);
      expect(cam.srcObject).toBe(false);
      expect(cam.stopDisabled).toBe(true);
      expect(cam.frames).toBeGreaterThanOrEqual(FRAMES);
      expect(cam.fps).toBeGreaterThan(0);
      expect(cam.stats).toMatch(new RegExp(`^${cam.frames} frames, [0-9.]+ frames/s, ${cam.dropped} dropped; ${CLIP.width}x${CLIP.height}, `));
      expect([cam.width, cam.height]).toEqual([CLIP.width, CLIP.height]);

      // The camera played our clip: its pixels are one of the clip's frames, up to the
      // YUV to RGB conversion (Chromium's and ffmpeg's differ in rounding and chroma upsampling).
      const rgb = Uint8Array.from(cam.rgb);
      const diffs = Array.from({ length: CLIP.frames }, (_, i) => frameDiff(rgb, clipRgb!, i));
      const nearest = diffs.reduce((a, b) => (b.mean < a.mean ? b : a));
      console.log(
        `camera frame against the clip's frames (mean |diff| per channel): ${diffs.map((d) => d.mean.toFixed(2)).join(', ')}; ` +
          `the nearest has ${(100 * nearest.within2).toFixed(1)}% of its values within 2`,
      );
      // Measured 2.0-2.5 and 86-88% (the neighbouring frames of the moving pattern: 4.6 and more);
      // what remains is chroma at the pattern's sharp edges.
      expect(nearest.mean).toBeLessThan(4);
      expect(nearest.within2).toBeGreaterThan(0.75);

      // Node: the same network on the pixels the page predicted.
      const run: PageRun = { status: 'done', error: null, runs: 0, model: 'small', size: SIZE, width: cam.width, height: cam.height, depth: cam.depth, rgb: cam.rgb, adapter: null, timings: {} };
      const { rel, node } = await compareWithNode(run, net, { data: rgb, width: cam.width, height: cam.height, channels: 3 });
      expect(rel).toBeLessThanOrEqual(1e-5);
      expect(await depthPanelMatch(p, node)).toBeGreaterThan(0.99);
      // The photo panel keeps the frame whose depth is shown.
      const photo = await p.evaluate(() => {
        const c = document.getElementById('photo') as HTMLCanvasElement;
        return Array.from(c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data);
      });
      expect(photo.filter((_, i) => i % 4 !== 3)).toEqual(cam.rgb);
    } finally {
      await p.close();
    }
  }, 600_000);

  it('the camera where the browser has no requestVideoFrameCallback: new frames are found by the playback time on animation frames, and get depth', async () => {
    ready();
    const net = NETWORKS[1]!;
    const p = await browser!.newPage({ viewport: { width: 1100, height: 900 } });
    p.on('pageerror', (e) => console.error(`[page] ${e.message}`));
    // Before the page's scripts run: the browser as one without the API.
    await p.addInitScript(() => {
      delete (HTMLVideoElement.prototype as { requestVideoFrameCallback?: unknown }).requestVideoFrameCallback;
    });
    try {
      await p.goto(`${server!.url}/${net.query.replace(/&image=[^&]*/, '')}`);
      await p.waitForFunction(() => ['ready', 'error'].includes(window.midasDemo?.status), undefined, { timeout: 540_000 });
      expect(await p.evaluate(() => window.midasDemo.error)).toBeNull();
      expect(await p.evaluate(() => typeof (document.getElementById('camera-video') as HTMLVideoElement & { requestVideoFrameCallback?: unknown }).requestVideoFrameCallback)).toBe('undefined');
      await p.click('#camera-start');
      const FRAMES = 3;
      await p.waitForFunction((n) => window.midasDemo.error !== null || window.midasDemo.camera.frames >= n, FRAMES, { timeout: 300_000, polling: 100 });
      expect(await p.evaluate(() => window.midasDemo.error)).toBeNull();
      await p.click('#camera-stop');
      const cam = await p.evaluate(() => {
        const s = window.midasDemo;
        return { running: s.camera.running, frames: s.camera.frames, width: s.camera.result!.width, height: s.camera.result!.height, rgb: Array.from(s.camera.rgb!) };
      });
      expect(cam.running).toBe(false);
      expect(cam.frames).toBeGreaterThanOrEqual(FRAMES);
      expect([cam.width, cam.height]).toEqual([CLIP.width, CLIP.height]);
      // A frame of the clip, as in the camera test above.
      const rgb = Uint8Array.from(cam.rgb);
      const nearest = Array.from({ length: CLIP.frames }, (_, i) => frameDiff(rgb, clipRgb!, i)).reduce((a, b) => (b.mean < a.mean ? b : a));
      expect(nearest.mean).toBeLessThan(4);
    } finally {
      await p.close();
    }
  }, 600_000);

  it('the model picker: its choices, model= in the URL, each model\'s converted size; a bad model= is named', async () => {
    ready();
    const p = await browser!.newPage({ viewport: { width: 1100, height: 700 } });
    try {
      await p.goto(`${server!.url}/?model=small`);
      await p.waitForFunction(() => window.midasDemo?.status === 'idle' || window.midasDemo?.status === 'error', undefined, { timeout: 540_000 });
      const options = await p.locator('#model option').evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value));
      expect(options).toEqual(['auto', 'v2', 'v2.1', 'small']);
      expect(await p.locator('#model').inputValue()).toBe('small');
      const hint = await p.locator('#model-hint').innerText();
      expect(hint).toContain('43 MB in f16 / 85 MB in f32');
      expect(hint).toContain('midas convert model-small-70d6b9c8.pt --dtype f16');
      expect(hint).toContain('default input 256');
      expect(await p.locator('#model-label').innerText()).toBe('Loaded model: none');
      await p.locator('.controls').screenshot({ path: join(ARTIFACTS, 'model-picker.png') });

      // Picking another model changes the hint; auto still names the small model's size.
      await p.selectOption('#model', 'v2.1');
      expect(await p.locator('#model-hint').innerText()).toContain('211 MB in f16 / 422 MB in f32 (midas convert model-f6b98070.pt --dtype f16); default input 384');
      await p.selectOption('#model', 'auto');
      expect(await p.locator('#model-hint').innerText()).toMatch(/^the file's keys decide; small: converted weights 43 MB in f16 \/ 85 MB in f32/);

      await p.goto(`${server!.url}/?model=large`);
      await p.waitForFunction(() => window.midasDemo?.status === 'error', undefined, { timeout: 540_000 });
      expect(await p.locator('#message').innerText()).toBe('model=large: unknown model (choose from auto, v2, v2.1, small)');
    } finally {
      await p.close();
    }
  }, 600_000);

  it("model 'v2' given the small network's weights is refused, naming both architectures", async () => {
    ready();
    const p = await browser!.newPage();
    try {
      // No arch=: the architecture is read from the file's keys (the reduced network keeps the real names).
      await p.goto(`${server!.url}/?model=v2&weights=/fixtures/small/reduced.safetensors`);
      await p.waitForFunction(() => window.midasDemo?.status === 'error', undefined, { timeout: 30_000 });
      const text = await p.locator('#message').innerText();
      console.log(`page, model mismatch: ${text}`);
      expect(text).toMatch(
        /reduced\.safetensors holds a MiDaS v2\.1 small \(EfficientNet-Lite3\) checkpoint, but model 'v2' is MiDaS v2 \/ v2\.1 large \(ResNeXt-101\) \(use model 'small'/,
      );
      expect(await p.evaluate(() => window.midasDemo.model)).toBeNull();
      expect(await p.locator('#model-label').innerText()).toBe('Loaded model: none');
    } finally {
      await p.close();
    }
  });

  it('says clearly when WebGPU is missing', async () => {
    ready();
    const p = await browser!.newPage();
    await p.addInitScript(() => Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true }));
    await p.goto(`${server!.url}/`);
    await p.waitForFunction(() => window.midasDemo?.status === 'error');
    const text = await p.locator('#message').innerText();
    expect(text).toMatch(/WebGPU is not available.*navigator\.gpu is missing/);
    expect(text).toMatch(/--enable-unsafe-webgpu/);
    expect(await p.locator('#gpu-status').innerText()).toMatch(/not available/);
    await p.close();
  });
});
