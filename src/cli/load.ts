// Loading the model for a command: weights resolved (downloaded, converted) with
// progress bars on a terminal and one-line notes of what happens.
import type { MidasConfig } from '../midas/config.js';
import type { Precision } from '../midas/network.js';
import { loadMidas, type MidasModel } from '../node/load.js';
import { ProgressBar } from './progress.js';

export interface CliLoadOptions {
  weights: string | undefined;
  config: MidasConfig;
  size: number;
  precision?: Precision;
  quiet: boolean;
}

export async function loadWithProgress(o: CliLoadOptions): Promise<MidasModel> {
  const download = new ProgressBar({ label: 'downloading', total: 0, unit: 'bytes' });
  const convert = new ProgressBar({ label: 'converting', total: 0, unit: 'bytes' });
  try {
    return await loadMidas({
      weights: o.weights,
      config: o.config,
      size: o.size,
      precision: o.precision,
      log: o.quiet ? undefined : (line) => console.error(line),
      onDownload: o.quiet ? undefined : (done, total) => download.update(done, '', total),
      onConvert: o.quiet ? undefined : (p) => convert.update(p.bytesDone, `${p.tensorsDone}/${p.tensorsTotal} tensors`, p.bytesTotal),
    });
  } finally {
    download.clear();
    convert.clear();
  }
}
