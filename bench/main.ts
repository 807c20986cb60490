// The bench entry point: `node dist/bench/main.js <mode> [options]`.
//   kernels [--json out.json] [--quick] [--filter text] [--spin] [--no-timestamps] [--no-tfjs] [--wait-quiet s]
//   e2e [--model v2|v2.1|small] [--sizes 256,384,512] [--runs N] [--json out.json] [--quick] [--no-torch] [--no-ort] [--predict] [--f16] [--tune] [--wait-quiet s]
//   e2e --cold [--model NAME] [--sizes S] [--json out.json] [--cache-dir DIR]
//   e2e --video [--model NAME] [--sizes 256] [--frames N] [--runs N] [--json out.json] [--wait-quiet s]
import { MODEL_NAMES, modelByName, type ModelName } from '../src/midas/models.js';
import { runCold } from './cold.js';
import { DEFAULT_RUNS, DEFAULT_SIZES, runE2e } from './e2e.js';
import { ORT_BUDGET_MS } from './ort-peer.js';
import { runKernels } from './kernels.js';
import { DEFAULT_VIDEO_FRAMES, DEFAULT_VIDEO_SIZES, runVideoBench } from './video.js';

const USAGE = `usage: node dist/bench/main.js kernels [--json out.json] [--quick] [--filter text]
                                          [--spin] [--no-timestamps] [--no-tfjs] [--wait-quiet s]
       node dist/bench/main.js e2e [--model v2|v2.1|small] [--sizes 256,384,512] [--runs N]
                                      [--json out.json] [--quick] [--no-torch] [--no-ort]
                                      [--predict] [--f16] [--tune] [--wait-quiet s]
       node dist/bench/main.js e2e --cold [--model NAME] [--sizes S] [--json out.json]
                                      [--cache-dir DIR]
       node dist/bench/main.js e2e --video [--model NAME] [--sizes 256] [--frames N] [--runs N]
                                      [--json out.json] [--wait-quiet s]

  kernels   every WGSL kernel at MiDaS's 384x384 shapes, against the adapter's
            measured FMA ceiling and copy bandwidth
  --json    where to write the results (default bench/results-kernels.json)
  --quick   a reduced subset, one timed run each (a smoke test, < 60 s)
  --filter  only cases whose group or name contains the text
  --no-tfjs leave out the tfjs-webgpu peer rows
  --spin    await the GPU at once after each submit instead of sleeping first; Dawn
            then polls on the main thread and takes a CPU core from lavapipe
  --no-timestamps
            time by wall clock around each submit instead of timestamp queries
  --wait-quiet s
            before each case wait up to s seconds until other processes leave the
            CPU idle (lavapipe computes on the CPU: a busy machine skews timings)

  e2e       Midas.predict end to end (RGB bytes in, depth out) on S x S images with
            random weights: ms per image, a per-stage breakdown from timestamp
            queries, GFLOP/s against the FMA ceiling, peak GPU memory, and the peers
            side by side, run after ours on the same random weights: PyTorch CPU (2
            threads) and ONNX Runtime node's WebGPU EP (same adapter) and CPU EP on
            the network PyTorch exports; their outputs checked against ours
  --model   the network: ${MODEL_NAMES.join(', ')} (default v2; v2 and v2.1 are one network,
            ResNeXt-101; small is MiDaS v2.1 small, EfficientNet-Lite3)
  --sizes   input sides, multiples of 32 (default ${MODEL_NAMES.map((m) => `${m}: ${DEFAULT_SIZES[m].join(',')}`).join('; ')})
  --runs    timed runs per size after a warm-up (default ${DEFAULT_RUNS})
  --json    default bench/results-e2e.json (small: bench/results-e2e-small.json)
  --quick   256 only, 1 run, quick ceilings (unless --sizes / --runs say otherwise)
  --no-torch
            skip the PyTorch timing (it runs when /usr/bin/python3 imports torch)
  --no-ort  skip ONNX Runtime (which needs torch_e2e.py's ONNX export: /usr/bin/python3
            with torch); each EP times as many of --runs as fit in ${ORT_BUDGET_MS / 1000} s a size
  --predict time Midas.predict itself (default: the same steps, recorded by the
            bench)
  --tune    also tune the convs' tiles at the hub size (as \`midas tune\`, not saved),
            then predict there on the built-in and the tuned tiles in turn
  --f16     also run the model's hub size (v2: 384, small: 256) with precision f16
            and f16-math after the f32 sizes, against the f32 time
  --wait-quiet s
            before each phase wait up to s seconds for a quiet CPU (e2e default 20; 0: don't)

  e2e --cold
            the first prediction in a fresh process with MESA_SHADER_CACHE_DIR at an
            empty folder, with loadMidas's shader warm-up and without it, split into
            its steps (process start, header, device, warm-up, weights read, BN fold,
            re-layout and upload, compile wait, first predict, a second predict),
            then --runs rounds (default 3) of both on the caches they filled, the
            median reported. Default: the model's hub size (v2: 384, small: 256);
            --json default bench/results-cold.json (small: results-cold-small.json)
  --cache-dir DIR
            start from this shader cache folder instead of an empty one (not a
            first run: for the bench's smoke test)

  e2e --video
            a clip through the model as \`midas predict clip.mp4\` runs it (random
            weights): frames/s of a loop of Midas.predict against Midas.predictFrames
            on the same frames, and the time of ffmpeg's decode, the colour map and
            ffmpeg's encode, each on its own and as a share; then the clip file to
            file in one pass. Default: v2 and small (--model: one of them), at 256
  --frames  frames in the clip (default ${DEFAULT_VIDEO_FRAMES})
  --runs    alternating rounds of the loop and predictFrames (default 1)
  --json    default bench/results-video.json`;

