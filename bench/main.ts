// The bench entry point: `node dist/bench/main.js <mode> [options]`.
//   kernels [--json out.json] [--quick] [--filter text] [--spin] [--no-timestamps] [--wait-quiet s]
import { runKernels } from './kernels.js';

const USAGE = `usage: node dist/bench/main.js kernels [--json out.json] [--quick] [--filter text]
                                          [--spin] [--no-timestamps] [--wait-quiet s]

  kernels   every WGSL kernel at MiDaS's 384x384 shapes, against the adapter's
            measured FMA ceiling and copy bandwidth
  --json    where to write the results (default bench/results-kernels.json)
  --quick   a reduced subset, one timed run each (a smoke test, < 60 s)
  --filter  only cases whose group or name contains the text
  --spin    await the GPU at once after each submit instead of sleeping first; Dawn
            then polls on the main thread and takes a CPU core from lavapipe
  --no-timestamps
            time by wall clock around each submit instead of timestamp queries
  --wait-quiet s
            before each case wait up to s seconds until other processes leave the
            CPU idle (lavapipe computes on the CPU: a busy machine skews timings)`;

interface Args {
  mode: string | undefined;
  json: string | undefined;
  quick: boolean;
  filter: string | undefined;
  spin: boolean;
  noTimestamps: boolean;
  waitQuietS: number | undefined;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { mode: undefined, json: undefined, quick: false, filter: undefined, spin: false, noTimestamps: false, waitQuietS: undefined };
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
    else if (a === '--no-timestamps') args.noTimestamps = true;
    else if (a === '--wait-quiet') {
      args.waitQuietS = Number(value());
      if (!(args.waitQuietS >= 0)) throw new Error('--wait-quiet needs a number of seconds');
    }
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
  switch (args.mode) {
    case 'kernels':
      await runKernels({
        json: args.json ?? 'bench/results-kernels.json',
        quick: args.quick,
        filter: args.filter,
        spin: args.spin,
        noTimestamps: args.noTimestamps,
        waitQuietS: args.waitQuietS,
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
