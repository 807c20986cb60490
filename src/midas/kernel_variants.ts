// The kernel variants a model runs on a device. A prediction (the hub transform, the
// network, the resize back to the image, as `Midas.predict` runs them) on a meta
// runtime that chooses kernels as the device would (its subgroup sizes, limits and
// conv tiles) records every dispatch with its shader; dispatches that ran the same
// shader are one variant, whatever their sizes. Each variant keeps one of its
// dispatches as a call that can be made again at another size (`selfCheck` does, small).
import { epilogueText, type Conv2dOptions } from '../kernels/conv2d.js';
import { subgroupWidth, tilesInUse, useSubgroupWidth, useTiles } from '../kernels/conv2d_tiled.js';
import { resize2d, type ResizeMethod } from '../kernels/resize.js';
import { Conv2d, MaxPool2d } from '../nn/layers.js';
import type { Module } from '../nn/module.js';
import { Runtime, type DispatchRecord } from '../nn/runtime.js';
import { numel } from '../nn/tensor.js';
import type { MidasConfig } from './config.js';
import { MidasNet, type Precision } from './network.js';
import { preprocess } from './transform.js';

/** What a conv's dispatch fused, as its label says it (see `epilogueText`); the residual as a flag. */
export type ConvEpilogue = Pick<Conv2dOptions, 'reluInput' | 'reluResidual' | 'relu' | 'relu6'> & { residual: boolean };

/** One dispatch of the model, enough to make it again at another input size. */
export type KernelCall =
  | { op: 'conv'; conv: Conv2d; input: readonly number[]; epilogue: ConvEpilogue }
  | { op: 'maxpool'; pool: MaxPool2d; input: readonly number[] }
  | { op: 'resize'; method: ResizeMethod; input: readonly number[]; output: readonly number[] }
  | { op: 'add'; relu: boolean; input: readonly number[] }
  | { op: 'normalize'; input: readonly number[] }
  | { op: 'relu' | 'relu6'; input: readonly number[] };

export interface KernelVariant {
  /** The label of `call`'s dispatch without the sizes, e.g. `conv2d_tiled 3x3/1 g32 256->256 [relu]`. */
  name: string;
  /** The WGSL it runs. */
  shader: string;
  /** How many dispatches of a prediction run it. */
  dispatches: number;
  /** The checkpoint key of `call`'s dispatch ('' for the transform and the resize back). */
  scope: string;
  /** Its dispatch with the least work, to make again; a string says why none could be read. */
  call: KernelCall | string;
}

/**
 * The variants a prediction at `size` runs on `rt`'s device (kernels chosen for its
 * subgroup sizes, limits and the tiles it was given), in the order they first run; and
 * the number of dispatches. On a square `image` of the network's size unless given:
 * the kernels' shaders do not depend on the photo's shape (test/warm.test.ts checks).
 */
export function modelVariants(
  rt: Runtime,
  config: MidasConfig,
  size: number,
  precision: Precision = 'f32',
  image: { width: number; height: number } = { width: size, height: size },
): { variants: KernelVariant[]; dispatches: number } {
  const meta = metaLike(rt);
  const net = new MidasNet(config);
  net.fuse();
  net.setPrecision(precision);
  net.upload(meta);
  const modules = new Map<string, Module>();
  for (const m of net.modules()) modules.set(m.key, m);
  const { width, height } = image;
  const x = preprocess(meta, { data: new Uint8Array(width * height * 3), width, height }, size);
  const { depth } = net.forward(x);
  x.dispose();
  // Midas.resizeBack: PyTorch bicubic back to the image's size.
  resize2d(meta, depth, height, width, { kind: 'bicubic', alignCorners: false }).dispose();
  depth.dispose();

  const records = meta.records ?? [];
  const byShader = new Map<string, { first: DispatchRecord; least: DispatchRecord; count: number }>();
  const work = (r: DispatchRecord) => r.macs || numel(r.output);
  for (const r of records) {
    const v = byShader.get(r.shader);
    if (!v) byShader.set(r.shader, { first: r, least: r, count: 1 });
    else {
      v.count++;
      if (work(r) < work(v.least)) v.least = r;
    }
  }
  const names = new Map<string, number>();
  const variants = [...byShader.values()].map(({ first, least, count }) => {
    // Named after the dispatch it makes again, so that the name and the case agree.
    let name = variantName(least.kernel);
    // Two shaders under one name (the same conv at sizes that tile differently): numbered.
    const seen = (names.get(name) ?? 0) + 1;
    names.set(name, seen);
    if (seen > 1) name += ` #${seen}`;
    return { name, shader: first.shader, dispatches: count, scope: least.scope, call: callOf(least, modules) };
  });
  return { variants, dispatches: records.length };
}