interface Args {
  mode: string | undefined;
  model: ModelName;
  json: string | undefined;
  quick: boolean;
  filter: string | undefined;
  spin: boolean;
  noTfjs: boolean;
  noTimestamps: boolean;
  waitQuietS: number | undefined;
  sizes: number[] | undefined;
  runs: number | undefined;
  noTorch: boolean;
  noOrt: boolean;
  predict: boolean;
  f16: boolean;
  tune: boolean;
  video: boolean;
  cold: boolean;
  cacheDir: string | undefined;
  /** --model was given (--video then runs that model only). */
  modelGiven: boolean;
  frames: number | undefined;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { mode: undefined, model: 'v2', json: undefined, quick: false, filter: undefined, spin: false, noTfjs: false, noTimestamps: false, waitQuietS: undefined, sizes: undefined, runs: undefined, noTorch: false, noOrt: false, predict: false, f16: false, tune: false, video: false, cold: false, cacheDir: undefined, modelGiven: false, frames: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--json') args.json = value();
    else if (a.startsWith('--json=')) args.json = a.slice('--json='.length);
    else if (a === '--quick') args.quick = true;
    else if (a === '--spin') args.spin = true;
    else if (a === '--no-tfjs') args.noTfjs = true;
    else if (a === '--no-timestamps') args.noTimestamps = true;
    else if (a === '--wait-quiet') {
      args.waitQuietS = Number(value());
      if (!(args.waitQuietS >= 0)) throw new Error('--wait-quiet needs a number of seconds');
    }
    else if (a === '--sizes' || a.startsWith('--sizes=')) {
      const v = a === '--sizes' ? value() : a.slice('--sizes='.length);
      args.sizes = v.split(',').filter((x) => x !== '').map(Number);
      if (args.sizes.length === 0 || args.sizes.some((x) => !Number.isInteger(x) || x < 32 || x % 32 !== 0)) {
        throw new Error('--sizes needs comma-separated multiples of 32, e.g. 256,384,512');
      }
    }
    else if (a === '--runs' || a.startsWith('--runs=')) {
      args.runs = Number(a === '--runs' ? value() : a.slice('--runs='.length));
      if (!Number.isInteger(args.runs) || args.runs < 1) throw new Error('--runs needs a positive integer');
    }
    else if (a === '--model' || a.startsWith('--model=')) {
      args.model = modelByName(a === '--model' ? value() : a.slice('--model='.length)).name;
      args.modelGiven = true;
    }
    else if (a === '--video') args.video = true;
    else if (a === '--cold') args.cold = true;
    else if (a === '--cache-dir') args.cacheDir = value();
    else if (a === '--frames' || a.startsWith('--frames=')) {
      args.frames = Number(a === '--frames' ? value() : a.slice('--frames='.length));
      if (!Number.isInteger(args.frames) || args.frames < 2) throw new Error('--frames needs an integer of at least 2');
    }
    else if (a === '--no-torch') args.noTorch = true;
    else if (a === '--no-ort') args.noOrt = true;
    else if (a === '--predict') args.predict = true;
    else if (a === '--f16') args.f16 = true;
    else if (a === '--tune') args.tune = true;
    else if (a === '--filter') args.filter = value();
    else if (a.startsWith('--filter=')) args.filter = a.slice('--filter='.length);
    else if (a === '-h' || a === '--help') args.mode = 'help';
    else if (!a.startsWith('-') && args.mode === undefined) args.mode = a;
    else throw new Error(`unknown argument: ${a}`);
  }
  return args;
}

