// Checkpoint reading (zip + legacy torch.save), the safe unpickler, conversion to
// safetensors and the browser-side loader, against the small fixtures that
// test/fixtures/weights/generate.py writes with PyTorch (expected.json beside them).
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, unlinkSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getFloat16, setFloat16 } from '@petamoriken/float16';
import {
  Checkpoint,
  PickleRefusedError,
  PickleTruncatedError,
  PyDict,
  PyTuple,
  convertCheckpoint,
  gatherStrided,
  hubHashPrefix,
  isContiguous,
  readStateDict,
  toFloat16Bits,
  unpickle,
  encodeHeader,
  planSafetensors,
} from '../tools/convert-weights/index.js';
import {
  SafetensorsError,
  SafetensorsFile,
  WeightsMismatchError,
  checkWeights,
  diffWeights,
  float16ToFloat32,
  parseSafetensorsHeader,
} from '../src/nn/safetensors.js';
import { convertCommand, defaultOutput } from '../src/cli/convert.js';
import { StreamedSafetensors } from '../src/node/streamed.js';
import { ownedValues, weightValues } from '../src/nn/module.js';
import { run } from './spawn.js';

const FIX = join(import.meta.dirname, 'fixtures', 'weights');
const PYTHON = '/usr/bin/python3';
const PWNED = '/tmp/midas-weights-test-pwned'; // what the malicious fixtures would write

interface Expected {
  format: 'zip' | 'legacy';
  wrapped: string | null;
  tensors: Record<string, { dtype: string; shape: number[]; f32?: number[]; f16?: number[]; ints?: string[] }>;
}
const EXPECTED = JSON.parse(readFileSync(join(FIX, 'expected.json'), 'utf8')) as Record<string, Expected>;
const FLOAT = new Set(['float32', 'float16', 'bfloat16', 'float64']);

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'midas-weights-'));
  if (existsSync(PWNED)) unlinkSync(PWNED);
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');
const u32 = (a: Float32Array): number[] => [...new Uint32Array(a.buffer, a.byteOffset, a.length)];

/** A fresh copy of a fixture in the temp dir (under another name if given). */
function copy(fixture: string, as = fixture): string {
  const p = join(tmp, as);
  copyFileSync(join(FIX, fixture), p);
  return p;
}

/** Files in a folder other than the given ones: no temporary leftovers. */
function leftovers(dir: string, keep: string[]): string[] {
  return readdirSync(dir).filter((f) => !keep.includes(f));
}

/**
 * A safetensors check written here from the format's description, sharing no code
 * with src/nn/safetensors.ts or the writer.
 */
function specCheck(bytes: Uint8Array): { header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>; meta: Record<string, string>; start: number } {
  const sizes: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1 };
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  expect(n).toBeLessThanOrEqual(bytes.length - 8);
  expect((8 + n) % 8).toBe(0);
  const text = Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8');
  expect(text[0]).toBe('{');
  const trimmed = text.replace(/ +$/, '');
  const header = JSON.parse(trimmed) as Record<string, unknown>;
  const meta = (header['__metadata__'] ?? {}) as Record<string, string>;
  delete header['__metadata__'];
  for (const v of Object.values(meta)) expect(typeof v).toBe('string');
  const dataLen = bytes.length - 8 - n;
  const spans: [number, number][] = [];
  for (const [name, e] of Object.entries(header as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>)) {
    expect(Object.keys(e).sort(), name).toEqual(['data_offsets', 'dtype', 'shape']);
    const es = sizes[e.dtype];
    expect(es, `${name} dtype ${e.dtype}`).toBeDefined();
    expect(e.shape.every((d) => Number.isInteger(d) && d >= 0)).toBe(true);
    const [b, en] = e.data_offsets;
    expect(en - b, name).toBe(e.shape.reduce((a, c) => a * c, 1) * es!);
    expect(b % es!, `${name} aligned`).toBe(0);
    spans.push([b, en]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  let at = 0;
  for (const [b, en] of spans) {
    expect(b).toBe(at);
    at = en;
  }
  expect(at).toBe(dataLen);
  return { header: header as never, meta, start: 8 + n };
}

function requireTorch(): void {
  const r = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(
      `${PYTHON} with torch and numpy is needed for this test (Debian: apt-get install python3-torch python3-numpy): ` +
        `${r.error?.message ?? r.stderr.trim().split('\n').pop()}`,
    );
  }
}

// ---- the unpickler -------------------------------------------------------------------

