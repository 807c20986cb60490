import { openDevice, type DeviceFeatures, type OpenDeviceOptions, type RaisedLimit } from './device.js';
import { BYTES_PER_ELEMENT, Tensor, numel, type DType } from './tensor.js';
import { toFloat16Bits } from './half.js';
import { UniformArena } from './uniforms.js';
import { Profiler, type Timing } from './profiler.js';
import { quietly } from './wait.js';

export interface DispatchArgs {
  /** Shown in traces and profiles, e.g. `conv2d 3x3 256->256`. */
  label: string;
  pipeline: GPUComputePipeline;
  /** Storage buffers bound at @binding(0..n-1), in order. */
  buffers: (Tensor | GPUBuffer)[];
  /** Bound as a uniform at @binding(n), right after the storage buffers. */
  uniforms?: ArrayBuffer;
  workgroups: readonly [number, number?, number?];
  /** Multiply-accumulates the dispatch performs (convolutions report theirs). */
  macs?: number;
}

/** What a dispatch did, as kept by a meta runtime or when `record` is on. */
export interface DispatchRecord {
  /** The checkpoint key of the module that dispatched it ('' outside any module). */
  scope: string;
  /** The kernel's own label, e.g. `conv2d_tiled 3x3/1 g32 256->256 @96x96`. */
  kernel: string;
  /** The output's shape (the last buffer bound, by our kernels' convention). */
  output: readonly number[];
  /** The first input's shape (the first buffer bound). */
  input: readonly number[];
  workgroups: readonly [number, number, number];
  macs: number;
  /**
   * The WGSL of the dispatch's pipeline (as `pipeline()` got it): dispatches with the
   * same shader run the same kernel variant, whatever their sizes (`midas info --check`
   * runs each variant a model uses once, at a small size).
   */
  shader: string;
}

export interface RuntimeStats {
  liveTensors: number;
  liveBytes: number;
  peakLiveBytes: number;
  pooledBuffers: number;
  pooledBytes: number;
  allocatedBuffers: number;
  dispatches: number;
  submits: number;
  /** Bind groups created so far; a repeated forward pass at one input size creates none (see `bindGroup`). */
  bindGroupsCreated: number;
  /** Bind groups held in the cache now. */
  bindGroupsCached: number;
  /**
   * Pipelines created so far, the distinct shader modules behind them, and the host
   * time their creation took. Drivers may compile later, at the first dispatch
   * (lavapipe does), so this is the front end's share of a first run, not all of it.
   */
  pipelinesCreated: number;
  shaderModules: number;
  pipelineMs: number;
}

const STORAGE = 0x80 | 0x4 | 0x8; // STORAGE | COPY_SRC | COPY_DST (GPUBufferUsage values)
const MAP_READ_DST = 0x1 | 0x8; // MAP_READ | COPY_DST

/**
 * The tensor runtime: one device, a buffer pool, a pipeline cache and one command
 * encoder that collects every dispatch until `flush()` submits them together.
 */
export class Runtime {
  readonly features: DeviceFeatures;
  readonly limits: Record<RaisedLimit, number>;
  readonly adapterName: string;
  /** The smallest subgroup the device may run; 0 without the subgroups feature. */
  readonly subgroupMinSize: number;
  /** The largest subgroup the device may run; 0 without the subgroups feature. */
  readonly subgroupMaxSize: number;
  /** Why the adapter's subgroups are not used (they failed the lane probe); absent otherwise. */
  readonly subgroupProbe?: string;
  /** The adapter's feature level: 'compatibility' where `openDevice` found no core adapter (or avoided a fallback one). */
  readonly featureLevel: 'core' | 'compatibility';
  /** Print each dispatch to stderr (MIDAS_DEBUG style tracing). */
  trace = false;
  /** Milliseconds the last `read` waited, from its submit to the data on the CPU. */
  lastWaitMs = 0;
  /** Prefixed to dispatch labels: the checkpoint key of the module running (see `withScope`). */
  private scope = '';