async function main(): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (args.frames !== undefined && !(args.mode === 'e2e' && args.video)) {
    console.error(`--frames is for e2e --video\n\n${USAGE}`);
    return 2;
  }
  switch (args.mode) {
    case 'kernels':
      await runKernels({
        json: args.json ?? 'bench/results-kernels.json',
        quick: args.quick,
        filter: args.filter,
        spin: args.spin,
        tfjs: !args.noTfjs,
        noTimestamps: args.noTimestamps,
        waitQuietS: args.waitQuietS,
      });
      return 0;
    case 'e2e':
      if (args.cold) {
        if (args.sizes && args.sizes.length !== 1) throw new Error('--cold takes one size');
        await runCold({
          model: args.model,
          size: args.sizes?.[0] ?? modelByName(args.model).size,
          json: args.json ?? (args.model === 'small' ? 'bench/results-cold-small.json' : 'bench/results-cold.json'),
          command: `npm run bench -- ${process.argv.slice(2).join(' ')}`,
          cacheDir: args.cacheDir,
          rounds: args.runs ?? 3,
        });
        return 0;
      }
      if (args.video) {
        await runVideoBench({
          models: args.modelGiven ? [args.model] : ['v2', 'small'],
          sizes: args.sizes ?? DEFAULT_VIDEO_SIZES,
          frames: args.frames ?? DEFAULT_VIDEO_FRAMES,
          runs: args.runs ?? 1,
          json: args.json ?? 'bench/results-video.json',
          waitQuietS: args.waitQuietS ?? 20,
          command: `npm run bench -- ${process.argv.slice(2).join(' ')}`,
        });
        return 0;
      }
      await runE2e({
        model: args.model,
        // Small's results beside v2's, not over them.
        json: args.json ?? (args.model === 'small' ? 'bench/results-e2e-small.json' : 'bench/results-e2e.json'),
        sizes: args.sizes ?? (args.quick ? [256] : [...DEFAULT_SIZES[args.model]]),
        runs: args.runs,
        quick: args.quick,
        torch: !args.noTorch,
        ort: !args.noOrt,
        waitQuietS: args.waitQuietS ?? 20,
        command: `npm run bench -- ${process.argv.slice(2).join(' ')}`,
        kernelsJson: 'bench/results-kernels.json',
        via: args.predict ? 'predict' : 'pipeline',
        f16: args.f16,
        tune: args.tune,
      });
      return 0;
    case 'help':
      console.log(USAGE);
      return 0;
    default:
      console.error(`${args.mode === undefined ? 'no mode given' : `unknown mode: ${args.mode}`}\n\n${USAGE}`);
      return 2;
  }
}

process.exitCode = await main();