describe('unpickle', () => {
  // pickle.dumps({'a': 1, 'b': [1.5, -2, 'x', None, True, False], 'c': (1, 2, 3), 'big': 1<<70,
  //               'neg': -5, 'nested': {'k': (4,)}, 'u': 'hé世'}, protocol=p) from CPython 3.11.
  const protocols: Record<number, string> = {
    0: '286470300a56610a70310a49310a7356620a70320a286c70330a46312e350a61492d320a6156780a70340a614e614930310a614930300a617356630a70350a2849310a49320a49330a7470360a73566269670a70370a4c313138303539313632303731373431313330333432344c0a73566e65670a70380a492d350a73566e65737465640a70390a28647031300a566b0a7031310a2849340a747031320a737356750a7031330a5668e95c75346531360a7031340a732e',
    1: '7d71002858010000006171014b0158010000006271025d710328473ff80000000000004afeffffff58010000007871044e4930310a4930300a655801000000637105284b014b024b03747106580300000062696771074c313138303539313632303731373431313330333432344c0a58030000006e656771084afbffffff58060000006e657374656471097d710a58010000006b710b284b0474710c73580100000075710d580600000068c3a9e4b896710e752e',
    2: '80027d71002858010000006171014b0158010000006271025d710328473ff80000000000004afeffffff58010000007871044e88896558010000006371054b014b024b03877106580300000062696771078a0900000000000000004058030000006e656771084afbffffff58060000006e657374656471097d710a58010000006b710b4b0485710c73580100000075710d580600000068c3a9e4b896710e752e',
  };
  for (const [p, h] of Object.entries(protocols)) {
    it(`reads protocol ${p} containers and scalars`, () => {
      const { value, end } = unpickle(hex(h));
      expect(end).toBe(h.length / 2);
      expect(value).toBeInstanceOf(PyDict);
      const d = value as PyDict;
      expect([...d.keys()]).toEqual(['a', 'b', 'c', 'big', 'neg', 'nested', 'u']);
      expect(d.get('a')).toBe(1);
      expect(d.get('b')).toEqual([1.5, -2, 'x', null, true, false]);
      expect(d.get('c')).toBeInstanceOf(PyTuple);
      expect([...(d.get('c') as PyTuple)]).toEqual([1, 2, 3]);
      expect(d.get('big')).toBe(1n << 70n);
      expect(d.get('neg')).toBe(-5);
      expect([...((d.get('nested') as PyDict).get('k') as PyTuple)]).toEqual([4]);
      expect(d.get('u')).toBe('hé世');
    });
  }

  it('reads protocol 4 frames, memoize, sets and bytes', () => {
    // {'s': {1, 2}, 'f': frozenset([3])}, protocol 4
    const v = unpickle(hex('8004951a000000000000007d94288c0173948f94284b014b02908c016694284b039194752e')).value as PyDict;
    expect([...(v.get('s') as Set<unknown>)]).toEqual([1, 2]);
    expect([...(v.get('f') as Set<unknown>)]).toEqual([3]);
    // [[7], same list]: the memo shares the object.
    const shared = unpickle(hex('80025d7100285d71014b07616801652e')).value as unknown[];
    expect(shared[0]).toBe(shared[1]);
    // collections.OrderedDict([('w', 1), ('v', 2)]) by GLOBAL + REDUCE + SETITEMS
    const od = unpickle(hex('800263636f6c6c656374696f6e730a4f726465726564446963740a7100295271012858010000007771024b0158010000007671034b02752e')).value as PyDict;
    expect(od.className).toBe('collections.OrderedDict');
    expect([...od]).toEqual([['w', 1], ['v', 2]]);
  });

  it('refuses globals off the allow-list by name, before anything can run', () => {
    const cases: [string, string][] = [
      ['8002636f730a73797374656d0a5805000000746f7563688552' + '2e', 'os.system'], // GLOBAL os system; REDUCE
      ['80048c086275696c74696e738c046576616c932e', 'builtins.eval'], // STACK_GLOBAL
      ['800263706f7369780a73797374656d0a2e', 'posix.system'], // what pickling os.system really names on Linux
      ['8002635f636f646563730a656e636f64650a2e', '_codecs.encode'], // how protocol 2 pickles bytes
      ['800263746f7263680a6c6f61640a2e', 'torch.load'],
    ];
    for (const [h, name] of cases) {
      let err: unknown;
      try {
        unpickle(hex(h));
      } catch (e) {
        err = e;
      }
      expect(err, name).toBeInstanceOf(PickleRefusedError);
      expect((err as Error).message).toContain(`'${name}'`);
    }
  });

  it('reports truncation, bad opcodes and unsupported ones clearly', () => {
    expect(() => unpickle(hex('80027d7100285801000000'))).toThrow(PickleTruncatedError);
    expect(() => unpickle(hex('8002ff'))).toThrow(/unknown opcode 0xff/);
    expect(() => unpickle(hex('8002286930'))).toThrow(/INST is not supported/); // INST
    expect(() => unpickle(hex('80024b01522e'))).toThrow(/stack underflow|REDUCE/);
    expect(() => unpickle(hex('80024b014b022e'))).toThrow(/items left on the stack/);
    expect(() => unpickle(hex('8002680a2e'))).toThrow(/memo key 10/);
    expect(() => unpickle(hex('80064b012e'))).toThrow(/protocol 6/);
    // BINPERSID without a resolver
    expect(() => unpickle(hex('80024b01512e'))).toThrow(/persistent id/);
  });
});

