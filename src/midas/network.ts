// MidasNet: image -> relative inverse depth. Keys: `pretrained.*` (the encoder:
// ResNeXt-101 for v2 and v2.1 large, EfficientNet-Lite3 for v2.1 small) and
// `scratch.*` (the decoder, shaped by `decoderConfig`).
import { Conv2d } from '../nn/layers.js';
import { Module, type Weights } from '../nn/module.js';
import type { ConvPackJob, ConvPacker } from '../nn/packing.js';
import { Runtime } from '../nn/runtime.js';
import { numel, type Tensor } from '../nn/tensor.js';
import { isSmall, MIDAS_V2, type MidasConfig } from './config.js';
import { Decoder, decoderConfig } from './decoder.js';
import { EfficientNetEncoder } from './efficientnet.js';
import { Encoder } from './encoder.js';

/** The intermediate tensors a caller can keep from a forward pass, by name. */
export const STAGES = [
  'layer1', 'layer2', 'layer3', 'layer4',
  'layer1_rn', 'layer2_rn', 'layer3_rn', 'layer4_rn',
  'path4', 'path3', 'path2', 'path1',
] as const;
export type Stage = (typeof STAGES)[number];

/**
 * 'f32'; 'f16': conv weights stored in half precision, arithmetic f32; 'f16-math': f16
 * weights and the convs' products in f16, summed in f32 (needs shader-f16).
 */
export type Precision = 'f32' | 'f16' | 'f16-math';

/** Where `prepare` has got to: BN folded on the CPU, then weights packed and queued for upload. */
export type LoadStep = 'folded' | 'uploaded';

export class MidasNet extends Module {
  readonly pretrained: Encoder | EfficientNetEncoder;
  readonly scratch: Decoder;

  constructor(readonly config: MidasConfig = MIDAS_V2) {
    super();
    this.pretrained = this.child('pretrained', isSmall(config) ? new EfficientNetEncoder(config) : new Encoder(config));
    this.scratch = this.child('scratch', new Decoder(decoderConfig(config)));
    this.assignKeys();
  }

  /** Load-time rewrites: BN folded into convs, ReLUs into conv writes. Call once after loadState. */
  fuse(): void {
    this.pretrained.fuse();
    this.scratch.fuse();
  }

  /**
   * Loads, fuses and uploads in one go. `precision` 'f16' stores the conv weights in
   * half precision on the GPU (half their memory); activations and arithmetic stay f32.
   * 'f16-math' also multiplies in f16 (activations stay f32 in memory, sums in f32).
   * `onStep` hears 'folded' once the state is loaded and BN folded (CPU), 'uploaded'
   * once the weights are re-laid out and queued for the GPU. A `packer` re-lays out
   * the tiled convs' weights while the others upload (it is closed on return).
   */
  prepare(rt: Runtime, weights: Weights, precision: Precision = 'f32', onStep?: (step: LoadStep) => void, packer?: ConvPacker): void {
    this.loadState(weights);
    this.fuse();
    this.setPrecision(precision);
    onStep?.('folded');
    if (packer) {
      // In the order upload visits the convs: the packer hands them over in that order.
      const jobs: ConvPackJob[] = [];
      for (const m of this.modules()) {
        if (!(m instanceof Conv2d)) continue;
        const job = m.packJob(rt);
        if (!job) continue;
        m.packAhead = { packer, job };
        jobs.push(job);
      }
      packer.start(jobs);
    }
    try {
      this.upload(rt);
    } finally {
      packer?.close();
    }
    onStep?.('uploaded');
  }

  /** How the convs store their weights and multiply (see `Precision`); before `upload`. */
  setPrecision(precision: Precision): void {
    for (const m of this.modules()) {
      if (!(m instanceof Conv2d)) continue;
      m.weightDType = precision === 'f32' ? 'f32' : 'f16';
      m.f16Math = precision === 'f16-math';
    }
  }

