// A ConvPacker (src/nn/packing.ts) for a weights file read tensor by tensor: a worker
// thread (src/node/pack_worker.ts) reads and packs the convs' weights while the main
// thread writes the packed ones to the GPU. The main thread blocks in `take` (a load
// is synchronous, as Module.upload is): the worker bumps a shared counter after each
// message, and the message itself is taken with receiveMessageOnPort, so no event-loop
// turn is needed. The packed buffers are transferred, not copied, and handed back
// once written. Dawn's writeBuffer cannot take a SharedArrayBuffer's memory (it
// crashed Node 20), which is why buffers travel rather than live in shared memory.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import type { ConvPackJob, ConvPacker } from '../nn/packing.js';
import { BOOTED, COUNTERS, packedLength, READY, RETURNED, STARTED, type PackMessage, type PackWorkerData, type ToWorker, type WorkerJob } from './pack_protocol.js';
import type { StreamedSafetensors } from './streamed.js';

/**
 * Packed bytes out at once (packed ahead, or being written). The worker has less to do
 * than the main thread but not at every conv (a 19 MB conv packs while small ones are
 * written), so room to run ahead pays: loading v2 with room for 3 of its largest conv
 * (57 MB), the main thread waited 0.28 s in all for packed weights; with room for 8
 * (151 MB), 0.18 s.
 */
const BUDGET = 128 * 2 ** 20;

/** With no message for this long the worker is taken to be gone (it reports its own errors). */
const STALL_MS = 60_000;

/**
 * A worker whose script has not started running this long after it was created is
 * given up on, and the main thread packs (it boots in ~70 ms on the CI machine kind).
 */
const BOOT_MS = 10_000;

export interface WorkerConvPackerOptions {
  /** Bytes of packed weights out at once (at least one conv's are). Default 128 MiB. */
  budget?: number;
  /** The worker's script (tests give a broken one); default the compiled pack_worker.js (see `workerScript`). */
  script?: URL;
  /** See BOOT_MS. */
  bootMs?: number;
}

export class WorkerConvPacker implements ConvPacker {
  private worker?: Worker;
  private port?: MessagePort;
  private counters?: Int32Array;
  private readonly order = new Map<ConvPackJob, number>();
  private next = 0;
  /** The buffer the caller was given last, handed back at the next `take`. */
  private held?: ArrayBuffer;
  private failed?: Error;
  private readonly bootMs: number;
  private readonly createdAt = performance.now();

  /**
   * Starts the worker now, so that it boots while the device opens; it opens `file` by
   * its path (`file.what`) and waits for `start`. Without the compiled worker script
   * (see `workerScript`), or with one that does not start, every job is left to the
   * caller.
   */
  constructor(
    private readonly file: StreamedSafetensors,
    options: WorkerConvPackerOptions = {},
  ) {
    const script = options.script ?? workerScript();
    const budget = options.budget ?? BUDGET;
    this.bootMs = options.bootMs ?? BOOT_MS;
    if (!script) return;
    const signal = new SharedArrayBuffer(4 * COUNTERS);
    this.counters = new Int32Array(signal);
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    const data: PackWorkerData = { file: file.what, budget, signal, port: port2 };
    // Not the parent's flags: under `node -e SCRIPT` the worker inherited `-e` and ran
    // that script instead of its own file, and never answered.
    this.worker = new Worker(script, { workerData: data, transferList: [port2], execArgv: [] });
    // Its errors come back as messages; an 'error' event would only repeat one.
    this.worker.on('error', () => {});
    this.worker.unref();
  }

  /** Jobs the worker took on (0 once it was given up on). */
  get jobsInWorker(): number {
    return this.order.size;
  }

  start(jobs: readonly ConvPackJob[]): void {
    if (!this.port || !this.counters) return;
    if (this.order.size) throw new Error('WorkerConvPacker: started twice');
    const workerJobs: WorkerJob[] = [];
    for (const job of jobs) {
      const tensor = this.file.tensorName(job.entry);
      if (tensor === undefined) continue;
      this.order.set(job, workerJobs.length);
      workerJobs.push({ tensor, shape: [...job.shape], groups: job.groups, tile: { ...job.tile }, scale: job.scale, f16: job.dtype === 'f16' });
    }
    this.send({ jobs: workerJobs }, [], STARTED);
  }

  take(job: ConvPackJob): Float32Array | Uint16Array | undefined {
    const index = this.order.get(job);
    if (index === undefined || !this.port || !this.counters) return undefined;
    if (this.failed) throw this.failed;
    if (index !== this.next) throw new Error(`WorkerConvPacker: conv ${index} taken before conv ${this.next}`);
    if (this.held) this.send(this.held, [this.held], RETURNED);
    this.held = undefined;
    let quiet = 0;
    for (;;) {
      const seen = Atomics.load(this.counters, READY);
      const got = receiveMessageOnPort(this.port);
      if (got) {
        const message = got.message as PackMessage;
        if ('error' in message) {
          this.failed = new Error(message.error);
          throw this.failed;
        }
        if (message.index !== index) throw new Error(`WorkerConvPacker: got conv ${message.index}, expected ${index}`);
        this.next++;
        this.held = message.buffer;
        const n = packedLength(job);
        return job.dtype === 'f16' ? new Uint16Array(message.buffer, 0, n) : new Float32Array(message.buffer, 0, n);
      }
      const booted = Atomics.load(this.counters, BOOTED) === 1;
      if (!booted && performance.now() - this.createdAt >= this.bootMs) {
        // Its script never ran (and cannot report why): pack here, this job and the rest.
        this.close();
        this.order.clear();
        return undefined;
      }
      const wait = booted ? 1000 : Math.min(1000, Math.max(1, this.bootMs - (performance.now() - this.createdAt)));
      if (Atomics.wait(this.counters, READY, seen, wait) === 'timed-out' && booted && (quiet += wait) >= STALL_MS) {
        this.failed = new Error(`${this.file.what}: the thread packing the weights stopped answering`);
        throw this.failed;
      }
    }
  }

  /** Stops the worker (it may not have finished: after an error, or when loading stopped early). */
  close(): void {
    this.held = undefined;
    void this.worker?.terminate();
    this.port?.close();
    this.worker = undefined;
    this.port = undefined;
  }

  private send(message: ToWorker, transfer: ArrayBuffer[], counter: number): void {
    this.port!.postMessage(message, transfer);
    Atomics.add(this.counters!, counter, 1);
    Atomics.notify(this.counters!, counter);
  }
}

/**
 * The worker's compiled script beside this module. Run from the TypeScript sources
 * (vitest), this module has no compiled neighbour: the worker is then the one in
 * dist (`npm test` builds first). undefined where neither exists.
 */
function workerScript(): URL | undefined {
  const beside = new URL('./pack_worker.js', import.meta.url);
  if (existsSync(fileURLToPath(beside))) return beside;
  const built = new URL(beside.href.replace(/\/src\/node\/pack_worker\.js$/, '/dist/src/node/pack_worker.js'));
  return existsSync(fileURLToPath(built)) ? built : undefined;
}