/**
 * A meta runtime that chooses kernels as `rt` does: its limits, subgroup sizes, the
 * subgroup width its kernels plan with (`useSubgroupWidth`) and its conv tiles.
 */
export function metaLike(rt: Runtime): Runtime {
  const meta = Runtime.meta(rt.limits, { subgroupMinSize: rt.subgroupMinSize, subgroupMaxSize: rt.subgroupMaxSize });
  const width = subgroupWidth(rt);
  if (width && width !== subgroupWidth(meta)) useSubgroupWidth(meta, width);
  useTiles(meta, tilesInUse(rt));
  return meta;
}

/** A dispatch label without its sizes: `@96x96`, `[1x96x96x256]`, `12x12->24x24`, `rows 0..40` go. */
export function variantName(label: string): string {
  return label
    .replace(/ @\d+x\d+/, '')
    .replace(/ \[\d+(x\d+)*\]/, '')
    .replace(/ \d+x\d+->\d+x\d+/, '')
    .replace(/ rows \d+\.\.\d+/, '');
}

/** The call a dispatch made, read from its label, shapes and module; a string says why it cannot be. */
export function callOf(r: DispatchRecord, modules: ReadonlyMap<string, Module>): KernelCall | string {
  const op = r.kernel.split(' ')[0]!;
  const input = r.input;
  if (/^(conv2d_tiled|conv2d_rows|conv2d_naive|depthwise)$/.test(op)) {
    const conv = modules.get(r.scope);
    if (!(conv instanceof Conv2d)) return `'${r.kernel}' ran under '${r.scope}', which is not a Conv2d`;
    const epilogue = parseEpilogue(r.kernel);
    return typeof epilogue === 'string' ? epilogue : { op: 'conv', conv, input, epilogue };
  }
  if (op === 'maxpool2d') {
    const pool = modules.get(r.scope);
    return pool instanceof MaxPool2d ? { op: 'maxpool', pool, input } : `'${r.kernel}' ran under '${r.scope}', which is not a MaxPool2d`;
  }
  if (op === 'resize') {
    const m = /^resize (opencv-cubic|bilinear|bicubic)( align_corners)? /.exec(r.kernel);
    if (!m) return `'${r.kernel}': an unknown resize method`;
    const method: ResizeMethod = m[1] === 'opencv-cubic' ? { kind: 'opencv-cubic' } : { kind: m[1] as 'bilinear' | 'bicubic', alignCorners: !!m[2] };
    return { op: 'resize', method, input, output: r.output };
  }
  if (op === 'add' || op === 'add+relu') return { op: 'add', relu: op === 'add+relu', input };
  if (op === 'normalize') return { op: 'normalize', input };
  if (op === 'relu' || op === 'relu6') return { op, input };
  return `no CPU reference for the kernel '${op}'`;
}

/** The fused work in a conv label's trailing `[...]`, checked by writing it back with `epilogueText`. */
function parseEpilogue(label: string): ConvEpilogue | string {
  const m = / \[([^\]]*)\]$/.exec(label);
  const words = m ? m[1]!.split(' ') : [];
  const e: ConvEpilogue = {
    reluInput: words.includes('relu(x)'),
    residual: words.includes('+res') || words.includes('+relu(res)'),
    reluResidual: words.includes('+relu(res)'),
    relu: words.includes('relu'),
    relu6: words.includes('relu6'),
  };
  const back = epilogueText({ ...e, residual: e.residual ? ({} as Conv2dOptions['residual']) : undefined });
  return back === (m ? m[0] : '') ? e : `cannot read the fused work of '${label}'`;
}