  /**
   * x: normalized NHWC `[1, H, W, 3]`, H and W multiples of 32. Returns `[1, H, W, 1]`.
   * Stages named in `keep` are returned too (the caller disposes them); the rest are
   * freed as soon as they are consumed. `after(key)` is called once each top-level
   * module (`pretrained.layer1` … `scratch.output_conv`) has recorded its work, e.g.
   * to time stages on the CPU where the adapter has no timestamp queries.
   */
  forward(
    x: Tensor,
    keep: ReadonlySet<Stage> = new Set(),
    after: (key: string) => void = () => {},
  ): { depth: Tensor; stages: Map<Stage, Tensor> } {
    const stages = new Map<Stage, Tensor>();
    const done = (name: Stage, t: Tensor) => (keep.has(name) ? stages.set(name, t) : t.dispose());
    const run = <T>(m: { key: string }, f: () => T): T => {
      const out = f();
      after(m.key);
      return out;
    };
    const { pretrained: enc, scratch: dec } = this;

    const layer1 = run(enc.layer1, () => enc.layer1.forward(x));
    const layer2 = run(enc.layer2, () => enc.layer2.forward(layer1));
    const layer3 = run(enc.layer3, () => enc.layer3.forward(layer2));
    const layer4 = run(enc.layer4, () => enc.layer4.forward(layer3));

    const layer1_rn = run(dec.layer1_rn, () => dec.layer1_rn.forward(layer1));
    const layer2_rn = run(dec.layer2_rn, () => dec.layer2_rn.forward(layer2));
    const layer3_rn = run(dec.layer3_rn, () => dec.layer3_rn.forward(layer3));
    const layer4_rn = run(dec.layer4_rn, () => dec.layer4_rn.forward(layer4));
    done('layer1', layer1);
    done('layer2', layer2);
    done('layer3', layer3);
    done('layer4', layer4);

    const path4 = run(dec.refinenet4, () => dec.refinenet4.forward(layer4_rn));
    done('layer4_rn', layer4_rn);
    const path3 = run(dec.refinenet3, () => dec.refinenet3.forward(path4, layer3_rn));
    done('path4', path4);
    done('layer3_rn', layer3_rn);
    const path2 = run(dec.refinenet2, () => dec.refinenet2.forward(path3, layer2_rn));
    done('path3', path3);
    done('layer2_rn', layer2_rn);
    const path1 = run(dec.refinenet1, () => dec.refinenet1.forward(path2, layer1_rn));
    done('path2', path2);
    done('layer1_rn', layer1_rn);

    const depth = run(dec.output_conv, () => dec.output_conv.forward(path1));
    done('path1', path1);
    return { depth, stages };
  }
}

/**
 * Floats in the largest single activation of a forward pass at h x w (both multiples
 * of 32), so a caller can refuse an input before any work when it would not fit a
 * storage binding: the largest output of any dispatch of a forward pass on a meta
 * runtime (shapes only, no device), or the input itself.
 */
export function largestActivation(c: MidasConfig, h: number, w: number): number {
  let sizes = largestByConfig.get(c);
  if (!sizes) largestByConfig.set(c, (sizes = new Map()));
  const key = `${h}x${w}`;
  let floats = sizes.get(key);
  if (floats === undefined) sizes.set(key, (floats = measureLargest(c, h, w)));
  return floats;
}

/** largestActivation's answers: `predict` asks once per image, and a meta pass re-builds the network. */
const largestByConfig = new WeakMap<MidasConfig, Map<string, number>>();

function measureLargest(c: MidasConfig, h: number, w: number): number {
  const rt = Runtime.meta();
  const net = new MidasNet(c);
  net.fuse();
  net.upload(rt);
  const x = rt.empty([1, h, w, 3]);
  net.forward(x).depth.dispose();
  return Math.max(x.size, ...(rt.records ?? []).map((r) => numel(r.output)));
}
