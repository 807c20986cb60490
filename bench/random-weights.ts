// Random MiDaS weights made in TypeScript (no checkpoint file needed), for either
// network (the keys and shapes come from `expectedShapes(config)`), drawn like
// test/fixtures/midas/midas_ref.py's `randomize` so activations stay O(1) through v2's
// 33 bottlenecks and the small network's 23 inverted residuals (no denormals, no
// overflow: a CPU adapter's speed can depend on it): conv weights with std
// sqrt(2 / fan_in) (uniform, for speed; a depthwise conv's fan-in is its k*k window),
// conv biases ~ 0.1, BatchNorm statistics far from the identity, and a small scale on
// each residual branch's last BN (bn3: v2's bottlenecks, the small network's linear
// projections), as zero-init-residual training does; the head's last conv has positive
// weights so that the depth map is not all zeros.
import { writeFileSync } from 'node:fs';
import { weightValues, type WeightEntry, type Weights } from '../src/nn/module.js';
import { numel } from '../src/nn/tensor.js';
import { encodeHeader, planSafetensors } from '../tools/convert-weights/safetensors-write.js';
import { MIDAS_V2, type MidasConfig } from '../src/midas/config.js';
import { expectedShapes } from '../src/midas/weights.js';

/** xorshift32: deterministic and fast. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

export function randomWeights(config: MidasConfig = MIDAS_V2, seed = 0x5eed): Weights {
  const shapes = expectedShapes(config);
  const next = rng(seed);
  const uniform = (n: number, lo: number, hi: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * next();
    return a;
  };
  /** Mean 0, standard deviation `std` (uniform on +-sqrt(3) std). */
  const centred = (n: number, std: number) => uniform(n, -Math.sqrt(3) * std, Math.sqrt(3) * std);
  const out = new Map<string, WeightEntry>();
  for (const [key, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const dot = key.lastIndexOf('.');
    const module = key.slice(0, dot);
    const name = key.slice(dot + 1);
    const isBn = shapes.has(`${module}.running_mean`);
    let data: Float32Array;
    if (!isBn) {
      // Conv2d: weight [Cout, Cin/groups, k, k], optional bias [Cout].
      data = name === 'weight' ? centred(n, Math.sqrt(2 / (n / shape[0]!))) : centred(n, 0.1);
      // The head's last conv (32 -> 1, then ReLU) reads ReLU outputs: positive weights
      // keep the depth map from being all zeros, so the output says something was computed.
      if (key === 'scratch.output_conv.4.weight') data = data.map(Math.abs);
    } else if (name === 'weight') {
      data = module.endsWith('bn3') ? uniform(n, 0.1, 0.3) : uniform(n, 0.5, 1.5);
    } else if (name === 'bias') {
      data = centred(n, 0.2);
    } else if (name === 'running_mean') {
      data = centred(n, 0.3);
    } else {
      data = uniform(n, 0.5, 2.0); // running_var
    }
    out.set(key, { shape, data });
  }
  return out;
}

/** Parameters and their float32 bytes. */
export function weightsSize(w: Weights): { params: number; bytes: number } {
  let params = 0;
  for (const e of w.values()) params += numel(e.shape);
  return { params, bytes: 4 * params };
}

/** Weights as a safetensors file (F32, checkpoint names): for torch_e2e.py --weights and the cold-start bench. */
export function writeWeights(weights: Weights, file: string): void {
  const { tensors, dataBytes } = planSafetensors([...weights].map(([name, e]) => ({ name, dtype: 'F32' as const, shape: [...e.shape] })));
  const header = encodeHeader(tensors, { source: 'bench/random-weights.ts' });
  const out = new Uint8Array(header.length + dataBytes);
  out.set(header);
  for (const t of tensors) {
    const d = weightValues(weights.get(t.name)!);
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), header.length + t.begin);
  }
  writeFileSync(file, out);
}
