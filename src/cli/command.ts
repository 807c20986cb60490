/** A `midas` subcommand. `run` returns the process exit code. */
export interface Command {
  name: string;
  summary: string;
  usage: string;
  run(argv: string[]): Promise<number>;
}

/** An error the CLI prints as one line (no stack) before exiting non-zero. */
export class UsageError extends Error {
  override name = 'UsageError';
}
