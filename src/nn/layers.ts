// Modules named and shaped like torch.nn's, over channels-last tensors.
import type { Runtime } from './runtime.js';
import { nhwc, type DType, type Tensor } from './tensor.js';
import { Module, ownedValues, weightValues, type WeightEntry } from './module.js';
import type { ConvPackJob, ConvPacker } from './packing.js';
import { conv2dNaive, type Conv2dOptions } from '../kernels/conv2d.js';
import { chooseTile, conv2dTiled, disposePacked, packConv, paddedCout, tiledSupports, type PackedConv } from '../kernels/conv2d_tiled.js';
import { depthwiseConv2d, disposeDepthwise, emptyDepthwise, packDepthwise, type PackedDepthwise } from '../kernels/depthwise.js';
import { samePadding, type Pad4 } from '../kernels/common.js';
import { batchnorm2d, batchNormScale, BN_EPS, scaleChannels, type BatchNormTensors } from '../kernels/channelwise.js';
import { relu, relu6 } from '../kernels/elementwise.js';
import { maxpool2d } from '../kernels/maxpool2d.js';
import { resize2d } from '../kernels/resize.js';

/** What a conv may fuse into its write (and read): see `Conv2dOptions`. */
export type Epilogue = Pick<Conv2dOptions, 'residual' | 'relu' | 'relu6' | 'reluInput' | 'reluResidual'>;

/** An activation a conv runs in its write (see `fuseConvBnReLU`). */
export type FusedActivation = 'relu' | 'relu6';

/**
 * A Conv2d's padding: k on every side, each side (`[top, left, bottom, right]`), or
 * 'same', TensorFlow's "SAME" computed from the input's size at each forward pass
 * (`samePadding`).
 */
export type Conv2dPadding = number | Pad4 | 'same';

export interface Conv2dConfig {
  stride?: number;
  padding?: Conv2dPadding;
  groups?: number;
  bias?: boolean;
}