// ---- reading checkpoints ---------------------------------------------------------------

describe('checkpoints', () => {
  for (const [file, exp] of Object.entries(EXPECTED)) {
    it(`reads ${file} (${exp.format}${exp.wrapped ? ', wrapped' : ''}) exactly`, async () => {
      const ckpt = await Checkpoint.open(join(FIX, file));
      expect(ckpt.format).toBe(exp.format);
      expect(ckpt.wrappedIn).toBe(exp.wrapped);
      await ckpt.close();
      const sd = await readStateDict(join(FIX, file));
      expect([...sd.keys()]).toEqual(Object.keys(exp.tensors));
      for (const [name, e] of Object.entries(exp.tensors)) {
        const t = sd.get(name)!;
        expect(t.dtype, name).toBe(e.dtype);
        expect(t.shape, name).toEqual(e.shape);
        const d = t.data;
        if (e.dtype === 'float32') expect(u32(d as Float32Array), name).toEqual(e.f32);
        else if (e.dtype === 'float16') expect([...(d as Uint16Array)], name).toEqual(e.f16);
        else if (e.dtype === 'bfloat16') expect([...(d as Uint16Array)].map((b) => (b << 16) >>> 0), name).toEqual(e.f32);
        else if (e.dtype === 'float64') expect(u32(Float32Array.from(d as Float64Array)), name).toEqual(e.f32);
        else expect(Array.from(d as ArrayLike<number | bigint>).map((x) => String(typeof x === 'bigint' ? x : Number(x))), name).toEqual(e.ints);
      }
    });
  }

  it('sees views, offsets and strides for what they are', async () => {
    const ckpt = await Checkpoint.open(join(FIX, 'views_zip.pt'));
    const by = new Map(ckpt.tensors.map((t) => [t.name, t]));
    expect(by.get('view_a')!.storage.key).toBe(by.get('base')!.storage.key);
    expect(by.get('view_b')!.storage.key).toBe(by.get('base')!.storage.key);
    expect(by.get('view_a')!.offset).toBe(10);
    expect(by.get('view_b')!.offset).toBe(35);
    expect(by.get('transposed')!.contiguous).toBe(false);
    expect(by.get('expanded')!.stride).toEqual([1, 0]);
    expect(by.get('base')!.contiguous).toBe(true);
    // Storages shared by several tensors count once.
    expect(ckpt.storageBytes).toBeLessThan(ckpt.tensors.reduce((a, t) => a + t.numel * 4, 0) + 60 * 4);
    await ckpt.close();
  });

  it('makes strided tensors contiguous for every element size', () => {
    expect(isContiguous([2, 3], [3, 1])).toBe(true);
    expect(isContiguous([2, 1, 3], [3, 99, 1])).toBe(true);
    expect(isContiguous([3, 2], [1, 3])).toBe(false);
    for (const es of [1, 2, 4, 8]) {
      // A 3x2 transpose of a row-major 2x3 whose element i has all bytes = i.
      const span = new Uint8Array(6 * es);
      for (let i = 0; i < 6; i++) span.fill(i, i * es, (i + 1) * es);
      const out = gatherStrided(span, es, [3, 2], [1, 3]);
      expect([...out].filter((_, i) => i % es === 0)).toEqual([0, 3, 1, 4, 2, 5]);
    }
    expect([...gatherStrided(new Uint8Array([9]), 1, [], [])]).toEqual([9]);
  });

  it('refuses malicious pickles by name and runs nothing', async () => {
    for (const [file, name] of [
      ['evil_os_system_zip.pt', 'os.system'],
      ['evil_os_system_legacy.pt', 'os.system'],
      ['evil_eval_zip.pt', 'builtins.eval'],
      ['module_zip.pt', 'torch.nn.modules.linear.Linear'],
    ]) {
      await expect(readStateDict(join(FIX, file!)), file).rejects.toThrow(new RegExp(`refused to load global '${name!.replace(/\./g, '\\.')}'`));
      const out = join(tmp, `${file}.safetensors`);
      await expect(convertCheckpoint(join(FIX, file!), out)).rejects.toBeInstanceOf(PickleRefusedError);
      expect(existsSync(out)).toBe(false);
    }
    expect(existsSync(PWNED)).toBe(false);
  });

  it('explains files that are not state_dicts or not checkpoints', async () => {
    await expect(readStateDict(join(FIX, 'list_zip.pt'))).rejects.toThrow(/holds a list .*not a state_dict/);
    await expect(readStateDict(join(FIX, 'missing_entry_zip.pt'))).rejects.toThrow(/no entry basic_zip\/data\/1 for storage '1' \(used by '0\.bias'\)/);
    writeFileSync(join(tmp, 'empty.pt'), new Uint8Array(0));
    await expect(readStateDict(join(tmp, 'empty.pt'))).rejects.toThrow(/empty/);
    writeFileSync(join(tmp, 'text.pt'), 'hello, world\n');
    await expect(readStateDict(join(tmp, 'text.pt'))).rejects.toThrow(/not a PyTorch checkpoint: it starts with 68 65 6c/);
    // A pickle without torch.save's magic number.
    writeFileSync(join(tmp, 'plain.pt'), hex('80027d71002e'));
    await expect(readStateDict(join(tmp, 'plain.pt'))).rejects.toThrow(/without torch\.save's magic number/);
    await expect(readStateDict(join(tmp, 'nonexistent.pt'))).rejects.toThrow(/ENOENT/);
  });

  it('checks storage sizes against what the pickle says', async () => {
    await expect(readStateDict(join(FIX, 'short_storage_zip.pt'))).rejects.toThrow(
      /basic_zip\/data\/0 holds 100 bytes, but storage '0' is 108 float32 \(432 bytes\)/,
    );
    await expect(readStateDict(join(FIX, 'deflated_data_zip.pt'))).rejects.toThrow(/basic_zip\/data\/0 is compressed \(method 8\)/);
    // Legacy: each storage's int64 element count must agree with the pickle.
    const ckpt = await Checkpoint.open(join(FIX, 'basic_legacy.pt'));
    const first = ckpt.tensors[0]!.storage;
    await ckpt.close();
    const bytes = Uint8Array.from(readFileSync(join(FIX, 'basic_legacy.pt')));
    new DataView(bytes.buffer).setBigInt64(first.fileOffset - 8, BigInt(first.numel + 1), true);
    writeFileSync(join(tmp, 'badcount.pt'), bytes);
    await expect(readStateDict(join(tmp, 'badcount.pt'))).rejects.toThrow(
      new RegExp(`storage '${first.key}' at byte ${first.fileOffset - 8} says ${first.numel + 1} elements, its tensors say ${first.numel}`),
    );
  });

  it('reports truncated files of both formats as truncated', async () => {
    for (const file of ['basic_zip.pt', 'basic_legacy.pt', 'dtypes_legacy.pt', 'wrapped_zip.pt', 'views_legacy.pt']) {
      const bytes = readFileSync(join(FIX, file));
      for (const keep of [1, 10, 100, Math.floor(bytes.length / 2), bytes.length - 100, bytes.length - 1]) {
        const p = join(tmp, `cut-${keep}-${file}`);
        writeFileSync(p, bytes.subarray(0, keep));
        let err: Error | undefined;
        try {
          const sd = await readStateDict(p);
          void sd;
        } catch (e) {
          err = e as Error;
        }
        expect(err, `${file} cut to ${keep} bytes`).toBeInstanceOf(Error);
        expect(err!.message, `${file} cut to ${keep}`).toMatch(keep < 2 ? /not a PyTorch checkpoint/ : /truncated/);
      }
    }
  });
});

// ---- conversion ------------------------------------------------------------------------

describe('convertCheckpoint', () => {
  for (const [file, exp] of Object.entries(EXPECTED)) {
    for (const dtype of ['f32', 'f16'] as const) {
      it(`converts ${file} to ${dtype} bit for bit`, async () => {
        const out = join(tmp, `${file}.${dtype}.safetensors`);
        const progress: number[] = [];
        const stats = await convertCheckpoint(join(FIX, file), out, { dtype, onProgress: (p) => progress.push(p.tensorsDone) });
        const bytes = readFileSync(out);
        const { header, meta } = specCheck(bytes);
        expect(meta).toEqual({
          format: 'pt',
          format_version: '1',
          source: file,
          source_sha256: sha256(join(FIX, file)),
          source_format: exp.format,
          dtype: dtype === 'f32' ? 'F32' : 'F16',
        });
        expect(stats.sha256).toBe(meta['source_sha256']);
        const floats = Object.entries(exp.tensors).filter(([, e]) => FLOAT.has(e.dtype));
        expect(Object.keys(header)).toEqual(floats.map(([k]) => k));
        expect(stats.skipped.map((s) => s.name)).toEqual(Object.entries(exp.tensors).filter(([, e]) => !FLOAT.has(e.dtype)).map(([k]) => k));
        expect(stats.tensors).toBe(floats.length);
        expect(progress[0]).toBe(0);
        expect(progress.at(-1)).toBe(floats.length);

        const file2 = SafetensorsFile.parse(bytes, out);
        for (const [name, e] of floats) {
          expect(file2.info(name).shape, name).toEqual(e.shape);
          if (dtype === 'f32') {
            const view = file2.float32(name);
            expect(view.buffer, `${name} is a view`).toBe(bytes.buffer);
            expect(u32(view), name).toEqual(e.f32);
          } else {
            expect([...file2.float16Bits(name)], name).toEqual(e.f16);
          }
        }
      });
    }
  }

  it('counts float16 underflows and refuses overflow, naming the tensor and leaving nothing behind', async () => {
    const s = await convertCheckpoint(join(FIX, 'dtypes_zip.pt'), join(tmp, 'under.safetensors'), { dtype: 'f16' });
    expect(s.f16Underflows).toBe(3); // 2^-25 (tie to 0), 1e-10, and float64's 1e-300
    const dir = mkdtempSync(join(tmp, 'overflow-'));
    const out = join(dir, 'out.safetensors');
    await expect(convertCheckpoint(join(FIX, 'f16_overflow_zip.pt'), out, { dtype: 'f16' })).rejects.toThrow(
      /tensor 'too_big': value 70000 \(element 1\) is out of float16 range/,
    );
    expect(leftovers(dir, [])).toEqual([]);
    await convertCheckpoint(join(FIX, 'f16_overflow_zip.pt'), out, { dtype: 'f32' });
    expect(leftovers(dir, ['out.safetensors'])).toEqual([]);
  });

  it('checks the sha256 prefix in a torch.hub-style name', async () => {
    expect(hubHashPrefix('weights/model-f46da743.pt')).toBe('f46da743');
    expect(hubHashPrefix('midas_v21-f6b98070.pt')).toBe('f6b98070');
    expect(hubHashPrefix('midas_v21_384.pt')).toBeNull();
    const dir = mkdtempSync(join(tmp, 'hash-'));
    const real = sha256(join(FIX, 'basic_zip.pt')).slice(0, 8);
    copyFileSync(join(FIX, 'basic_zip.pt'), join(dir, `model-${real}.pt`));
    await convertCheckpoint(join(dir, `model-${real}.pt`), join(dir, 'good.safetensors'));
    const bad = real === 'deadbeef' ? 'deadbee0' : 'deadbeef';
    copyFileSync(join(FIX, 'basic_zip.pt'), join(dir, `model-${bad}.pt`));
    await expect(convertCheckpoint(join(dir, `model-${bad}.pt`), join(dir, 'bad.safetensors'))).rejects.toThrow(
      new RegExp(`file name says it starts with ${bad}: the download is corrupt`),
    );
    expect(leftovers(dir, [`model-${real}.pt`, `model-${bad}.pt`, 'good.safetensors'])).toEqual([]);
    await convertCheckpoint(join(dir, `model-${bad}.pt`), join(dir, 'unchecked.safetensors'), { checkHash: false });
  });

  it('stops on abort without leaving a file', async () => {
    const dir = mkdtempSync(join(tmp, 'abort-'));
    const ac = new AbortController();
    ac.abort(new Error('stop'));
    await expect(convertCheckpoint(join(FIX, 'basic_zip.pt'), join(dir, 'x.safetensors'), { signal: ac.signal })).rejects.toThrow('stop');
    expect(leftovers(dir, [])).toEqual([]);
  });

  it('rounds to float16 exactly like @petamoriken/float16 setFloat16', () => {
    // Random bit patterns (every exponent), plus neighbours of every float16 value's ties.
    const n = 200_000;
    const u = new Uint32Array(n);
    let seed = 12345;
    for (let i = 0; i < n; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      u[i] = (seed ^ (seed << 13)) >>> 0;
    }
    const f = new Float32Array(u.buffer);
    for (let h = 0; h < 0x7c00; h += 7) {
      const v = getFloat16(new DataView(new Uint16Array([h]).buffer), 0, true);
      f[(h % (n / 2)) * 2] = v * (1 + 2 ** -11);
      f[(h % (n / 2)) * 2 + 1] = -v * (1 + 2 ** -11);
    }
    const finite = Float32Array.from(f, (x) => (Math.abs(x) > 65519.99 ? 1 : x));
    const { bits } = toFloat16Bits(finite, 'random');
    const dv = new DataView(new ArrayBuffer(2));
    for (let i = 0; i < n; i++) {
      setFloat16(dv, 0, finite[i]!, true);
      const want = dv.getUint16(0, true);
      if (bits[i] !== want && !(Number.isNaN(finite[i]) && (bits[i]! & 0x7c00) === 0x7c00)) {
        expect(bits[i], `element ${i} = ${finite[i]}`).toBe(want);
      }
    }
    // And back: float16ToFloat32 agrees with getFloat16 on all 65536 values.
    const all = new Uint16Array(65536).map((_, i) => i);
    const back = float16ToFloat32(all);
    for (let h = 0; h < 65536; h++) {
      const ref = getFloat16(new DataView(all.buffer), 2 * h, true);
      if (Number.isNaN(ref)) expect(Number.isNaN(back[h]!)).toBe(true);
      else expect(Object.is(back[h], ref), `0x${h.toString(16)}`).toBe(true);
    }
  });

  it('agrees with PyTorch and numpy, checked by an independent Python script', async () => {
    requireTorch();
    const pairs: string[] = [];
    for (const file of ['basic_legacy.pt', 'wrapped_zip.pt', 'views_legacy.pt', 'dtypes_zip.pt', 'dtypes_legacy.pt']) {
      for (const dtype of ['f32', 'f16']) pairs.push(join(FIX, file), join(tmp, `${file}.${dtype}.safetensors`), dtype);
    }
    const r = await run(PYTHON, [join(FIX, 'compare.py'), ...pairs]);
    expect(r.stderr + r.stdout).not.toMatch(/FAIL|Traceback/);
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(pairs.length / 3);
  });
});

// ---- the loader --------------------------------------------------------------------------

describe('SafetensorsFile', () => {
  /** A file from a header object and a data block. */
  const make = (header: unknown, data: Uint8Array | number, pad = true): Uint8Array => {
    let json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
    if (pad && json.length % 8) json = Uint8Array.from([...json, ...new Array(8 - (json.length % 8)).fill(0x20)]);
    const body = typeof data === 'number' ? new Uint8Array(data) : data;
    const out = new Uint8Array(8 + json.length + body.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
    out.set(json, 8);
    out.set(body, 8 + json.length);
    return out;
  };
  const t = (dtype: string, shape: number[], b: number, e: number) => ({ dtype, shape, data_offsets: [b, e] });

  it('parses tensors, metadata and views without copying', () => {
    const data = new Uint8Array(16 + 4);
    new Float32Array(data.buffer, 0, 4).set([1, 2, 3, 4]);
    new Uint16Array(data.buffer, 16, 2).set([0x3c00, 0xc000]); // f16 1, -2
    const bytes = make({ __metadata__: { a: 'b' }, w: t('F32', [2, 2], 0, 16), h: t('F16', [2], 16, 20) }, data);
    const f = SafetensorsFile.parse(bytes);
    expect(f.metadata).toEqual({ a: 'b' });
    expect(f.names).toEqual(['w', 'h']);
    const w = f.float32('w');
    expect([...w]).toEqual([1, 2, 3, 4]);
    expect(w.buffer).toBe(bytes.buffer);
    expect([...f.float32('h')]).toEqual([1, -2]);
    expect(() => f.float32('nope')).toThrow(/no tensor 'nope'/);
    // Also from an ArrayBuffer, and only the header from a prefix.
    expect(SafetensorsFile.parse(bytes.slice().buffer).names).toEqual(['w', 'h']);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect([...parseSafetensorsHeader(bytes.subarray(0, 8 + n), bytes.length).tensors.keys()]).toEqual(['w', 'h']);
  });

  it('streamed (StreamedSafetensors): each tensor read from the file when asked, equal to the file read whole', () => {
    const dir = mkdtempSync(join(tmpdir(), 'midas-streamed-'));
    try {
      const data = new Uint8Array(16 + 4 + 4);
      new Float32Array(data.buffer, 0, 4).set([1, 2, 3, 4]);
      new Uint16Array(data.buffer, 16, 2).set([0x3c00, 0xc000]); // f16 1, -2
      new Float32Array(data.buffer, 20, 1).set([7]);
      const bytes = make({ w: t('F32', [2, 2], 0, 16), h: t('F16', [2], 16, 20), b: t('F32', [1], 20, 24) }, data);
      const file = join(dir, 'w.safetensors');
      writeFileSync(file, bytes);
      const whole = SafetensorsFile.parse(bytes);
      const streamed = StreamedSafetensors.open(file);
      expect(streamed.shapes()).toEqual(whole.shapes());
      for (const name of ['w', 'h', 'b']) {
        const e = streamed.entry(name);
        expect('read' in e && !('data' in e)).toBe(true);
        expect(e.shape).toEqual(whole.info(name).shape);
        expect([...weightValues(e)]).toEqual([...whole.float32(name)]);
      }
      // Reads share one buffer: a kept value is a copy.
      const first = weightValues(streamed.entry('w'));
      const kept = ownedValues(streamed.entry('w'));
      weightValues(streamed.entry('b'));
      expect(first[0]).toBe(7);
      expect([...kept]).toEqual([1, 2, 3, 4]);
      expect(() => streamed.entry('nope')).toThrow(`${file}: no tensor 'nope'`);
      // A file cut short after it was opened, then closed.
      writeFileSync(file, bytes.subarray(0, bytes.length - 8));
      expect(() => weightValues(streamed.entry('b'))).toThrow(`${file}: the file ended while reading its weights`);
      streamed.close();
      expect(() => weightValues(streamed.entry('w'))).toThrow(/read after the file was closed/);
      // Errors at open name the file: missing, not safetensors.
      expect(() => StreamedSafetensors.open(join(dir, 'missing.safetensors'))).toThrow(`${join(dir, 'missing.safetensors')}: cannot read weights (ENOENT)`);
      writeFileSync(file, bytes.subarray(0, 20));
      expect(() => StreamedSafetensors.open(file)).toThrow(/runs past the data block|unaccounted|past the end/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects malformed files with clear errors', () => {
    const bad: [Uint8Array, RegExp][] = [
      [new Uint8Array(4), /too short/],
      [(() => { const b = make({}, 0); new DataView(b.buffer).setBigUint64(0, 1000n, true); return b; })(), /header length 1000 runs past the end/],
      [make('{"w": ', 0), /not valid JSON/],
      [make('[1, 2]', 0), /does not start with '\{'/],
      [make({ w: t('F33', [1], 0, 4) }, 4), /tensor 'w': unknown dtype "F33"/],
      [make({ w: t('F32', [2], 0, 4) }, 4), /hold 4 bytes, dtype F32 shape \[2\] needs 8/],
      [make({ w: t('F32', [-1], 0, 4) }, 4), /shape \[-1\]/],
      [make({ w: t('F32', [1], 4, 0) }, 4), /data_offsets \[4,0\]/],
      [make({ w: t('F32', [2], 0, 8) }, 4), /run past the data block/],
      [make({ a: t('F32', [2], 0, 8), b: t('F32', [1], 4, 8) }, 8), /overlap/],
      [make({ a: t('F32', [1], 0, 4), b: t('F32', [1], 8, 12) }, 12), /gap of 4 bytes/],
      [make({ a: t('F32', [1], 0, 4) }, 8), /4 bytes unaccounted for/],
      [make({ __metadata__: { a: 1 } }, 0), /__metadata__\.a is not a string/],
      [make({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4], extra: 1 } }, 4), /unknown field 'extra'/],
    ];
    for (const [bytes, re] of bad) {
      expect(() => SafetensorsFile.parse(bytes), String(re)).toThrow(SafetensorsError);
      expect(() => SafetensorsFile.parse(bytes), String(re)).toThrow(re);
    }
    // Unaligned F32 data still reads (copied).
    const odd = make('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', new Uint8Array(new Float32Array([5]).buffer), false);
    expect([...SafetensorsFile.parse(odd).float32('w')]).toEqual([5]);
  });

  it('checks weights against the MiDaS v2 architecture, listing the differences', () => {
    const keys = JSON.parse(readFileSync(join(FIX, 'midas_v2_keys.json'), 'utf8')) as {
      entries: number;
      numbers: number;
      keys: [string, number[], string][];
    };
    expect(keys.entries).toBe(666);
    expect(keys.keys).toHaveLength(666);
    expect(keys.keys.reduce((a, [, s]) => a + s.reduce((x, y) => x * y, 1), 0)).toBe(105_565_929);
    expect(keys.keys.filter(([k]) => k.endsWith('num_batches_tracked'))).toHaveLength(104);
    const expected = new Map(keys.keys.map(([k, s]) => [k, s]));
    // What the converter writes (the float tensors only), checked from the header alone.
    const floats = keys.keys.filter(([, , d]) => d === 'float32');
    const plan = planSafetensors(floats.map(([name, shape]) => ({ name, dtype: 'F32' as const, shape })));
    const header = encodeHeader(plan.tensors, { source: 'model-f46da743.pt' });
    const parsed = parseSafetensorsHeader(header, header.length + plan.dataBytes, 'midas.safetensors');
    expect(plan.dataBytes).toBe((105_565_929 - 104) * 4);
    const fileShapes = new Map([...parsed.tensors].map(([k, v]) => [k, v.shape]));
    expect(() => checkWeights(fileShapes, expected)).not.toThrow();
    expect(diffWeights(fileShapes, expected)).toEqual({ missing: [], unexpected: [], misshaped: [] });

    const shapes = new Map(fileShapes);
    shapes.delete('pretrained.layer1.0.weight');
    shapes.delete('scratch.output_conv.4.bias');
    shapes.set('scratch.refinenet4.resConfUnit1.conv1.weight', [256, 256, 1, 1]);
    shapes.set('extra.weight', [1]);
    const diff = diffWeights(shapes, expected);
    expect(diff.missing).toEqual(['pretrained.layer1.0.weight', 'scratch.output_conv.4.bias']);
    expect(diff.unexpected).toEqual(['extra.weight']);
    expect(diff.misshaped).toEqual([{ name: 'scratch.refinenet4.resConfUnit1.conv1.weight', expected: [256, 256, 3, 3], actual: [256, 256, 1, 1] }]);

    // checkWeights on a real (tiny) file: the error names the first few of each kind.
    const small = planSafetensors([
      { name: 'a', dtype: 'F32', shape: [2] },
      { name: 'b', dtype: 'F32', shape: [3] },
      ...Array.from({ length: 8 }, (_, i) => ({ name: `x${i}`, dtype: 'F32' as const, shape: [1] })),
    ]);
    const bytes = Uint8Array.from([...encodeHeader(small.tensors, { source: 't' }), ...new Uint8Array(small.dataBytes)]);
    const file = SafetensorsFile.parse(bytes, 'tiny.safetensors');
    const want = new Map<string, number[]>([['a', [2]], ['b', [4]], ['c', [1]], ['bn.num_batches_tracked', []]]);
    let err: unknown;
    try {
      checkWeights(file, want);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WeightsMismatchError);
    expect((err as Error).message).toBe(
      'tiny.safetensors: the weights do not match the network: 1 missing: c; 8 unexpected: x0, x1, x2, x3, x4, … (3 more); ' +
        '1 with the wrong shape: b [3] (expected [4])',
    );
    expect(() => checkWeights(file, new Map([...file.shapes()]))).not.toThrow();
  });
});

// ---- the command -------------------------------------------------------------------------

describe('midas convert', () => {
  it('writes beside the input by default, f16 on request, and prints one summary line', async () => {
    const dir = mkdtempSync(join(tmp, 'cli-'));
    const input = join(dir, 'basic_legacy.pt');
    copyFileSync(join(FIX, 'basic_legacy.pt'), input);
    expect(defaultOutput(input, 'f32')).toBe(join(dir, 'basic_legacy.safetensors'));
    expect(defaultOutput('weights/model-f46da743.pt', 'f16')).toBe(join('weights', 'model-f46da743.f16.safetensors'));
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      expect(await convertCommand.run([input])).toBe(0);
      expect(await convertCommand.run([input, '--dtype', 'f16'])).toBe(0);
      expect(await convertCommand.run([input, '-o', join(dir, 'named.safetensors'), '-q'])).toBe(0);
      expect(log).toHaveBeenCalledTimes(2);
      expect(String(log.mock.calls[0]![0])).toMatch(
        /^converted 10 tensors \(1 integer buffers left out\), 0\.0 MB legacy checkpoint → 0\.0 MB f32 in [\d.]+ s \(\d+ MB\/s\): .*basic_legacy\.safetensors$/,
      );
    } finally {
      log.mockRestore();
    }
    expect(readdirSync(dir).sort()).toEqual(['basic_legacy.f16.safetensors', 'basic_legacy.pt', 'basic_legacy.safetensors', 'named.safetensors']);
    const f16 = SafetensorsFile.parse(readFileSync(join(dir, 'basic_legacy.f16.safetensors')));
    expect(f16.info('0.weight').dtype).toBe('F16');
  });

  it('refuses bad arguments as usage errors', async () => {
    await expect(convertCommand.run([])).rejects.toThrow(/which checkpoint/);
    await expect(convertCommand.run(['a.pt', 'b.pt'])).rejects.toThrow(/one checkpoint at a time/);
    await expect(convertCommand.run([join(FIX, 'basic_zip.pt'), '--dtype', 'f8'])).rejects.toThrow(/--dtype must be f32 or f16/);
    await expect(convertCommand.run([join(tmp, 'missing.pt')])).rejects.toThrow(/no such file/);
    await expect(convertCommand.run([join(FIX, 'basic_zip.pt'), '--bogus'])).rejects.toThrow(/bogus/);
    await expect(convertCommand.run([join(FIX, 'basic_zip.pt'), '-o', join(tmp, 'no', 'such', 'x.safetensors')])).rejects.toThrow(
      /the folder .*no\/such does not exist/,
    );
    for (const args of [[], ['a.pt', 'b.pt']]) {
      await convertCommand.run(args).catch((e: Error) => expect(e.name).toBe('UsageError'));
    }
  });
});