  private encoder: GPUCommandEncoder | null = null;
  private readonly modules = new Map<string, GPUShaderModule>();
  /** By shader code, then entry point and constants. */
  private readonly pipelines = new Map<string, Map<string, GPUComputePipeline>>();
  private readonly pool = new Map<number, GPUBuffer[]>();
  private readonly stagingPool = new Map<number, GPUBuffer[]>();
  private readonly uniforms: UniformArena;
  private profiler: Profiler | null = null;
  private afterSubmit: GPUBuffer[] = [];
  private lost: string | null = null;
  private counters = { liveTensors: 0, liveBytes: 0, peakLiveBytes: 0, allocatedBuffers: 0, dispatches: 0, submits: 0, bindGroupsCreated: 0, pipelinesCreated: 0, pipelineMs: 0 };
  /** Bind groups by pipeline and bound buffers (see `bindGroup`), oldest use first. */
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly ids = new WeakMap<object, number>();
  /** The shader code of each pipeline `pipeline()` returned (a meta runtime's are stand-ins). */
  private readonly shaders = new WeakMap<object, string>();
  private nextId = 1;

  /** Dispatches so far, when recording (always in a meta runtime). */
  records: DispatchRecord[] | null = null;
  /**
   * Module keys whose outputs to keep (see `capture`), and what was kept: the output
   * of the last dispatch run under that key or under any key below it.
   */
  private captureKeys: readonly string[] = [];
  private readonly captured = new Map<string, Tensor>();

  private constructor(
    readonly device: GPUDevice,
    opened: Omit<Awaited<ReturnType<typeof openDevice>>, 'device' | 'adapter'>,
    /** A meta runtime has no device: tensors are shapes only and dispatches are only recorded. */
    readonly meta = false,
  ) {
    this.features = opened.features;
    this.limits = opened.limits;
    this.adapterName = opened.adapterName;
    this.subgroupMinSize = opened.subgroupMinSize;
    this.subgroupMaxSize = opened.subgroupMaxSize;
    if (opened.subgroupProbe) this.subgroupProbe = opened.subgroupProbe;
    this.featureLevel = opened.featureLevel;
    this.uniforms = new UniformArena(device);
    if (meta) this.records = [];
    else {
      void device.lost.then((info) => {
        this.lost = info.message || String(info.reason);
      });
    }
  }

  static async create(gpu: GPU, options?: OpenDeviceOptions): Promise<Runtime> {
    const opened = await openDevice(gpu, options);
    return new Runtime(opened.device, opened);
  }

  /**
   * A runtime with no GPU: a forward pass on it allocates nothing and runs nothing,
   * but records every dispatch with its output shape and MACs, and the live-bytes
   * counters still track memory. `summary` and planning use it; weights need no data.
   */
  static meta(
    limits: Partial<Record<RaisedLimit, number>> = {},
    subgroups: { subgroupMinSize: number; subgroupMaxSize: number } = { subgroupMinSize: 0, subgroupMaxSize: 0 },
  ): Runtime {
    const unlimited = Number.MAX_SAFE_INTEGER;
    const all = {
      maxStorageBufferBindingSize: unlimited, maxBufferSize: unlimited, maxComputeWorkgroupStorageSize: unlimited,
      maxComputeInvocationsPerWorkgroup: unlimited, maxComputeWorkgroupSizeX: unlimited, maxComputeWorkgroupSizeY: unlimited,
      maxComputeWorkgroupSizeZ: unlimited, maxComputeWorkgroupsPerDimension: unlimited, maxStorageBuffersPerShaderStage: unlimited,
      ...limits,
    };
    const features = { f16: true, timestamps: false, subgroups: false };
    return new Runtime(null as unknown as GPUDevice, { features, limits: all, adapterName: 'meta (no device)', featureLevel: 'core', ...subgroups }, true);
  }

  // ---- tensors -----------------------------------------------------------

  /** An uninitialised tensor from the pool. */
  empty(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    const bytes = numel(shape) * BYTES_PER_ELEMENT[dtype];
    if (bytes > this.limits.maxStorageBufferBindingSize) {
      throw new Error(
        `tensor [${shape.join(', ')}] needs ${bytes} bytes, over this adapter's maxStorageBufferBindingSize ` +
          `(${this.limits.maxStorageBufferBindingSize})`,
      );
    }
    const buffer = this.meta ? ({ size: bucketSize(bytes) } as GPUBuffer) : this.acquire(this.pool, bytes, STORAGE, 'tensor');
    this.counters.liveTensors++;
    this.counters.liveBytes += buffer.size;
    this.counters.peakLiveBytes = Math.max(this.counters.peakLiveBytes, this.counters.liveBytes);
    return new Tensor(this, buffer, [...shape], dtype);
  }