export class Conv2d extends Module {
  readonly stride: number;
  readonly padding: Conv2dPadding;
  readonly groups: number;
  readonly hasBias: boolean;
  /** Read at upload, where a streamed file reads it (see `WeightEntry`). */
  private weight?: WeightEntry;
  private bias?: Float32Array;
  private rt?: Runtime;
  private packed?: PackedConv;
  private depthwise?: PackedDepthwise;
  private naive?: { weight: Tensor; bias?: Tensor };

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    config: Conv2dConfig = {},
  ) {
    super();
    this.stride = config.stride ?? 1;
    this.padding = config.padding ?? 0;
    this.groups = config.groups ?? 1;
    this.hasBias = config.bias ?? true;
    this.param('weight', this.weightShape);
    if (this.hasBias) this.param('bias', [outChannels]);
  }

  get weightShape(): [number, number, number, number] {
    return [this.outChannels, this.inChannels / this.groups, this.kernelSize, this.kernelSize];
  }

  protected override setParams(p: Record<string, WeightEntry>): void {
    this.weight = p['weight'];
    this.bias = p['bias'] && ownedValues(p['bias']);
  }

  /** Whether the depthwise kernel runs this conv: groups = in = out channels, a window wider than 1x1. */
  get isDepthwise(): boolean {
    return this.groups === this.inChannels && this.inChannels === this.outChannels && this.kernelSize > 1;
  }

  /** The padding for an input of h x w, as the kernels take it. */
  paddingFor(h: number, w: number): number | Pad4 {
    return this.padding === 'same' ? samePadding(h, w, this.kernelSize, this.stride) : this.padding;
  }

  /** The BatchNorm folded into this conv at load time, if any. */
  foldedBatchNorm?: BatchNorm2d;
  /** Its scale per output channel, applied to the weights at upload. */
  private weightScale?: Float64Array;

  /**
   * Folds an inference BatchNorm that follows this conv into its weight and bias.
   * Without loaded weights (a shapes-only tree for a meta runtime) only the structure changes.
   */
  foldBatchNorm(bn: BatchNorm2d): void {
    if (this.foldedBatchNorm) throw new Error('Conv2d.foldBatchNorm: a BatchNorm is folded into this conv already');
    if (this.weight) {
      // The weights are scaled as upload re-lays them out (see batchNormScale).
      const folded = batchNormScale(this.outChannels, bn.cpuParams(), this.bias, bn.eps);
      this.weightScale = folded.scale;
      this.bias = folded.bias;
    } else if (bn.isLoaded) {
      throw new Error('Conv2d.foldBatchNorm: load the conv first');
    }
    bn.folded = true;
    this.foldedBatchNorm = bn;
  }

  /** Storage type of the weights on the GPU ('f16' halves their memory; arithmetic stays f32). Set before upload. */
  weightDType: DType = 'f32';
  /** Products in f16, sums in f32 (with f16 weights; see PackedConv.f16Math). Set before upload. */
  f16Math = false;

  /**
   * What `upload` would pack for the tiled kernel on `rt`, for a `ConvPacker` to pack
   * ahead (see `packAhead`); undefined where another kernel runs this conv or nothing is
   * loaded.
   */
  packJob(rt: Runtime): ConvPackJob | undefined {
    if (!this.weight || rt.meta || this.isDepthwise || !tiledSupports(this.weightShape, this.groups)) return undefined;
    const tile = chooseTile(rt, this.weightShape, this.groups);
    return { entry: this.weight, shape: this.weightShape, groups: this.groups, tile, scale: this.weightScale, dtype: this.weightDType };
  }

  /** Set with the job `packJob` gave: `upload` takes the packed weights from here. */
  packAhead?: { packer: ConvPacker; job: ConvPackJob };

  override upload(rt: Runtime): void {
    this.rt = rt;
    if (rt.meta && !this.weight) {
      // Shapes only: a meta runtime's tensors hold no data.
      const [cout, cinG, kh, kw] = this.weightShape;
      if (this.isDepthwise) {
        this.depthwise = emptyDepthwise(rt, this.weightShape, this.weightDType);
      } else if (tiledSupports(this.weightShape, this.groups)) {
        const tile = chooseTile(rt, this.weightShape, this.groups);
        const coutPad = paddedCout(cout, tile);
        // As packConv lays it out, every conv with a bias (zeros where it has none).
        this.packed = {
          weight: rt.empty([kh * kw * cinG, coutPad], this.weightDType), bias: rt.empty([coutPad]),
          shape: this.weightShape, groups: this.groups, coutPad, tile, f16Math: this.f16Math,
        };
      } else {
        this.naive = { weight: rt.empty(this.weightShape) };
        if (this.hasBias || this.foldedBatchNorm) this.naive.bias = rt.empty([cout]);
      }
      return;
    }
    if (!this.weight) throw new Error('Conv2d.upload: no weights loaded');
    const scale = this.weightScale;
    const ahead = this.packAhead;
    this.packAhead = undefined;
    const packed = ahead?.packer.take(ahead.job);
    if (ahead && packed) {
      this.packed = packConv(rt, { packed }, this.weightShape, this.groups, this.bias, ahead.job.tile, this.weightDType, this.f16Math);
    } else if (this.isDepthwise) {
      this.depthwise = packDepthwise(rt, weightValues(this.weight), this.weightShape, this.bias, this.weightDType, scale);
    } else if (tiledSupports(this.weightShape, this.groups)) {
      const tile = chooseTile(rt, this.weightShape, this.groups);
      this.packed = packConv(rt, weightValues(this.weight), this.weightShape, this.groups, this.bias, tile, this.weightDType, this.f16Math, scale);
    } else {
      const weight = weightValues(this.weight);
      this.naive = { weight: rt.upload(scale ? scaleChannels(weight, scale) : weight, this.weightShape) };
      if (this.bias) this.naive.bias = rt.upload(this.bias, [this.outChannels]);
    }
    // The CPU copies are not needed once on the GPU.
    this.weight = undefined;
    this.bias = undefined;
    this.weightScale = undefined;
  }

  /** Set by `fuseConvBnReLU`: the ReLU or ReLU6 after this conv (and its BN) runs in the conv's write. */
  fusedActivation?: FusedActivation;

  forward(x: Tensor, epilogue: Epilogue = {}): Tensor {
    const [, h, w] = nhwc(x, 'Conv2d input');
    // An activation asked for here replaces the fused one rather than stacking on it.
    const asked = !!(epilogue.relu || epilogue.relu6);
    const opts: Conv2dOptions = {
      ...epilogue,
      stride: this.stride,
      padding: this.paddingFor(h, w),
      relu: asked ? !!epilogue.relu : this.fusedActivation === 'relu',
      relu6: asked ? !!epilogue.relu6 : this.fusedActivation === 'relu6',
    };
    const rt = this.runtime();
    const { packed, depthwise, naive } = this;
    if (depthwise) return rt.withScope(this.key, () => depthwiseConv2d(rt, x, depthwise, opts));
    if (packed) return rt.withScope(this.key, () => conv2dTiled(rt, x, packed, opts));
    if (naive) {
      return rt.withScope(this.key, () =>
        conv2dNaive(rt, x, naive.weight, { ...opts, groups: this.groups, bias: naive.bias }),
      );
    }
    throw new Error('Conv2d.forward: call upload() first');
  }

  override dispose(): void {
    if (this.packed) disposePacked(this.packed);
    if (this.depthwise) disposeDepthwise(this.depthwise);
    this.naive?.weight.dispose();
    this.naive?.bias?.dispose();
    this.packed = undefined;
    this.depthwise = undefined;
    this.naive = undefined;
  }

  private runtime(): Runtime {
    if (!this.rt) throw new Error('Conv2d.forward: call upload() first');
    return this.rt;
  }
}

