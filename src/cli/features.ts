// `midas features`: what one module of the network responds to, as a PNG grid of
// its output channels (src/midas/grid.ts), captured by checkpoint key during one
// prediction (Runtime.capture).
import { accessSync, constants, mkdirSync } from 'node:fs';
import path from 'node:path';
import { PNG } from 'pngjs';
import { finiteRange } from '../midas/colormap.js';
import type { MidasConfig } from '../midas/config.js';
import { channelGrid, gridLayout, GRID_COLORS, type GridColors } from '../midas/grid.js';
import { MidasNet, STAGES, type Stage } from '../midas/network.js';
import { summarize } from '../midas/summary.js';
import { BatchNorm2d, Conv2d, ReLU, Sequential } from '../nn/layers.js';
import type { Module } from '../nn/module.js';
import type { Tensor } from '../nn/tensor.js';
import { decodeImage } from '../node/image.js';
import { loadWithProgress, resolveModel } from './load.js';
import { writeFileAtomic } from '../node/outputs.js';
import { ADAPTER_OPTION, ADAPTER_USAGE, cliAdapter } from './adapter.js';
import { cliModel, MODEL_OPTION, MODEL_USAGE, modelWithoutWeights } from './arch.js';
import { UsageError, type Command } from './command.js';
import { parseOptions, parseSize } from './main.js';

/** Channels drawn at most; a wider activation shows its first MAX_CHANNELS (the label says so). */
export const MAX_CHANNELS = 256;

const USAGE = `Usage: midas features <image> --layer KEY [options]

Runs the network on one image and saves the activation after a module as a PNG grid
of its channels: channel 0 at the top left, in reading order, each scaled to its own
min..max (black..white), small maps enlarged, with a label row giving the key, the
NHWC shape and the value range. At most ${MAX_CHANNELS} channels are drawn.

Options:
  -l, --layer KEY      what to show, one of (or several, comma-separated):
                         a stage: layer1..layer4 (the encoder), layer1_rn..layer4_rn,
                           path4..path1 (= refinenet4..1: the decoder)
                         all: the 12 stages, one file each
                         a checkpoint key of a module that runs kernels, e.g.
                           pretrained.layer3.4.conv2, scratch.refinenet2, or without
                           its pretrained./scratch. prefix (refinenet2, output_conv.0)
                         (\`midas summary\` lists every key that runs kernels)
  -o, --output DIR     output folder (default: ./output): DIR/<image stem>-<KEY>.png
${MODEL_USAGE}
  -w, --weights FILE   converted .safetensors or a PyTorch .pt checkpoint, as for
                       predict (default: the model's official checkpoint)
  -s, --size N         network input side, a positive multiple of 32 (default: the
                       model's, 384 or 256)
      --colormap NAME  gray, inferno or turbo (default: gray)
${ADAPTER_USAGE}
      --overwrite      replace existing files
  -q, --quiet          no progress messages

Prints the path of each file written.`;

/** A `--layer` item resolved: the name given (used in the file name) and the module key captured. */
export interface FeatureLayer {
  name: string;
  key: string;
  stage?: Stage;
}