  /**
   * A tensor holding `data`; with dtype 'f16' the values are rounded to half precision
   * (nearest even), or given as half-precision bits already (a Uint16Array).
   */
  upload(values: Float32Array | Uint16Array, shape: readonly number[], dtype: DType = 'f32'): Tensor {
    if (values.length !== numel(shape)) {
      throw new Error(`upload: ${values.length} values do not fill shape [${shape.join(', ')}]`);
    }
    if (dtype === 'f16' && !this.features.f16) throw new Error("upload: f16 tensors need the adapter's shader-f16 feature");
    if (values instanceof Uint16Array && dtype !== 'f16') throw new Error(`upload: half-precision bits for a ${dtype} tensor`);
    if (this.meta) return this.empty(shape, dtype);
    const data = values instanceof Uint16Array ? values : dtype === 'f16' ? toFloat16Bits(values) : values;
    const t = this.empty(shape, dtype);
    if (!this.encoder) {
      // writeBuffer wants a multiple of 4 bytes: an odd count of f16 values is padded.
      const padded = data.byteLength % 4 === 0 ? data : copyPadded(data);
      this.device.queue.writeBuffer(t.buffer, 0, padded.buffer, padded.byteOffset, padded.byteLength);
      return t;
    }
    // Work is pending and the pooled buffer may be read by it: a queue write would
    // land before that work runs. Copy through a staging buffer in stream order instead.
    const bytes = Math.ceil(data.byteLength / 4) * 4;
    const staging = this.device.createBuffer({ size: bytes, usage: 0x4 | 0x2 /* COPY_SRC | MAP_WRITE */, mappedAtCreation: true });
    new Uint8Array(staging.getMappedRange(), 0, data.byteLength).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    staging.unmap();
    this.encoder.copyBufferToBuffer(staging, 0, t.buffer, 0, bytes);
    this.afterSubmit.push(staging);
    return t;
  }

  /** Called by `Tensor.dispose()`. Later dispatches may reuse the buffer at once: queue order keeps it safe. */
  release(t: Tensor): void {
    this.counters.liveTensors--;
    this.counters.liveBytes -= t.buffer.size;
    if (!this.meta) this.giveBack(this.pool, t.buffer);
  }

  /** Copies a tensor back to the CPU; the wait leaves the CPU to the device (see `quietly`). */
  read(t: Tensor): Promise<Float32Array> {
    return this.readLater(t);
  }

  /**
   * `read`, split so that more work can be recorded and submitted while this one runs
   * (a pipeline of video frames): the copy is recorded and submitted now, and the
   * tensor may be disposed at once (its buffer is reused only by work queued after the
   * copy); the returned promise waits for the data.
   */
  readLater(t: Tensor): Promise<Float32Array> {
    t.assertLive();
    if (this.meta) return Promise.reject(new Error('read: a meta runtime holds no data'));
    const bytes = t.byteLength;
    const staging = this.acquire(this.stagingPool, bytes, MAP_READ_DST, 'readback');
    this.commandEncoder().copyBufferToBuffer(t.buffer, 0, staging, 0, bytes);
    this.flush();
    return this.mapped(staging, bytes);
  }

  private async mapped(staging: GPUBuffer, bytes: number): Promise<Float32Array> {
    const started = performance.now();
    try {
      await quietly(() => staging.mapAsync(0x1 /* GPUMapMode.READ */, 0, bytes));
    } catch (e) {
      this.throwIfLost();
      throw e;
    }
    this.lastWaitMs = performance.now() - started;
    const out = new Float32Array(staging.getMappedRange(0, bytes).slice(0));
    staging.unmap();
    this.giveBack(this.stagingPool, staging);
    return out;
  }

  // ---- pipelines -----------------------------------------------------------

