// One first run, in a process of its own, as a new user's first `midas predict` meets
// it: `bench e2e --cold` starts this with MESA_SHADER_CACHE_DIR pointed at an empty
// folder (or, for the warm-cache row, at the folder the cold run filled).
//
//   node dist/bench/cold-child.js WEIGHTS.safetensors SIZE SPAWNED_AT_EPOCH_MS
//
// Prints one JSON object (ColdRun) on stdout. The steps are loadMidas's, unrolled so
// each can be timed: read the file, open the device, fold BN (CPU), re-lay out and
// queue the weights, wait for the upload, then the first predict (pipelines created,
// and compiled by drivers that compile at the first dispatch, as lavapipe does), then
// a second predict on the same image (the forward without any compiling).
import { performance } from 'node:perf_hooks';
import { createMidas } from '../src/midas/model.js';
import { midasWeights, modelForWeights } from '../src/midas/weights.js';
import { Runtime } from '../src/nn/runtime.js';
import { chooseGpu } from '../src/node/adapters.js';
import { readSafetensors } from '../src/node/weights.js';
import { testImage } from './test-image.js';

export interface ColdRun {
  model: string;
  size: number;
  adapter: string;
  /** ms from the parent's spawn to this process's first line (Node's start, module loading). */
  processStart: number;
  /** ms of each step, in order. */
  steps: {
    readWeights: number;
    openDevice: number;
    foldBatchNorm: number;
    packAndQueue: number;
    uploadWait: number;
    firstPredict: number;
    secondPredict: number;
  };
  /** From the parent's spawn to the first depth map in hand. */
  toFirstDepth: number;
  /** The weights from the file to the GPU: read, fold, re-layout and queue, upload (the device already open). */
  weightsReady: number;
  /** Pipelines the first predict created, their distinct shaders, the host ms their creation took. */
  pipelines: { created: number; shaders: number; ms: number };
}

async function main(): Promise<void> {
  const startedAt = Date.now();
  const [file, sizeText, spawnedText] = process.argv.slice(2);
  if (!file || !sizeText || !spawnedText) throw new Error('usage: cold-child.js WEIGHTS SIZE SPAWNED_AT_EPOCH_MS');
  const size = Number(sizeText);
  let t = performance.now();
  const lap = (): number => {
    const now = performance.now();
    const ms = now - t;
    t = now;
    return ms;
  };

  const safetensors = readSafetensors(file);
  const { info, config } = modelForWeights(safetensors.names, file, undefined, undefined);
  const weights = midasWeights(safetensors, config);
  const readWeights = lap();

  const runtime = await Runtime.create(await chooseGpu(undefined));
  const openDevice = lap();

  const marks: Record<string, number> = {};
  const midas = await createMidas(runtime, weights, { size, config, onLoadStep: (step) => (marks[step] = lap()) }, true);
  const uploadWait = lap();

  const image = testImage(size);
  await midas.predict(image);
  const firstPredict = lap();
  await midas.predict(image);
  const secondPredict = lap();

  const processStart = startedAt - Number(spawnedText);
  const steps = {
    readWeights,
    openDevice,
    foldBatchNorm: marks['folded'] ?? NaN,
    packAndQueue: marks['uploaded'] ?? NaN,
    uploadWait,
    firstPredict,
    secondPredict,
  };
  const run: ColdRun = {
    model: info.name,
    size,
    adapter: runtime.adapterName,
    processStart,
    steps,
    toFirstDepth: processStart + steps.readWeights + steps.openDevice + steps.foldBatchNorm + steps.packAndQueue + steps.uploadWait + steps.firstPredict,
    weightsReady: steps.readWeights + steps.foldBatchNorm + steps.packAndQueue + steps.uploadWait,
    pipelines: { ...runtime.pipelineStats },
  };
  midas.dispose();
  runtime.destroy();
  process.stdout.write(JSON.stringify(run) + '\n');
}

main().catch((e: unknown) => {
  console.error(`cold-child: ${(e as Error).message}`);
  process.exit(1);
});
