// How busy the machine was with other work while a bench ran: lavapipe runs compute
// on the CPU, so another process on the same cores skews every timing.
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';

export interface MachineLoad {
  cores: number;
  /** 1-minute load average at start and end (lags: includes the minute before). */
  loadAverage1m: { start: number; end: number };
  /**
   * CPU time other processes used during the run, as a fraction of all cores'
   * time (0 = idle machine apart from the bench; 0.5 = one of two cores busy).
   * From /proc/stat minus this process's own CPU time and that of its children it
   * waited for (a benchmark run as a child process is not "other"); null where unavailable.
   */
  othersCpuShare: number | null;
}

function busyJiffies(): number | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal ...
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return total - idle;
  } catch {
    return null;
  }
}

/** CPU seconds of this process's children that have been waited for (/proc/self/stat cutime + cstime); 0 where unavailable. */
function childrenCpuS(): number {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    // Fields after the command name (which is in parentheses and may hold spaces): state is field 3.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[13]) + Number(f[14])) / 100; // cutime, cstime (fields 16, 17), USER_HZ = 100
  } catch {
    return 0;
  }
}

/** Starts watching; the returned function reports the load since the start. */
export function watchLoad(): () => MachineLoad {
  const cores = cpus().length;
  const load0 = loadavg()[0]!;
  const busy0 = busyJiffies();
  const own0 = process.cpuUsage();
  const children0 = childrenCpuS();
  const t0 = performance.now();
  return () => {
    const wallS = (performance.now() - t0) / 1000;
    const busy1 = busyJiffies();
    const own = process.cpuUsage(own0);
    let othersCpuShare: number | null = null;
    if (busy0 !== null && busy1 !== null && wallS > 0) {
      const busyS = (busy1 - busy0) / 100; // USER_HZ is 100 on Linux
      const ownS = (own.user + own.system) / 1e6 + (childrenCpuS() - children0);
      othersCpuShare = Math.min(1, Math.max(0, (busyS - ownS) / (cores * wallS)));
    }
    return { cores, loadAverage1m: { start: load0, end: loadavg()[0]! }, othersCpuShare };
  };
}

/** CPU share used by anything (this process included) over `ms`; null without /proc/stat. */
async function busyShare(ms: number): Promise<number | null> {
  const b0 = busyJiffies();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  const b1 = busyJiffies();
  if (b0 === null || b1 === null) return null;
  return (b1 - b0) / 100 / (cpus().length * ((performance.now() - t0) / 1000));
}

/**
 * Waits (up to `maxMs`) until the CPU has been under `threshold` busy for half a second,
 * with this process idle. Returns how long it waited, or null where it cannot tell.
 */
export async function waitQuiet(maxMs: number, threshold = 0.1): Promise<number | null> {
  const t0 = performance.now();
  for (;;) {
    const share = await busyShare(500);
    if (share === null) return null;
    if (share < threshold || performance.now() - t0 >= maxMs) return performance.now() - t0;
  }
}

/** A thread's minor page faults and CPU time (user, system), in ms. */
export interface ThreadUsage {
  minorFaults: number;
  userMs: number;
  systemMs: number;
}

/**
 * The calling thread's counters from Linux's /proc/thread-self/stat (fields 10, 14 and
 * 15: minflt, utime, stime, the times in USER_HZ ticks, 100 a second): where a
 * process's time goes when one of its threads pays for page faults. undefined where
 * there is no such file.
 */
export function threadUsage(): ThreadUsage | undefined {
  let stat: string;
  try {
    stat = readFileSync('/proc/thread-self/stat', 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { minorFaults: Number(f[7]), userMs: Number(f[11]) * 10, systemMs: Number(f[12]) * 10 };
}

/**
 * Starts counting the calling thread's faults and CPU time; the returned function (to
 * be called on the same thread) reports them since the start, null without Linux's counters.
 */
export function watchThread(): () => ThreadUsage | null {
  const start = threadUsage();
  return () => {
    const end = threadUsage();
    if (!start || !end) return null;
    return { minorFaults: end.minorFaults - start.minorFaults, userMs: end.userMs - start.userMs, systemMs: end.systemMs - start.systemMs };
  };
}
