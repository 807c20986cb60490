// One first run, in a process of its own, as a new user's first `midas predict` meets
// it: `bench e2e --cold` starts this with MESA_SHADER_CACHE_DIR pointed at an empty
// folder (or, for the warm-cache row, at the folder the cold run filled).
//
//   node dist/bench/cold-child.js WEIGHTS.safetensors SIZE SPAWNED_AT_EPOCH_MS [--no-warm-up] [--main-thread-packing]
//
// Prints one JSON object (ColdRun) on stdout. The steps are loadMidas's, unrolled so
// each can be timed: open the file and read its header (which network; its tensors are
// read when used: src/node/streamed.ts) and start the thread that re-lays out the
// convs' weights (src/node/conv_packer.ts: it boots while the device opens), open the
// device, start the shader warm-up (src/node/warm.ts: plan, helper devices, submit),
// check the file's tensors against the network, read the BatchNorms and biases and
// fold BN (CPU), read and re-lay out each conv's weights (in the packing thread) and
// queue them (main thread), wait for the upload, wait for the
// warm-up's compiling, then the first predict (with --no-warm-up it creates the
// pipelines, and drivers that compile at the first dispatch, as lavapipe does, compile
// them in it), then a second predict on the same image (the forward alone).
import { performance } from 'node:perf_hooks';
import { createMidas } from '../src/midas/model.js';
import { midasWeights, modelForWeights } from '../src/midas/weights.js';
import { Runtime } from '../src/nn/runtime.js';
import { chooseGpu } from '../src/node/adapters.js';
import { startWarmUp } from '../src/node/warm.js';
import { StreamedSafetensors } from '../src/node/streamed.js';
import { WorkerConvPacker } from '../src/node/conv_packer.js';
import { watchThread, type ThreadUsage } from './machine.js';
import { testImage } from './test-image.js';

export interface ColdRun {
  model: string;
  size: number;
  adapter: string;
  /** Whether the shaders were compiled ahead (loadMidas's default), and on how many helper devices. */
  warmUp: boolean;
  helpers: number;
  /** Convs whose weights the packing thread re-laid out (0 with --main-thread-packing: the main thread did all). */
  packedInThread: number;
  /** ms from the parent's spawn to this process's first line (Node's start, module loading). */
  processStart: number;
  /** ms of each step, in order. */
  steps: {
    readHeader: number;
    openDevice: number;
    startWarmUp: number;
    openWeights: number;
    foldBatchNorm: number;
    packAndQueue: number;
    uploadWait: number;
    compileWait: number;
    firstPredict: number;
    secondPredict: number;
  };
  /** From the parent's spawn to the first depth map in hand. */
  toFirstDepth: number;
  /** The weights from the file to the GPU: read, fold, re-layout and queue, upload (the device already open). */
  weightsReady: number;
  /** Pipelines the first predict created, their distinct shaders, the host ms their creation took. */
  pipelines: { created: number; shaders: number; ms: number };
  /**
   * What the main thread spent while the weights were read, folded, packed and queued
   * (`watchThread`): the first write to a GPU buffer's pages faults each of them in, on
   * the thread that writes. null where Linux's per-thread counters are not there.
   */
  weightsMainThread: ThreadUsage | null;
}

async function main(): Promise<void> {
  const startedAt = Date.now();
  const [file, sizeText, spawnedText, ...flags] = process.argv.slice(2);
  if (!file || !sizeText || !spawnedText) throw new Error('usage: cold-child.js WEIGHTS SIZE SPAWNED_AT_EPOCH_MS [--no-warm-up] [--main-thread-packing]');
  const warmUp = !flags.includes('--no-warm-up');
  const packingThread = !flags.includes('--main-thread-packing');
  const size = Number(sizeText);
  let t = performance.now();
  const lap = (): number => {
    const now = performance.now();
    const ms = now - t;
    t = now;
    return ms;
  };

  // As loadMidas: the header says which network, and the packing thread starts.
  const source = StreamedSafetensors.open(file);
  const packer = packingThread ? new WorkerConvPacker(source) : undefined;
  const { info, config } = modelForWeights(source.shapes().keys(), file, undefined, undefined);
  const readHeader = lap();

  const gpu = await chooseGpu(undefined);
  const runtime = await Runtime.create(gpu);
  const openDevice = lap();

  const warm = warmUp ? await startWarmUp(runtime, gpu, config, size, 'f32') : { done: Promise.resolve(), helpers: 0 };
  const startWarm = lap();

  const weightsThread = watchThread();
  const weights = midasWeights(source, config);
  const openWeights = lap();

  const marks: Record<string, number> = {};
  const midas = await createMidas(runtime, weights, { size, config, packer, onLoadStep: (step) => (marks[step] = lap()) }, true);
  source.close();
  const uploadWait = lap();
  const weightsMainThread = weightsThread();
  await warm.done;
  const compileWait = lap();

  const image = testImage(size);
  await midas.predict(image);
  const firstPredict = lap();
  await midas.predict(image);
  const secondPredict = lap();

  const processStart = startedAt - Number(spawnedText);
  const steps = {
    readHeader,
    openDevice,
    startWarmUp: startWarm,
    openWeights,
    foldBatchNorm: marks['folded'] ?? NaN,
    packAndQueue: marks['uploaded'] ?? NaN,
    uploadWait,
    compileWait,
    firstPredict,
    secondPredict,
  };
  const stats = runtime.stats();
  const run: ColdRun = {
    model: info.name,
    size,
    adapter: runtime.adapterName,
    warmUp,
    helpers: warm.helpers,
    packedInThread: packer?.jobsInWorker ?? 0,
    processStart,
    steps,
    toFirstDepth: processStart + Object.values(steps).reduce((a, b) => a + b, 0) - steps.secondPredict,
    weightsReady: steps.openWeights + steps.foldBatchNorm + steps.packAndQueue + steps.uploadWait,
    pipelines: { created: stats.pipelinesCreated, shaders: stats.shaderModules, ms: stats.pipelineMs },
    weightsMainThread,
  };
  midas.dispose();
  runtime.destroy();
  process.stdout.write(JSON.stringify(run) + '\n');
}

main().catch((e: unknown) => {
  console.error(`cold-child: ${(e as Error).message}`);
  process.exit(1);
});
