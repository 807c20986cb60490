// `node bin/midas.js ...` in a child process with its own $MIDAS_HOME, for the
// end-to-end tests that go through the command line as a user does.
import { fileURLToPath } from 'node:url';
import { runNode, type Finished } from './spawn.js';

const BIN = fileURLToPath(new URL('../bin/midas.js', import.meta.url));

export function runMidas(args: string[], home: string): Promise<Finished> {
  return runNode([BIN, ...args], { env: { ...process.env, MIDAS_HOME: home }, timeout: 600_000 });
}
