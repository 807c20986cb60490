import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import type { Command } from './command.js';
import { UsageError } from './command.js';

const commands: Command[] = [];

/** Adds a subcommand; each lives in its own file under src/cli. */
export function register(cmd: Command): void {
  commands.push(cmd);
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function help(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'midas — MiDaS v2 monocular depth estimation on WebGPU (TypeScript + WGSL)',
    '',
    'Usage: midas <command> [options]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `midas <command> --help` for a command\'s options.',
    'Options: -h, --help  this text;  -v, --version  the version',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  await loadCommands();
  const [first, ...rest] = argv;
  if (first === undefined || first === '-h' || first === '--help' || first === 'help') {
    console.log(help());
    return first === undefined ? 2 : 0;
  }
  if (first === '-v' || first === '--version') {
    console.log(version());
    return 0;
  }
  const cmd = commands.find((c) => c.name === first);
  if (!cmd) {
    console.error(`midas: unknown command '${first}' (commands: ${commands.map((c) => c.name).join(', ')})`);
    return 2;
  }
  if (rest.includes('-h') || rest.includes('--help')) {
    console.log(cmd.usage);
    return 0;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    const err = e as Error;
    console.error(`midas ${cmd.name}: ${err.message}`);
    if (process.env['MIDAS_DEBUG'] && err.stack) console.error(err.stack);
    return err instanceof UsageError ? 2 : 1;
  }
}

/** parseArgs with our one-line error for unknown flags and missing values. */
export function parseOptions<T extends NonNullable<Parameters<typeof parseArgs>[0]>['options']>(
  argv: string[],
  options: T,
): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { values: r.values as Record<string, string | boolean | string[] | undefined>, positionals: r.positionals };
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0]!);
  }
}

/** `--size`: the transform's side, a positive multiple of 32; `fallback` (the model's size) when not given. */
export function parseSize(text: string | undefined, fallback: number): number;
export function parseSize(text: string | undefined, fallback?: number): number | undefined;
export function parseSize(text: string | undefined, fallback?: number): number | undefined {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 32 || n % 32 !== 0) throw new UsageError(`--size must be a positive multiple of 32 (got '${text}')`);
  return n;
}

async function loadCommands(): Promise<void> {
  if (commands.length) return;
  const [{ predictCommand }, { convertCommand }, { alignCommand }, { summaryCommand }, { featuresCommand }, { infoCommand }, { tuneCommand }] = await Promise.all([
    import('./predict.js'),
    import('./convert.js'),
    import('./align.js'),
    import('./summary.js'),
    import('./features.js'),
    import('./info.js'),
    import('./tune.js'),
  ]);
  register(predictCommand);
  register(convertCommand);
  register(alignCommand);
  register(summaryCommand);
  register(featuresCommand);
  register(infoCommand);
  register(tuneCommand);
}
