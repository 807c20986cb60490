// `--shard K/N`: this run's share of the inputs, so N independent jobs (a Slurm array,
// a Kubernetes Indexed Job) split a corpus with no coordinator: each takes every N-th
// input of the sorted list, starting at the K-th.
import { UsageError } from './command.js';

export interface Shard {
  /** 0-based, below `count`. */
  index: number;
  count: number;
}

export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text);
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!(count >= 1 && index >= 0 && index < count && Number.isSafeInteger(count))) {
    throw new UsageError(`--shard must be K/N with 0 <= K < N, e.g. 0/4 (got '${text}')`);
  }
  return { index, count };
}

/**
 * The inputs of shard K of N: sorted (by code unit, the same on every machine and
 * locale) and de-duplicated, then every N-th from the K-th. The N shards together hold
 * every input exactly once.
 */
export function takeShard(inputs: readonly string[], shard: Shard): string[] {
  const sorted = [...new Set(inputs)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return sorted.filter((_, i) => i % shard.count === shard.index);
}
