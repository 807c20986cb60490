// Waiting for the GPU without taking a CPU core from it.
//
// Dawn's Node binding resolves WebGPU promises by polling: while one is pending it
// re-schedules a device tick with the global `setImmediate`, so an awaiting process
// spins one core flat out. On a software adapter (lavapipe) that core is one the GPU
// work runs on: a 3x3 256->256 conv at 96x96 awaited that way took 492-546 ms of GPU
// time on 2 cores, against 322-332 ms with the ticks spaced 1 ms apart.
//
// So while one of our waits is pending, `setImmediate` is replaced by a 1 ms
// `setTimeout` (and restored when the last wait ends). A result then arrives up to a
// millisecond late. Where there is no `setImmediate` (browsers, which do not poll like
// this) nothing is replaced.

type SetImmediate = (callback: (...args: unknown[]) => void, ...args: unknown[]) => unknown;

const TICK_MS = 1;
let pending = 0;
let original: SetImmediate | undefined;

function throttled(callback: (...args: unknown[]) => void, ...args: unknown[]): unknown {
  return setTimeout(callback, TICK_MS, ...args);
}

/** Runs `start` (which begins a WebGPU async operation) and awaits it with throttled polling. */
export async function quietly<T>(start: () => Promise<T>): Promise<T> {
  const g = globalThis as { setImmediate?: SetImmediate };
  if (typeof g.setImmediate !== 'function') return start();
  if (pending++ === 0) {
    original = g.setImmediate;
    g.setImmediate = throttled;
  }
  try {
    // The binding calls setImmediate as the operation starts and at each tick after it.
    return await start();
  } finally {
    if (--pending === 0) {
      g.setImmediate = original;
      original = undefined;
    }
  }
}