  /** A compute pipeline for `code`, cached by the code and its override constants. */
  pipeline(code: string, constants: Record<string, number> = {}, entryPoint = 'main'): GPUComputePipeline {
    if (this.meta) {
      // A stand-in per shader, so that records can say which shader each dispatch ran.
      let byCode = this.pipelines.get(code);
      if (!byCode) this.pipelines.set(code, (byCode = new Map()));
      let stub = byCode.get('');
      if (!stub) {
        byCode.set('', (stub = {} as GPUComputePipeline));
        this.shaders.set(stub, code);
      }
      return stub;
    }
    // Keyed by the code itself, not by a string built from it: kernels pass the same
    // (memoized) string each time, whose hash V8 keeps, where a new key string of a
    // generated conv shader (tens of KB) would be hashed again on every dispatch.
    let byCode = this.pipelines.get(code);
    if (!byCode) this.pipelines.set(code, (byCode = new Map()));
    const key = `${entryPoint}|${JSON.stringify(constants)}`;
    let p = byCode.get(key);
    if (!p) {
      const t0 = performance.now();
      let module = this.modules.get(code);
      if (!module) {
        module = this.device.createShaderModule({ code });
        this.modules.set(code, module);
      }
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint, constants } });
      byCode.set(key, p);
      this.shaders.set(p, code);
      this.counters.pipelinesCreated++;
      this.counters.pipelineMs += performance.now() - t0;
    }
    return p;
  }

  // ---- command batching ------------------------------------------------------

  /**
   * Runs `fn` with `name` (a module's checkpoint key, e.g. `pretrained.layer3.22.conv2`)
   * in front of every dispatch label, so traces and profiles say which layer ran what.
   */
  withScope<T>(name: string, fn: () => T): T {
    const prev = this.scope;
    this.scope = name;
    try {
      return fn();
    } finally {
      this.scope = prev;
    }
  }

  dispatch(args: DispatchArgs): void {
    this.throwIfLost();
    const label = this.scope ? `${this.scope}: ${args.label}` : args.label;
    const [x, y = 1, z = 1] = args.workgroups;
    if (this.records) {
      const out = args.buffers.at(-1);
      const first = args.buffers[0];
      this.records.push({
        scope: this.scope,
        kernel: args.label,
        output: out instanceof Tensor ? out.shape : [],
        input: first instanceof Tensor ? first.shape : [],
        workgroups: [x, y, z],
        macs: args.macs ?? 0,
        shader: this.shaders.get(args.pipeline) ?? '',
      });
    }
    if (this.meta) {
      this.counters.dispatches++;
      return;
    }
    const buffers = args.buffers.map((b) => (b instanceof Tensor ? (b.assertLive(), b.buffer) : b));
    const bindGroup = this.bindGroup(args.pipeline, buffers, args.uniforms && this.uniforms.push(args.uniforms));
    const max = this.limits.maxComputeWorkgroupsPerDimension;
    if (x > max || y > max || z > max) {
      throw new Error(`${args.label}: ${x}x${y}x${z} workgroups exceed maxComputeWorkgroupsPerDimension ${max}`);
    }
    const pass = this.commandEncoder().beginComputePass({
      label,
      timestampWrites: this.profiler?.passWrites(label),
    });
    pass.setPipeline(args.pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    pass.end();
    if (this.captureKeys.length) this.keepOutput(args);
    this.counters.dispatches++;
    // console.error: stderr in Node, the console in a browser.
    if (this.trace) console.error(`[midas] ${label}  workgroups ${x}x${y}x${z}`);
  }

  /**
   * The bind group for these buffers, from the cache when the same pipeline was bound
   * to the same buffers before. A repeated forward pass at one input size makes the
   * same allocations from the pool and the same uniform pushes in the same order, so it
   * gets back the same buffers and offsets, and creates no bind group at all.
   */
  private bindGroup(pipeline: GPUComputePipeline, buffers: GPUBuffer[], uniforms?: GPUBufferBinding): GPUBindGroup {
    let key = `${this.id(pipeline)}`;
    for (const b of buffers) key += `,${this.id(b)}`;
    if (uniforms) key += `|${this.id(uniforms.buffer)}@${uniforms.offset}+${uniforms.size}`;
    let group = this.bindGroups.get(key);
    if (group) {
      // Map order is the LRU order: move this one to the newest end.
      this.bindGroups.delete(key);
    } else {
      const entries: GPUBindGroupEntry[] = buffers.map((buffer, i) => ({ binding: i, resource: { buffer } }));
      if (uniforms) entries.push({ binding: entries.length, resource: uniforms });
      group = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
      this.counters.bindGroupsCreated++;
      if (this.bindGroups.size >= BIND_GROUP_CACHE) this.bindGroups.delete(this.bindGroups.keys().next().value!);
    }
    this.bindGroups.set(key, group);
    return group;
  }

  private id(o: object): number {
    let id = this.ids.get(o);
    if (id === undefined) this.ids.set(o, (id = this.nextId++));
    return id;
  }

  /** Submits everything recorded since the last flush as one command buffer. */
  flush(): void {
    if (!this.encoder || this.meta) return;
    this.profiler?.resolve(this.encoder);
    this.uniforms.upload();
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    for (const b of this.afterSubmit) b.destroy();
    this.afterSubmit = [];
    this.counters.submits++;
  }

  /** Flushes and waits until the GPU has finished everything submitted. */
  async sync(): Promise<void> {
    if (this.meta) return;
    this.flush();
    await quietly(() => this.device.queue.onSubmittedWorkDone());
    this.throwIfLost();
  }

  /**
   * Compiles `codes` ahead of their first real dispatch: one dispatch of each, of one
   * workgroup, with zero parameters on scratch buffers (every loop bound and size is
   * then 0: nothing is computed). Drivers that compile a pipeline at its first dispatch
   * (lavapipe) compile it on the device's own thread once `submit` is called, while the
   * caller goes on (e.g. reading weights); with Mesa's shader cache, a second device on
   * the same adapter compiles in parallel and this one finds its work in the cache.
   *
   * This creates the pipelines and records the dispatches; the returned `submit` sends
   * them and resolves once the device has run them. Create every device's pipelines
   * before submitting any: lavapipe creates a pipeline under its queue's lock, which
   * its queue thread holds while it compiles. A shader that fails here is left to its
   * real dispatch, which reports it.
   */
  prepareWarmUp(codes: readonly string[]): () => Promise<void> {
    if (this.meta || codes.length === 0) return async () => {};
    const scratch = new Map<string, GPUBuffer>();
    const buffer = (kind: 'uniform' | 'storage', binding: number): GPUBuffer => {
      const key = `${kind}${binding}`;
      let b = scratch.get(key);
      if (!b) {
        // Zeroed by WebGPU; large enough for any params block or fixed-size array of ours.
        b = this.device.createBuffer({ size: WARM_BUFFER_BYTES, usage: kind === 'uniform' ? 0x40 /* UNIFORM */ : 0x80 /* STORAGE */, label: `warm-up ${key}` });
        scratch.set(key, b);
      }
      return b;
    };
    const commands: { buffer: GPUCommandBuffer; error: Promise<GPUError | null> }[] = [];
    for (const code of codes) {
      // A command buffer each: a shader that fails validation spoils only its own.
      this.device.pushErrorScope('validation');
      const pipeline = this.pipeline(code);
      const entries = shaderBindings(code).map(({ binding, kind }) => ({ binding, resource: { buffer: buffer(kind, binding) } }));
      const encoder = this.device.createCommandEncoder({ label: 'warm-up' });
      const pass = encoder.beginComputePass({ label: 'warm-up' });
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }));
      pass.dispatchWorkgroups(1);
      pass.end();
      commands.push({ buffer: encoder.finish(), error: this.device.popErrorScope() });
    }
    return async () => {
      for (const c of commands) this.device.queue.submit([c.buffer]);
      await quietly(() => this.device.queue.onSubmittedWorkDone());
      await Promise.all(commands.map((c) => c.error));
      for (const b of scratch.values()) b.destroy();
    };
  }

  /**
   * Keeps a copy of the output of every module in `keys` (checkpoint key prefixes such
   * as `pretrained.layer2` or `scratch.refinenet1`) during the next forward passes:
   * the output of the last dispatch under each key. `takeCaptured` returns them.
   */
  capture(keys: readonly string[]): void {
    this.captureKeys = [...keys];
  }

  /** The kept outputs by key (the caller owns and disposes them); stops capturing. */
  takeCaptured(): Map<string, Tensor> {
    const out = new Map(this.captured);
    this.captured.clear();
    this.captureKeys = [];
    return out;
  }

  private keepOutput(args: DispatchArgs): void {
    const out = args.buffers.at(-1);
    if (!(out instanceof Tensor)) return;
    for (const key of this.captureKeys) {
      if (this.scope !== key && !this.scope.startsWith(`${key}.`)) continue;
      this.captured.get(key)?.dispose();
      const copy = this.empty(out.shape, out.dtype);
      this.commandEncoder().copyBufferToBuffer(out.buffer, 0, copy.buffer, 0, out.byteLength);
      this.captured.set(key, copy);
    }
  }

  // ---- profiling ---------------------------------------------------------------

  /** Starts timing every compute pass with timestamp queries (needs the feature). */
  startProfile(): boolean {
    if (!this.features.timestamps || this.meta) return false;
    this.flush();
    this.profiler = new Profiler(this.device);
    return true;
  }

  /** Stops profiling and returns each pass's GPU time in ms, in dispatch order. */
  async stopProfile(): Promise<Timing[]> {
    const p = this.profiler;
    if (!p) return [];
    this.flush(); // resolves the last passes' queries
    this.profiler = null;
    return p.read();
  }

  // ---- bookkeeping ---------------------------------------------------------------

  stats(): RuntimeStats {
    let pooledBuffers = 0;
    let pooledBytes = 0;
    for (const list of this.pool.values()) {
      pooledBuffers += list.length;
      for (const b of list) pooledBytes += b.size;
    }
    return { ...this.counters, pooledBuffers, pooledBytes, bindGroupsCached: this.bindGroups.size, shaderModules: this.modules.size };
  }

  /** Frees pooled buffers (live tensors stay). */
  trim(): void {
    for (const list of [...this.pool.values(), ...this.stagingPool.values()]) {
      for (const b of list) b.destroy();
    }
    this.counters.allocatedBuffers -= [...this.pool.values(), ...this.stagingPool.values()].reduce((n, l) => n + l.length, 0);
    this.pool.clear();
    this.stagingPool.clear();
    // Cached groups may name the buffers just destroyed; none can be bound again.
    this.bindGroups.clear();
  }

  destroy(): void {
    if (this.meta) return;
    this.trim();
    this.uniforms.destroy();
    this.device.destroy();
  }

  private commandEncoder(): GPUCommandEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    return this.encoder;
  }

  private acquire(pool: Map<number, GPUBuffer[]>, bytes: number, usage: number, label: string): GPUBuffer {
    const size = bucketSize(bytes);
    const list = pool.get(size);
    const reused = list?.pop();
    if (reused) return reused;
    if (size > this.limits.maxBufferSize) {
      throw new Error(`${label}: ${size} bytes exceed this adapter's maxBufferSize (${this.limits.maxBufferSize})`);
    }
    this.counters.allocatedBuffers++;
    return this.device.createBuffer({ size, usage, label });
  }

  private giveBack(pool: Map<number, GPUBuffer[]>, buffer: GPUBuffer): void {
    let list = pool.get(buffer.size);
    if (!list) pool.set(buffer.size, (list = []));
    list.push(buffer);
  }

  private throwIfLost(): void {
    if (this.lost !== null) throw new Error(`WebGPU device lost: ${this.lost}`);
  }
}

const WARM_BUFFER_BYTES = 4096;

/** The group-0 bindings a shader of ours declares, uniform or storage (the convention of `dispatch`). */
export function shaderBindings(code: string): { binding: number; kind: 'uniform' | 'storage' }[] {
  const found: { binding: number; kind: 'uniform' | 'storage' }[] = [];
  for (const m of code.matchAll(/@group\(0\)\s*@binding\((\d+)\)\s*var<\s*(uniform|storage)\b/g)) {
    found.push({ binding: Number(m[1]), kind: m[2] as 'uniform' | 'storage' });
  }
  return found.sort((a, b) => a.binding - b.binding);
}

function copyPadded(data: Uint16Array | Float32Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(data.byteLength / 4) * 4);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return out;
}

/**
 * Bind groups kept: a forward pass binds about 140 (134 network dispatches at 384, see
 * docs/ARCHITECTURE.md), so this holds the groups of many input sizes while bounding
 * what a long run of different sizes can keep alive.
 */
const BIND_GROUP_CACHE = 4096;

/** Buffers are pooled by size rounded up to 256 bytes, so a repeated forward pass reuses them exactly. */
function bucketSize(bytes: number): number {
  return Math.max(256, Math.ceil(bytes / 256) * 256);
}
