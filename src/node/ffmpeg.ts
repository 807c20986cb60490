// The system's ffmpeg and ffprobe, spawned as child processes (never bundled): how
// they are found, run, and how their failures become one-line errors. Node-only.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';

/** A video that cannot be read or written, as one line naming the file. */
export class VideoError extends Error {
  override name = 'VideoError';
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`);
  }
}

/** ffmpeg or ffprobe is not on PATH. */
export class FfmpegMissingError extends Error {
  override name = 'FfmpegMissingError';
  constructor(readonly tool: 'ffmpeg' | 'ffprobe') {
    super(`video needs ${tool} (from ffmpeg), which is not on PATH: install the Debian package ffmpeg (apt-get install ffmpeg)`);
  }
}

export type Tool = 'ffmpeg' | 'ffprobe';

/** Spawns a tool; a missing executable surfaces as FfmpegMissingError from `exited`. */
export function spawnTool(tool: Tool, args: string[], stdio: StdioOptions): { child: ChildProcess; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } {
  const child = spawn(tool, args, { stdio });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', (e) => {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') reject(new FfmpegMissingError(tool));
      else reject(e);
    });
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  // A caller that stops early may never await it; the failure is reported elsewhere then.
  exited.catch(() => {});
  return { child, exited };
}

/** Runs a tool to the end, collecting its output. */
export async function runTool(tool: Tool, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { child, exited } = spawnTool(tool, args, ['ignore', 'pipe', 'pipe']);
  const out: Buffer[] = [];
  const err = new StderrTail();
  child.stdout!.on('data', (b: Buffer) => out.push(b));
  err.attach(child);
  const { code } = await exited;
  return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: err.text() };
}

/** Throws FfmpegMissingError unless both ffmpeg and ffprobe run. */
export async function checkFfmpeg(): Promise<void> {
  for (const tool of ['ffprobe', 'ffmpeg'] as const) {
    const r = await runTool(tool, ['-version']);
    if (r.code !== 0) throw new FfmpegMissingError(tool);
  }
}

/**
 * The start of a tool's stderr (at `-v error` it holds only errors), bounded so a
 * damaged hour-long file cannot fill memory with messages.
 */
export class StderrTail {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;

  attach(child: ChildProcess): void {
    child.stderr!.on('data', (b: Buffer) => {
      if (this.bytes >= 16384) return;
      this.chunks.push(b);
      this.bytes += b.length;
    });
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }

  /** The first message, without ffmpeg's `[h264 @ 0x55...]` prefixes; '' when there is none. */
  firstMessage(): string {
    return firstMessage(this.text());
  }
}

export function firstMessage(stderr: string): string {
  const line = stderr
    .split('\n')
    .map((l) => l.replace(/^(\[[^\]]*@ 0x[0-9a-f]+\] )+/, '').trim())
    .find((l) => l.length > 0);
  return line ?? '';
}