export class BatchNorm2d extends Module {
  /** Set when a conv absorbed this BN at load time; forward() is then never called. */
  folded = false;
  private cpu?: Record<string, Float32Array>;
  private gpu?: BatchNormTensors;
  private rt?: Runtime;

  /** `eps` as PyTorch's BatchNorm2d takes it: 1e-5 by default; TensorFlow-trained models use 1e-3. */
  constructor(
    readonly numFeatures: number,
    readonly eps = BN_EPS,
  ) {
    super();
    if (!(eps > 0)) throw new Error(`BatchNorm2d: eps must be positive (got ${eps})`);
    for (const name of ['weight', 'bias', 'running_mean', 'running_var']) this.param(name, [numFeatures]);
  }

  protected override setParams(p: Record<string, WeightEntry>): void {
    this.cpu = Object.fromEntries(Object.entries(p).map(([name, entry]) => [name, ownedValues(entry)]));
  }

  get isLoaded(): boolean {
    return !!this.cpu;
  }

  cpuParams(): { weight: Float32Array; bias: Float32Array; runningMean: Float32Array; runningVar: Float32Array } {
    const p = this.cpu;
    if (!p) throw new Error('BatchNorm2d: not loaded');
    return { weight: p['weight']!, bias: p['bias']!, runningMean: p['running_mean']!, runningVar: p['running_var']! };
  }

  override upload(rt: Runtime): void {
    if (this.folded) return;
    this.rt = rt;
    const c = [this.numFeatures];
    if (rt.meta && !this.cpu) {
      this.gpu = { weight: rt.empty(c), bias: rt.empty(c), runningMean: rt.empty(c), runningVar: rt.empty(c) };
      return;
    }
    const p = this.cpuParams();
    this.gpu = {
      weight: rt.upload(p.weight, c),
      bias: rt.upload(p.bias, c),
      runningMean: rt.upload(p.runningMean, c),
      runningVar: rt.upload(p.runningVar, c),
    };
  }

  /** Identity once folded into the conv before it. */
  forward(x: Tensor, opts: { relu?: boolean } = {}): Tensor {
    if (this.folded) return x;
    const { gpu, rt } = this;
    if (!gpu || !rt) throw new Error('BatchNorm2d: call upload() first');
    return rt.withScope(this.key, () => batchnorm2d(rt, x, gpu, { eps: this.eps, relu: opts.relu }));
  }

