// Child processes for tests, awaited rather than run with spawnSync. A test worker blocked
// in spawnSync cannot answer vitest's RPC: a child that runs past 60 s (a cold shader
// cache, a full-size PyTorch reference) fails the whole run with
// 'Timeout calling "onTaskUpdate"' even though every test passed.
import { spawn, type SpawnOptions } from 'node:child_process';

export interface Finished {
  /** The exit code; null when a signal (or the timeout) ended the child. */
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Set when the child could not be started at all (a missing executable). */
  error?: Error;
}

export interface RunOptions extends Pick<SpawnOptions, 'cwd' | 'env' | 'uid' | 'gid'> {
  /** Milliseconds before the child is killed with SIGTERM. */
  timeout?: number;
}

export function run(command: string, args: string[], options: RunOptions = {}): Promise<Finished> {
  const { timeout, ...spawnOptions } = options;
  return new Promise((resolve) => {
    const child = spawn(command, args, { ...spawnOptions, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    const timer = timeout === undefined ? undefined : setTimeout(() => child.kill('SIGTERM'), timeout);
    const finish = (status: number | null, signal: NodeJS.Signals | null, error?: Error) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), ...(error ? { error } : {}) });
    };
    child.on('error', (e) => finish(null, null, e));
    child.on('close', (code, signal) => finish(code, signal));
  });
}

/** `node <script> ...args`, with the running Node. */
export function runNode(args: string[], options: RunOptions = {}): Promise<Finished> {
  return run(process.execPath, args, options);
}