/** The checkpoint key of a stage: layerK -> pretrained.layerK, layerK_rn -> scratch.layerK_rn, pathK -> scratch.refinenetK. */
export function stageKey(stage: Stage): string {
  if (stage.startsWith('path')) return `scratch.refinenet${stage.slice(4)}`;
  return stage.endsWith('_rn') ? `scratch.${stage}` : `pretrained.${stage}`;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** Which module keys of a network run kernels, and why the others do not. */
export class LayerIndex {
  /** Every module key with at least one dispatch under it, in forward order of first dispatch. */
  readonly running: string[];
  private readonly runningSet: Set<string>;
  private readonly modules = new Map<string, Module>();
  private readonly params: Set<string>;
  private readonly net: MidasNet;

  constructor(config: MidasConfig) {
    const scopes = summarize(config, 64, 64).rows.map((r) => r.key).filter(Boolean);
    const running = new Set<string>();
    for (const scope of scopes) {
      const parts = scope.split('.');
      for (let i = 1; i <= parts.length; i++) running.add(parts.slice(0, i).join('.'));
    }
    this.running = [...running];
    this.runningSet = running;
    this.net = new MidasNet(config);
    this.net.fuse(); // the structure as it runs: BNs folded, ReLUs fused
    for (const m of this.net.modules()) if (m.key) this.modules.set(m.key, m);
    this.params = new Set(this.net.stateShapes().keys());
  }

  runs(key: string): boolean {
    return this.runningSet.has(key);
  }

  /**
   * `spec`: comma-separated stages, module keys (with or without the
   * pretrained./scratch. prefix) or 'all'. Throws a one-line UsageError for anything
   * that names no module output.
   */
  resolve(spec: string): FeatureLayer[] {
    const items = spec.split(',').map((s) => s.trim()).filter(Boolean);
    if (!items.length) throw new UsageError('--layer is empty (try --layer layer1, or --layer all)');
    const out: FeatureLayer[] = [];
    const add = (l: FeatureLayer) => {
      if (!out.some((o) => o.name === l.name)) out.push(l);
    };
    for (const item of items) {
      if (item === 'all') {
        for (const stage of STAGES) add({ name: stage, key: stageKey(stage), stage });
      } else if ((STAGES as readonly string[]).includes(item)) {
        add({ name: item, key: stageKey(item as Stage), stage: item as Stage });
      } else {
        add({ name: item, key: this.moduleKey(item) });
      }
    }
    return out;
  }

  private moduleKey(item: string): string {
    const candidates = [item, `pretrained.${item}`, `scratch.${item}`];
    const hit = candidates.find((k) => this.runs(k));
    if (hit) return hit;
    const known = candidates.find((k) => this.modules.has(k) || this.params.has(k));
    if (known) throw new UsageError(`--layer ${item}: ${this.whyNot(known)}`);
    const near = this.running
      .map((k) => ({ k, d: Math.min(editDistance(item, k), ...['pretrained.', 'scratch.'].map((p) => (k.startsWith(p) ? editDistance(item, k.slice(p.length)) : Infinity))) }))
      .sort((a, b) => a.d - b.d)
      .slice(0, 3)
      .map((x) => x.k);
    throw new UsageError(
      `unknown --layer '${item}' (use a stage: ${STAGES.join(', ')}; all; or a module key such as ${near.join(', ')}; ` +
        '`midas summary` lists every key that runs)',
    );
  }

  /** Why a module (or parameter) key has no output of its own, and which key to use instead. */
  private whyNot(key: string): string {
    if (this.params.has(key)) {
      const owner = key.slice(0, key.lastIndexOf('.'));
      return this.runs(owner)
        ? `a parameter, not a module output; use --layer ${owner}`
        : `a parameter of ${owner}, ${this.whyNot(owner)}`;
    }
    const m = this.modules.get(key)!;
    if (m instanceof BatchNorm2d && m.folded) {
      const conv = [...this.modules.values()].find((c) => c instanceof Conv2d && c.foldedBatchNorm === m);
      if (conv) return `a BatchNorm2d that runs no kernel (folded into ${conv.key} at load time); use --layer ${conv.key}, whose output includes it`;
    }
    if (m instanceof ReLU && m.fused) {
      const conv = this.convBefore(m);
      if (conv) return `a ReLU that runs no kernel (it runs in ${conv.key}'s write); use --layer ${conv.key}, whose output includes it`;
    }
    if (/^scratch\.refinenet4\.resConfUnit1(\.|$)/.test(key)) {
      return 'never runs (refinenet4 has one input, so its resConfUnit1 is unused); use --layer scratch.refinenet4.resConfUnit2';
    }
    return 'runs no kernel in a forward pass';
  }

  private convBefore(m: Module): Conv2d | undefined {
    for (const seq of this.modules.values()) {
      if (!(seq instanceof Sequential)) continue;
      const i = seq.layers.indexOf(m as Sequential['layers'][number]);
      for (let j = i - 1; j >= 0; j--) {
        const c = seq.layers[j];
        if (c instanceof Conv2d) return c.fusedActivation ? c : undefined;
      }
    }
    return undefined;
  }
}

function fmtValue(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(2) : String(Number(v.toPrecision(4)));
}

/** The label rows of a feature grid. */
export function featureLabel(layer: FeatureLayer, shape: readonly number[], range: { min: number; max: number }, shown: number, zoom: string, colors: GridColors): string[] {
  const channels = shape[shape.length - 1]!;
  const scale = colors === 'gray' ? 'black..white' : `${colors} dark..bright`;
  return [
    layer.stage ? `${layer.key} (${layer.stage})` : layer.key,
    `[${shape.join(', ')}] NHWC   min ${fmtValue(range.min)}  max ${fmtValue(range.max)}`,
    `${shown < channels ? `channels 0-${shown - 1} of ${channels}` : `${channels} channel${channels === 1 ? '' : 's'}`}, ` +
      `each min..max = ${scale}${zoom ? `; ${zoom}` : ''}`,
  ];
}

/** Writes an 8-bit RGB PNG atomically. */
function writeRgbPng(file: string, rgb: { data: Uint8Array; width: number; height: number }, overwrite: boolean): void {
  const png = new PNG({ width: rgb.width, height: rgb.height, colorType: 2, inputColorType: 2, inputHasAlpha: false });
  png.data = Buffer.from(rgb.data.buffer, rgb.data.byteOffset, rgb.data.byteLength);
  writeFileAtomic(file, PNG.sync.write(png, { colorType: 2, inputColorType: 2, inputHasAlpha: false }), { overwrite });
}

export const featuresCommand: Command = {
  name: 'features',
  summary: "one module's output for an image as a PNG grid of its channels (--layer all: every stage)",
  usage: USAGE,
  async run(argv) {
    const { values, positionals } = parseOptions(argv, {
      layer: { type: 'string', short: 'l' },
      ...ADAPTER_OPTION,
      output: { type: 'string', short: 'o' },
      ...MODEL_OPTION,
      weights: { type: 'string', short: 'w' },
      size: { type: 'string', short: 's' },
      colormap: { type: 'string' },
      overwrite: { type: 'boolean' },
      quiet: { type: 'boolean', short: 'q' },
    });
    if (!positionals.length) throw new UsageError('no image given (see midas features --help)');
    if (positionals.length > 1) throw new UsageError(`one image at a time (got ${positionals.length})`);
    const input = positionals[0]!;
    const spec = values['layer'] as string | undefined;
    if (spec === undefined) throw new UsageError(`--layer is required (a stage: ${STAGES.join(', ')}; all; or a module key)`);
    const size = parseSize(values['size'] as string | undefined);
    const colors = ((values['colormap'] as string | undefined) ?? 'gray') as GridColors;
    if (!GRID_COLORS.includes(colors)) throw new UsageError(`unknown --colormap '${colors}' (choose from ${GRID_COLORS.join(', ')})`);
    const overwrite = !!values['overwrite'];
    const quiet = !!values['quiet'];
    const outDir = (values['output'] as string | undefined) ?? 'output';
    const image = decodeImage(input); // a bad image fails before the GPU and weights are set up
    // The layers are checked before anything is downloaded; a given file says its architecture first.
    const choice = cliModel(values);
    const weightsArg = values['weights'] as string | undefined;
    if (weightsArg === undefined) new LayerIndex(modelWithoutWeights(choice).config).resolve(spec);
    const adapter = await cliAdapter(values); // before any download
    const resolved = await resolveModel(weightsArg, choice, quiet);
    const layers = new LayerIndex(resolved.config).resolve(spec);

    const stem = path.basename(input).replace(/\.[^.]*$/, '');
    const jobs = layers.map((layer) => ({ layer, file: path.join(outDir, `${stem}-${layer.name}.png`) }));
    try {
      mkdirSync(outDir, { recursive: true });
      accessSync(outDir, constants.W_OK);
    } catch (e) {
      throw new Error(`${outDir}: cannot write to the output folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    if (!overwrite) {
      const existing = jobs.filter((j) => {
        try {
          accessSync(j.file);
          return true;
        } catch {
          return false;
        }
      });
      if (existing.length) {
        throw new Error(`${existing[0]!.file}${existing.length > 1 ? ` and ${existing.length - 1} more` : ''} already exist(s); use --overwrite to replace`);
      }
    }

    const model = await loadWithProgress(resolved, { size, adapter });
    const rt = model.runtime;
    let captured = new Map<string, Tensor>();
    try {
      rt.capture([...new Set(layers.map((l) => l.key))]);
      try {
        await model.predict({ ...image, channels: 3 });
      } finally {
        captured = rt.takeCaptured();
      }
      for (const { layer, file } of jobs) {
        const t = captured.get(layer.key);
        if (!t) throw new Error(`${layer.key}: nothing was captured (no kernel ran under it)`);
        const [, h, w, c] = t.shape as [number, number, number, number];
        const data = await t.read();
        const all = finiteRange(data);
        const layout = gridLayout(h, w, c, { maxChannels: MAX_CHANNELS });
        const zoom = layout.upscale > 1 ? `tiles enlarged x${layout.upscale}` : layout.downscale > 1 ? `tiles shrunk 1/${layout.downscale}` : '';
        const label = featureLabel(layer, t.shape, all, layout.shown, zoom, colors);
        const grid = channelGrid(data, h, w, c, { maxChannels: MAX_CHANNELS, colors, label });
        writeRgbPng(file, grid, overwrite);
        console.log(file);
      }
    } finally {
      for (const t of captured.values()) t.dispose();
      model.dispose();
    }
    return 0;
  },
};
