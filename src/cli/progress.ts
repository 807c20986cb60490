// One progress bar for every long job of the CLI (download, convert, predict),
// drawn on stderr in place. On anything but a terminal it draws nothing.

export interface ProgressOptions {
  label: string;
  total: number;
  /** 'bytes' shows MB and MB/s; 'items' shows n/total, items/s and the time left. */
  unit: 'bytes' | 'items';
  /** What an item is called after the count (`12/300 frames`); default none. */
  noun?: string;
  stream?: NodeJS.WriteStream;
}

export class ProgressBar {
  private readonly stream: NodeJS.WriteStream;
  private readonly enabled: boolean;
  private readonly start = performance.now();
  private lastDraw = 0;
  private drawn = false;
  private finished = false;

  constructor(private readonly options: ProgressOptions) {
    this.stream = options.stream ?? process.stderr;
    this.enabled = !!this.stream.isTTY;
  }

  /** Redraws at most every 100 ms. `total` may be given late (a download learns it from the response). */
  update(done: number, note = '', total = this.options.total): void {
    if (!this.enabled || this.finished) return;
    const now = performance.now();
    if (now - this.lastDraw < 100 && done < total) return;
    this.lastDraw = now;
    const { unit, label } = this.options;
    const frac = total > 0 ? Math.min(1, done / total) : 0;
    const width = 24;
    const filled = Math.round(frac * width);
    const secs = Math.max((now - this.start) / 1000, 1e-3);
    const amount =
      unit === 'bytes'
        ? `${(done / 1e6).toFixed(1)}/${(total / 1e6).toFixed(1)} MB ${(done / 1e6 / secs).toFixed(1)} MB/s`
        : `${done}/${total}${this.options.noun ? ` ${this.options.noun}` : ''} ${(done / secs).toFixed(2)}/s${eta(done, total, secs)}`;
    const line = `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}% ${amount}${note ? ` ${note}` : ''}`;
    const cols = this.stream.columns || 100;
    this.stream.write(`\r${line.slice(0, cols - 1)}\x1b[K`);
    this.drawn = true;
    // A finished byte transfer stays on screen as a record of its size and speed.
    if (unit === 'bytes' && total > 0 && done >= total) {
      this.stream.write('\n');
      this.drawn = false;
      this.finished = true;
    }
  }

  /** Clears the bar so the next line starts clean. */
  clear(): void {
    if (this.drawn) this.stream.write('\r\x1b[K');
    this.drawn = false;
  }
}

/** ` ETA m:ss` (or h:mm:ss) at the rate so far; '' before the first item or without a total. */
export function eta(done: number, total: number, secs: number): string {
  if (!(done > 0) || !(total > done)) return '';
  const left = Math.round(((total - done) * secs) / done);
  const h = Math.floor(left / 3600);
  const m = Math.floor((left % 3600) / 60);
  const s = String(left % 60).padStart(2, '0');
  return ` ETA ${h ? `${h}:${String(m).padStart(2, '0')}` : m}:${s}`;
}
