// What `midas info --all` and `midas info --check` print.
import type { SelfCheckResult, VariantResult } from '../midas/selfcheck.js';
import type { AdapterSurvey } from '../node/adapter_report.js';

const mib = (b: number) => (b >= 2 ** 30 && b % 2 ** 30 === 0 ? `${b / 2 ** 30} GiB` : b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(0)} MiB` : `${b}`);
const BYTE_LIMITS = new Set(['maxStorageBufferBindingSize', 'maxBufferSize']);

export function printSurvey(s: AdapterSurvey): void {
  console.log(`${s.adapters.length} adapter(s), in Dawn's order:`);
  s.adapters.forEach((a, i) => {
    console.log('');
    console.log(`${i + 1}. ${a.name}  [${a.backend}${a.fallback ? ', software' : ''}]${i === s.defaultIndex ? '  <- the default' : ''}`);
    console.log(`   ${a.label}`);
    console.log(`   subgroups: ${a.subgroups[0] ? `${a.subgroups[0]}-${a.subgroups[1]} lanes` : 'no'}`);
    console.log(`   features:  ${a.features.join(' ')}`);
    console.log(`   limits:    ${Object.entries(a.limits).map(([k, v]) => `${k} ${BYTE_LIMITS.has(k) ? mib(v) : v}`).join(', ')}`);
  });
  console.log('');
  console.log(`default: ${s.defaultIndex >= 0 ? s.adapters[s.defaultIndex]!.name : 'none of these'}. ${s.why}`);
  console.log('Pick another with --adapter TEXT or MIDAS_ADAPTER=TEXT (a part of its name, any case).');
}

const exp = (x: number) => (x === 0 ? '0' : Number.isFinite(x) ? x.toExponential(1) : 'inf');

export const printCheck = {
  /** One variant: pass/FAIL, the kernel, how often a prediction runs it, the size checked, error and tolerance. */
  line(r: VariantResult): string {
    const head = `${r.ok ? 'pass' : 'FAIL'}  ${r.name.padEnd(48)} x${String(r.dispatches).padEnd(4)} ${(r.input.join('x') || '-').padEnd(14)}`;
    if (r.problem) return `${head} ${r.problem}`;
    return `${head} error ${exp(r.error).padEnd(8)} tolerance ${exp(r.tolerance)}`;
  },
  /** The last line: pass, or FAIL and the failed kernels; `adapter` as the header named it. */
  summary(r: SelfCheckResult, adapter: string): string {
    const failed = r.variants.filter((v) => !v.ok);
    const secs = `${(r.ms / 1000).toFixed(1)} s`;
    const of = `${r.variants.length} kernel variants (${r.dispatches} dispatches of a prediction)`;
    return failed.length
      ? `FAIL: ${failed.length} of ${of} on ${adapter}: ${failed.map((v) => v.name).join('; ')} (${secs})`
      : `pass: all ${of} on ${adapter} (${secs})`;
  },
};
