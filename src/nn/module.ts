import type { Runtime } from './runtime.js';
import { numel } from './tensor.js';

/**
 * A checkpoint tensor with its PyTorch shape: its float32 values in memory (`data`), or
 * read when asked (`read`: a file read tensor by tensor, as src/node/streamed.ts
 * does). What `read` returns may be overwritten by the source's next read: use it
 * before reading another tensor, or copy it (`ownedValues`).
 */
export type WeightEntry = { shape: readonly number[]; data: Float32Array } | { shape: readonly number[]; read: () => Float32Array };

/** A tensor's values: `data`, or read now (valid until the source's next read). */
export function weightValues(entry: WeightEntry): Float32Array {
  return 'data' in entry ? entry.data : entry.read();
}

/** A tensor's values to keep: `data`, or a copy of what `read` gives. */
export function ownedValues(entry: WeightEntry): Float32Array {
  return 'data' in entry ? entry.data : entry.read().slice();
}

/** Checkpoint tensors by their full key, e.g. `pretrained.layer1.0.weight`. */
export type Weights = ReadonlyMap<string, WeightEntry>;

/**
 * The PyTorch `nn.Module` idea, cut to what inference needs: children under
 * names that are the checkpoint's key segments, parameters read by full key,
 * and a one-time `upload` to the GPU after load-time rewrites (BN folding).
 */
export abstract class Module {
  private readonly children = new Map<string, Module>();
  private readonly paramShapes = new Map<string, readonly number[]>();
  /** This module's checkpoint key prefix (`pretrained.layer3.22.conv2`), set by `assignKeys` on the root. */
  key = '';

  /** Gives every module in the tree its full key; call once on the root. */
  assignKeys(prefix = ''): void {
    this.key = prefix;
    for (const [name, m] of this.children) m.assignKeys(prefix ? `${prefix}.${name}` : name);
  }

  /** Registers a child under the key segment the checkpoint uses for it. */
  protected child<M extends Module>(name: string | number, m: M): M {
    this.children.set(String(name), m);
    return m;
  }

  /** Declares a parameter this module reads from the checkpoint. */
  protected param(name: string, shape: readonly number[]): void {
    this.paramShapes.set(name, shape);
  }

  /** Every key the module tree expects, with its shape, in registration order. */
  stateShapes(prefix = ''): Map<string, readonly number[]> {
    const out = new Map<string, readonly number[]>();
    for (const [name, shape] of this.paramShapes) out.set(prefix + name, shape);
    for (const [name, m] of this.children) for (const [k, s] of m.stateShapes(`${prefix}${name}.`)) out.set(k, s);
    return out;
  }

  /** Reads this module's parameters, then its children's. */
  loadState(weights: Weights, prefix = ''): void {
    const own: Record<string, WeightEntry> = {};
    for (const [name, shape] of this.paramShapes) own[name] = take(weights, prefix + name, shape);
    this.setParams(own);
    for (const [name, m] of this.children) m.loadState(weights, `${prefix}${name}.`);
  }

  /** Moves parameters to the GPU (after any load-time rewrites). */
  upload(rt: Runtime): void {
    for (const m of this.children.values()) m.upload(rt);
  }

  dispose(): void {
    for (const m of this.children.values()) m.dispose();
  }

  /** Receives the parameters declared with `param`, by local name. */
  protected setParams(_params: Record<string, WeightEntry>): void {}

  namedChildren(): IterableIterator<[string, Module]> {
    return this.children.entries();
  }

  /** This module and every descendant, depth first. */
  *modules(): IterableIterator<Module> {
    yield this;
    for (const m of this.children.values()) yield* m.modules();
  }
}

function take(weights: Weights, key: string, shape: readonly number[]): WeightEntry {
  const w = weights.get(key);
  if (!w) throw new Error(`weights: missing ${key}`);
  // A streamed entry's length is its file's (checked when the header was parsed).
  if (w.shape.join(',') !== shape.join(',') || ('data' in w && w.data.length !== numel(shape))) {
    throw new Error(`weights: ${key} has shape [${w.shape.join(', ')}], expected [${shape.join(', ')}]`);
  }
  return w;
}
