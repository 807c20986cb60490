// The worker thread behind src/node/conv_packer.ts. It opens the weights file while the
// main thread opens the GPU device, then, once it has the jobs, reads each conv's
// weights and re-lays them out (`packConvWeight`) into a buffer it transfers to the
// main thread, in the jobs' order, while the main thread writes earlier ones to the
// GPU. It packs ahead up to `budget` bytes; the main thread hands each buffer back
// once written, and a returned buffer is reused for any job it fits.
import { receiveMessageOnPort, workerData } from 'node:worker_threads';
import { packConvWeight } from '../kernels/conv2d_tiled.js';
import { toFloat16Bits } from '../nn/half.js';
import { weightValues } from '../nn/module.js';
import { BOOTED, packedLength, READY, RETURNED, STARTED, type PackMessage, type PackWorkerData, type ToWorker, type WorkerJob } from './pack_protocol.js';
import { StreamedSafetensors } from './streamed.js';

const { file, budget, signal, port } = workerData as PackWorkerData;
const counters = new Int32Array(signal);
Atomics.store(counters, BOOTED, 1);
Atomics.notify(counters, BOOTED);
const free: ArrayBuffer[] = [];
/** Bytes of the buffers made and not dropped: packed and out, or returned and free. */
let held = 0;

function post(message: PackMessage, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
  Atomics.add(counters, READY, 1);
  Atomics.notify(counters, READY);
}

/** The next message from the main thread, waiting on `counter` for it. */
function receive(counter: number): ToWorker {
  for (;;) {
    const seen = Atomics.load(counters, counter);
    const got = receiveMessageOnPort(port);
    if (got) return got.message as ToWorker;
    Atomics.wait(counters, counter, seen);
  }
}

/**
 * A buffer of at least `bytes`: a returned one that fits, else a new one within the
 * budget (dropping returned ones too small, to make room), else the next one returned.
 */
function bufferFor(bytes: number): ArrayBuffer {
  for (;;) {
    for (let got = receiveMessageOnPort(port); got; got = receiveMessageOnPort(port)) free.push(got.message as ArrayBuffer);
    const fits = free.findIndex((b) => b.byteLength >= bytes);
    if (fits >= 0) return free.splice(fits, 1)[0]!;
    if (held + bytes > budget) {
      for (const b of free) held -= b.byteLength;
      free.length = 0;
    }
    if (held === 0 || held + bytes <= budget) {
      held += bytes;
      return new ArrayBuffer(bytes);
    }
    free.push(receive(RETURNED) as ArrayBuffer);
  }
}

let scratch = new Float32Array(0);

function packAll(source: StreamedSafetensors, jobs: WorkerJob[]): void {
  for (const [index, job] of jobs.entries()) {
    const entry = source.entry(job.tensor);
    if (entry.shape.join(',') !== job.shape.join(',')) {
      throw new Error(`${file}: tensor '${job.tensor}' changed shape while loading (was the file replaced?)`);
    }
    const values = weightValues(entry);
    const n = packedLength(job);
    const buffer = bufferFor((job.f16 ? 2 : 4) * n);
    if (job.f16) {
      // Packed into memory this thread keeps, then rounded into the buffer that travels.
      if (scratch.length < n) scratch = new Float32Array(n);
      const packed = packConvWeight(values, job.shape, job.groups, job.tile, job.scale, scratch).data;
      toFloat16Bits(packed, `${file}: tensor '${job.tensor}'`, new Uint16Array(buffer, 0, n));
    } else {
      packConvWeight(values, job.shape, job.groups, job.tile, job.scale, new Float32Array(buffer, 0, n));
    }
    post({ index, buffer }, [buffer]);
  }
}

try {
  const source = StreamedSafetensors.open(file);
  try {
    const start = receive(STARTED);
    if (start instanceof ArrayBuffer) throw new Error('pack worker: a buffer came before the jobs');
    packAll(source, start.jobs);
  } finally {
    source.close();
  }
} catch (e) {
  post({ error: e instanceof Error ? e.message : String(e) });
}