  override dispose(): void {
    if (this.gpu) for (const t of Object.values(this.gpu)) t.dispose();
    this.gpu = undefined;
  }
}

/** Modules with no parameters just need the runtime to dispatch on. */
abstract class Stateless extends Module {
  protected rt?: Runtime;
  override upload(rt: Runtime): void {
    this.rt = rt;
  }
  protected runtime(): Runtime {
    if (!this.rt) throw new Error(`${this.constructor.name}: call upload() first`);
    return this.rt;
  }
  abstract forward(x: Tensor): Tensor;
}

export class ReLU extends Stateless {
  /** Set by `fuseConvBnReLU`: the conv before it already applied the ReLU. */
  fused = false;
  forward(x: Tensor): Tensor {
    const rt = this.runtime();
    return this.fused ? x : rt.withScope(this.key, () => relu(rt, x));
  }
}

/** min(max(x, 0), 6). */
export class ReLU6 extends Stateless {
  /** Set by `fuseConvBnReLU`: the conv before it already applied the ReLU6. */
  fused = false;
  forward(x: Tensor): Tensor {
    const rt = this.runtime();
    return this.fused ? x : rt.withScope(this.key, () => relu6(rt, x));
  }
}

export class MaxPool2d extends Stateless {
  constructor(readonly kernelSize = 3, readonly stride = 2, readonly padding = 1) {
    super();
  }
  forward(x: Tensor): Tensor {
    const rt = this.runtime();
    return rt.withScope(this.key, () => maxpool2d(rt, x, { kernel: this.kernelSize, stride: this.stride, padding: this.padding }));
  }
}

/** `nn.functional.interpolate(x, scale_factor, mode='bilinear', align_corners)`. */
export class Interpolate extends Stateless {
  constructor(readonly scaleFactor: number, readonly alignCorners: boolean) {
    super();
  }
  forward(x: Tensor): Tensor {
    const [, h, w] = x.shape as [number, number, number, number];
    const rt = this.runtime();
    const method = { kind: 'bilinear', alignCorners: this.alignCorners } as const;
    return rt.withScope(this.key, () => resize2d(rt, x, Math.floor(h * this.scaleFactor), Math.floor(w * this.scaleFactor), method));
  }
}

/** A module that maps one tensor to one tensor, as Sequential chains them. */
export interface Forward {
  forward(x: Tensor): Tensor;
}

/**
 * Runs children in order under keys "0", "1", …, disposing each intermediate.
 * The input is never disposed: it belongs to the caller.
 */
export class Sequential extends Module implements Forward {
  readonly layers: (Module & Forward)[];

  constructor(...layers: (Module & Forward)[]) {
    super();
    this.layers = layers;
    layers.forEach((m, i) => this.child(i, m));
  }

  forward(x: Tensor): Tensor {
    let out = x;
    for (const m of this.layers) {
      const next = m.forward(out);
      if (out !== x && next !== out) out.dispose(); // fused layers pass their input through
      out = next;
    }
    return out;
  }
}

/**
 * Load-time fusion over a Sequential, after loading and before upload:
 * Conv2d → BatchNorm2d folds the BN into the conv; a ReLU or ReLU6 right after runs in
 * the conv's write. The tree keeps its torchvision / timm shape and keys.
 */
export function fuseConvBnReLU(seq: Sequential): void {
  const l = seq.layers;
  for (let i = 0; i < l.length; i++) {
    const conv = l[i];
    if (!(conv instanceof Conv2d)) continue;
    let j = i + 1;
    const bn = l[j];
    if (bn instanceof BatchNorm2d) {
      conv.foldBatchNorm(bn);
      j++;
    }
    const r = l[j];
    if (r instanceof ReLU || r instanceof ReLU6) {
      conv.fusedActivation = r instanceof ReLU ? 'relu' : 'relu6';
      r.fused = true;
    }
  }
}
