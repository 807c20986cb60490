// A JPEG decoder whose pixels are libjpeg-turbo's, bit for bit, as OpenCV's
// `cv2.imread(path, cv2.IMREAD_COLOR)` gets them (libjpeg-turbo 2.1 with its defaults:
// dct_method JDCT_ISLOW, do_fancy_upsampling TRUE, no scaling), returned as RGB.
// No Node imports: it only needs a Uint8Array.
//
// What it reads: baseline and extended sequential Huffman (SOF0/SOF1) and progressive
// Huffman (SOF2) frames of 8-bit samples with 1, 3 or 4 components and sampling
// factors 1-4; 8- and 16-bit quantization tables; restart intervals; several scans
// per frame (interleaved or not). Arithmetic coding, lossless, hierarchical and
// 12-bit frames are refused by name. Corrupt or cut-off data throws a JpegError with
// a one-line message where libjpeg would warn and fill in.
//
// The pipeline, each step libjpeg-turbo's arithmetic:
// 1. Huffman decoding into 16-bit coefficients (JCOEF is a short: values wrap as
//    libjpeg's stores do). Like libjpeg-turbo, Huffman table slots 0 and 1 that the
//    file never defines before its first scan get the standard tables of JPEG
//    Annex K.3 (Motion-JPEG frames leave them out).
// 2. Dequantization and the "islow" integer inverse DCT (see `idctBlock`).
// 3. Chroma upsampling as jdsample.c chooses it with do_fancy_upsampling on: the
//    h2v1, h1v2 and h2v2 "triangle" filters, whose context rows are the image's
//    neighbouring rows (edges replicated); box replication for other integer ratios.
//    (libjpeg-turbo's merged upsample + colour convert runs only when fancy
//    upsampling is off, so it plays no part here.)
// 4. Colour conversion (jdcolor.c): fixed-point YCbCr -> RGB, gray replicated, RGB
//    copied; CMYK (or YCCK turned into CMYK) is read as JCS_CMYK and converted the
//    way OpenCV's icvCvt_CMYK2BGR_8u_C4C3R does (inverted Adobe CMYK).
// The colour space is libjpeg's guess (jdapimin.c): JFIF marker, else the Adobe
// APP14 transform flag, else component ids 'R','G','B'; 4 components are CMYK
// unless Adobe's transform says YCCK.
//
// Progressive images whose scans never send, or never finish refining, one of the
// first nine AC coefficients of a component get libjpeg-turbo 2.1's block smoothing
// (jdcoefct.c; see `smoothComponent`). A complete progression, as encoders write by
// default, has nothing to smooth.

/** A decoding failure; the message is one line, without the file name. */
export class JpegError extends Error {
  override name = 'JpegError';
}

export interface JpegDecodeOptions {
  /** Refuse images with more pixels than this, from the frame header (default 100 megapixels). */
  maxPixels?: number;
  /**
   * Refuse files with more scans than this (default 1000; encoders write at most a
   * few dozen): each scan of a progressive file can make the decoder visit every
   * block again for a few bytes of data.
   */
  maxScans?: number;
}

export type JpegColorSpace = 'gray' | 'ycbcr' | 'rgb' | 'cmyk' | 'ycck';

/** The fields of an Adobe APP14 segment. */
export interface AdobeMarker {
  version: number;
  flags0: number;
  flags1: number;
  /** 0: no transform (RGB or CMYK), 1: YCbCr, 2: YCCK. */
  transform: number;
}

export interface JpegImage {
  width: number;
  height: number;
  /** 8-bit RGB, row-major, 3 bytes a pixel. */
  data: Uint8Array;
  /** The colour space libjpeg decided the components are in. */
  colorSpace: JpegColorSpace;
  components: number;
  progressive: boolean;
  /** A JFIF APP0 marker was seen. */
  jfif: boolean;
  /** The last Adobe APP14 marker, or null. */
  adobe: AdobeMarker | null;
  /**
   * The first APP1 segment before the image data, whatever it holds (OpenCV looks
   * only at that one for EXIF), or null. An EXIF block starts "Exif\0\0".
   */
  app1: Uint8Array | null;
  /**
   * The progressive scans left some of the first AC coefficients unsent or unrefined,
   * so the blocks were smoothed as libjpeg does (jdcoefct.c block smoothing).
   */
  smoothed: boolean;
}

export const JPEG_DEFAULT_MAX_PIXELS = 100_000_000;
export const JPEG_DEFAULT_MAX_SCANS = 1000;

/** Decodes a JPEG file's bytes to RGB as libjpeg-turbo (through OpenCV) does. */
export function decodeJpeg(bytes: Uint8Array, opts: JpegDecodeOptions = {}): JpegImage {
  return new Decoder(bytes, opts.maxPixels ?? JPEG_DEFAULT_MAX_PIXELS, opts.maxScans ?? JPEG_DEFAULT_MAX_SCANS).decode();
}

// ---- tables ------------------------------------------------------------------------

/**
 * Zigzag position -> natural (row-major) position, plus 16 extra entries of 63:
 * libjpeg's jpeg_natural_order has them so that a corrupt run length that steps past
 * the last coefficient lands on coefficient 63 instead of outside the block.
 */
const NATURAL = new Int32Array(80).fill(63);
{
  let i = 0;
  for (let s = 0; s < 15; s++) {
    // Anti-diagonal s (row + col = s), walked up-right when s is even, down-left when odd.
    const lo = Math.max(0, s - 7);
    const hi = Math.min(7, s);
    for (let t = lo; t <= hi; t++) {
      const row = s % 2 === 0 ? s - t : t;
      NATURAL[i++] = row * 8 + (s - row);
    }
  }
}

// Fixed-point constants of the islow IDCT: FIX(x) = round(x * 2^CONST_BITS), with
// CONST_BITS = 13 (jidctint.c). The products are sqrt(2) times cosine combinations.
const CONST_BITS = 13;
const PASS1_BITS = 2;
const FIX_0_298631336 = 2446; // sqrt(2) * (-c1 + c3 + c5 - c7)
const FIX_0_390180644 = 3196; // sqrt(2) * (c5 - c3), negated where used
const FIX_0_541196100 = 4433; // sqrt(2) * c6
const FIX_0_765366865 = 6270; // sqrt(2) * (c2 - c6)
const FIX_0_899976223 = 7373; // sqrt(2) * (c7 - c3), negated where used
const FIX_1_175875602 = 9633; // sqrt(2) * c3
const FIX_1_501321110 = 12299; // sqrt(2) * (c1 + c3 - c5 - c7)
const FIX_1_847759065 = 15137; // sqrt(2) * (c2 + c6), negated where used
const FIX_1_961570560 = 16069; // sqrt(2) * (-c3 - c5), negated where used
const FIX_2_053119869 = 16819; // sqrt(2) * (c1 + c3 - c5 + c7)
const FIX_2_562915447 = 20995; // sqrt(2) * (-c1 - c3), negated where used
const FIX_3_072711026 = 25172; // sqrt(2) * (c1 + c3 + c5 - c7)
// Rounding terms of DESCALE(x, n) = (x + 2^(n-1)) >> n for the two passes.
const PASS1_SHIFT = CONST_BITS - PASS1_BITS; // 11
const PASS2_SHIFT = CONST_BITS + PASS1_BITS + 3; // 18: the 2-D IDCT's 1/8 too
const PASS1_ROUND = 1 << (PASS1_SHIFT - 1);
const PASS2_ROUND = 1 << (PASS2_SHIFT - 1);

/**
 * The IDCT's output limiter: libjpeg's sample_range_limit table seen from its
 * post-IDCT entry point (+CENTERJSAMPLE), indexed by the descaled value & 1023
 * (RANGE_MASK). Values -128..127 map to 0..255; up to +511 saturate to 255, down to
 * -512 to 0 (the table wraps beyond that, as libjpeg's does).
 */
const IDCT_LIMIT = new Uint8Array(1024);
for (let i = 0; i < 1024; i++) {
  IDCT_LIMIT[i] = i < 128 ? i + 128 : i < 512 ? 255 : i < 896 ? 0 : i - 896;
}

// YCbCr -> RGB (jdcolor.c build_ycc_rgb_table): SCALEBITS = 16 fixed point,
// FIX(x) = round(x * 2^16); the R and B terms are rounded in the table, the G term's
// ONE_HALF rounding rides in the Cb table and the sum is shifted per pixel.
const SCALEBITS = 16;
const ONE_HALF = 1 << (SCALEBITS - 1);
const FIX16 = (x: number) => Math.floor(x * (1 << SCALEBITS) + 0.5);
const CR_R = new Int32Array(256);
const CB_B = new Int32Array(256);
const CR_G = new Int32Array(256);
const CB_G = new Int32Array(256);
for (let i = 0; i < 256; i++) {
  const x = i - 128;
  CR_R[i] = (FIX16(1.402) * x + ONE_HALF) >> SCALEBITS;
  CB_B[i] = (FIX16(1.772) * x + ONE_HALF) >> SCALEBITS;
  CR_G[i] = -FIX16(0.71414) * x;
  CB_G[i] = -FIX16(0.34414) * x + ONE_HALF;
}

/** Clamp to 0..255 for -256 <= v < 512 (libjpeg's sample_range_limit). */
const CLAMP = new Uint8Array(768);
for (let i = 0; i < 768; i++) CLAMP[i] = i < 256 ? 0 : i < 512 ? i - 256 : 255;

// JPEG Annex K.3 Huffman tables (16 code-length counts, then the symbols), which
// libjpeg-turbo's std_huff_tables supplies for undefined slots 0 and 1.
const STD_DC_LUMA = '00010501010101010100000000000000000102030405060708090a0b';
const STD_DC_CHROMA = '00030101010101010101010000000000000102030405060708090a0b';
const STD_AC_LUMA =
  '0002010303020403050504040000017d01020300041105122131410613516107227114328191a1082342b1c11552d1f0' +
  '2433627282090a161718191a25262728292a3435363738393a434445464748494a535455565758595a636465666768696a' +
  '737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7' +
  'c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa';
const STD_AC_CHROMA =
  '00020102040403040705040400010277000102031104052131061241510761711322328108144291a1b1c109233352f0' +
  '156272d10a162434e125f11718191a262728292a35363738393a434445464748494a535455565758595a636465666768' +
  '696a737475767778797a82838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3' +
  'c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9fa';

function fromHex(s: string): Uint8Array {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

// ---- Huffman tables ------------------------------------------------------------------

const LOOKAHEAD = 9;

interface HuffTable {
  /** Next LOOKAHEAD bits -> (code length << 8) | symbol; 0 when the code is longer. */
  lookup: Uint16Array;
  /** Largest code of each length 1..16 (-1: none); [17] a sentinel. */
  maxcode: Int32Array;
  /** Index into `values` of a code of length l, minus that length's first code. */
  valoff: Int32Array;
  values: Uint8Array;
  /** Why libjpeg would refuse the table when a scan uses it (jpeg_make_d_derived_tbl). */
  bad: string | null;
}

function buildHuffTable(counts: Uint8Array, values: Uint8Array, isDC: boolean, name: string): HuffTable {
  const t: HuffTable = {
    lookup: new Uint16Array(1 << LOOKAHEAD),
    maxcode: new Int32Array(18).fill(-1),
    valoff: new Int32Array(17),
    values,
    bad: null,
  };
  t.maxcode[17] = 0x7fffffff;
  let code = 0;
  let k = 0;
  for (let len = 1; len <= 16; len++) {
    const n = counts[len - 1]!;
    if (n) {
      t.valoff[len] = k - code;
      for (let i = 0; i < n; i++, k++, code++) {
        if (len <= LOOKAHEAD) {
          const shift = LOOKAHEAD - len;
          const entry = (len << 8) | values[k]!;
          for (let j = code << shift, end = (code + 1) << shift; j < end; j++) t.lookup[j] = entry;
        }
      }
      t.maxcode[len] = code - 1;
      // Canonical codes of a length must fit in it, and the all-ones code stays free.
      if (code >= 1 << len) t.bad = `Huffman table ${name} has too many codes of length ${len}`;
    }
    code <<= 1;
  }
  if (isDC && values.some((v) => v > 15)) t.bad = `DC Huffman table ${name} has a symbol over 15`;
  return t;
}

// ---- frame and component state ----------------------------------------------------------

interface Component {
  id: number;
  h: number;
  v: number;
  tq: number;
  /** Blocks of image data across and down (libjpeg's width_in_blocks, height_in_blocks). */
  bw: number;
  bh: number;
  /** Blocks allocated across and down: whole MCUs. */
  bstride: number;
  brows: number;
  /** Samples of image data across and down (libjpeg's downsampled_width/height). */
  dw: number;
  dh: number;
  /** The quantization table in natural order, latched at the component's first scan. */
  quantRaw: Uint16Array | null;
  /** The same as the IDCT multiplies by (16-bit, as libjpeg-turbo keeps it). */
  quant: Int32Array | null;
  /** Progressive: every block's coefficients, natural order. */
  coefs: Int16Array | null;
  /** The component's samples, bstride * 8 wide. */
  plane: Uint8Array | null;
  /** Progressive: per zigzag coefficient, the Al of the last scan that sent it (-1: none). */
  coefBits: Int8Array;
  scans: number;
  pred: number;
  dc: HuffTable | null;
  ac: HuffTable | null;
}

const SOF_UNSUPPORTED: Record<number, string> = {
  0xc3: 'lossless',
  0xc5: 'differential sequential',
  0xc6: 'differential progressive',
  0xc7: 'differential lossless',
  0xc8: 'JPEG extension (JPG)',
  0xc9: 'arithmetic-coded sequential',
  0xca: 'arithmetic-coded progressive',
  0xcb: 'arithmetic-coded lossless',
  0xcd: 'arithmetic-coded differential sequential',
  0xce: 'arithmetic-coded differential progressive',
  0xcf: 'arithmetic-coded differential lossless',
};

const MAX_DIMENSION = 65500; // libjpeg's JPEG_MAX_DIMENSION
const MAX_BLOCKS_IN_MCU = 10; // libjpeg's D_MAX_BLOCKS_IN_MCU

// Scan kinds.
const SEQUENTIAL = 0;
const DC_FIRST = 1;
const DC_REFINE = 2;
const AC_FIRST = 3;
const AC_REFINE = 4;

function hex2(v: number): string {
  return v.toString(16).padStart(2, '0');
}

function truncatedError(): JpegError {
  return new JpegError('truncated JPEG (the data ends before the end-of-image marker)');
}

function corrupt(what: string): JpegError {
  return new JpegError(`corrupt JPEG (${what})`);
}

class Decoder {
  private readonly b: Uint8Array;
  private readonly maxPixels: number;
  private readonly maxScans: number;

  private width = 0;
  private height = 0;
  private progressive = false;
  private comps: Component[] = [];
  private maxH = 1;
  private maxV = 1;
  private mcusX = 0;
  private mcusY = 0;

  private readonly quant: (Uint16Array | null)[] = [null, null, null, null];
  private readonly dcTables: (HuffTable | null)[] = [null, null, null, null];
  private readonly acTables: (HuffTable | null)[] = [null, null, null, null];
  private restartInterval = 0;
  private jfif = false;
  private adobe: AdobeMarker | null = null;
  private app1: Uint8Array | null = null;
  private sawApp1 = false;
  private scanCount = 0;

  // Entropy decoder state.
  private pos = 0;
  /** Bit buffer: the low `cnt` bits are the next ones, most significant first. */
  private acc = 0;
  private cnt = 0;
  /** A marker the bit reader ran into (-1: none), and the offset of its 0xff. */
  private marker = -1;
  private markerAt = 0;
  /** Zero bytes fed in after the marker: reading them means the data ran short. */
  private fake = 0;
  private eobrun = 0;
  private readonly block = new Int16Array(64);
  private readonly ws = new Int32Array(64);

  constructor(bytes: Uint8Array, maxPixels: number, maxScans: number) {
    this.b = bytes;
    this.maxPixels = maxPixels;
    this.maxScans = maxScans;
  }

  decode(): JpegImage {
    const b = this.b;
    if (b.length < 2 || b[0] !== 0xff || b[1] !== 0xd8) throw new JpegError('not a JPEG (no start-of-image marker)');
    let p = 2;
    for (;;) {
      // next_marker: skip stray bytes (libjpeg warns) and fill bytes, and FF 00 pairs.
      let m = 0;
      for (;;) {
        while (p < b.length && b[p] !== 0xff) p++;
        while (p < b.length && b[p] === 0xff) p++;
        if (p >= b.length) throw truncatedError();
        m = b[p++]!;
        if (m !== 0) break;
      }
      if (m === 0xd9) break; // EOI
      if ((m >= 0xd0 && m <= 0xd7) || m === 0x01) continue; // RSTn, TEM: no length, ignored
      if (m === 0xd8) throw corrupt(`a second start-of-image marker at byte ${p - 2}`);
      if (p + 2 > b.length) throw truncatedError();
      const len = (b[p]! << 8) | b[p + 1]!;
      if (len < 2) throw corrupt(`segment ff${hex2(m)} has length ${len}`);
      const end = p + len;
      if (end > b.length) throw truncatedError();
      const seg = b.subarray(p + 2, end);
      p = end;
      if (m === 0xc0 || m === 0xc1 || m === 0xc2) this.readFrame(seg, m === 0xc2);
      else if (m >= 0xc3 && m <= 0xcf && m !== 0xc4 && m !== 0xcc) {
        throw new JpegError(`unsupported JPEG coding (${SOF_UNSUPPORTED[m]}); re-save it as a baseline or progressive JPEG`);
      } else if (m === 0xc4) this.readHuffmanTables(seg);
      else if (m === 0xdb) this.readQuantTables(seg);
      else if (m === 0xdd) {
        if (seg.length !== 2) throw corrupt(`restart interval segment of length ${len}`);
        this.restartInterval = (seg[0]! << 8) | seg[1]!;
      } else if (m === 0xda) p = this.readScan(seg, p);
      else if (m >= 0xe0 && m <= 0xef) this.readApp(m, seg);
      else if (m === 0xfe || m === 0xcc || m === 0xdc) {
        // COM; DAC (arithmetic conditioning, unused with Huffman coding); DNL (ignored by libjpeg).
      } else if (m === 0xde || m === 0xdf) {
        throw new JpegError('unsupported JPEG coding (hierarchical); re-save it as a baseline or progressive JPEG');
      } else throw corrupt(`unknown marker ff${hex2(m)} at byte ${p - len - 2}`);
    }
    if (!this.comps.length || this.scanCount === 0) throw corrupt('no image data before the end-of-image marker');
    return this.finish();
  }

  // ---- markers ----------------------------------------------------------------------------

  private readApp(m: number, seg: Uint8Array): void {
    const ascii = (s: string) => s.length <= seg.length && [...s].every((ch, i) => seg[i] === ch.charCodeAt(0));
    // libjpeg's examine_app0/app14 need 14 and 12 bytes of payload.
    if (m === 0xe0 && seg.length >= 14 && ascii('JFIF\0')) this.jfif = true;
    else if (m === 0xe1 && !this.sawApp1 && this.scanCount === 0) {
      this.sawApp1 = true;
      this.app1 = seg;
    } else if (m === 0xee && seg.length >= 12 && ascii('Adobe')) {
      this.adobe = {
        version: (seg[5]! << 8) | seg[6]!,
        flags0: (seg[7]! << 8) | seg[8]!,
        flags1: (seg[9]! << 8) | seg[10]!,
        transform: seg[11]!,
      };
    }
  }

  private readFrame(seg: Uint8Array, progressive: boolean): void {
    if (this.comps.length) throw corrupt('more than one frame header');
    if (seg.length < 6) throw corrupt('short frame header');
    const precision = seg[0]!;
    const height = (seg[1]! << 8) | seg[2]!;
    const width = (seg[3]! << 8) | seg[4]!;
    const n = seg[5]!;
    if (precision !== 8) throw new JpegError(`unsupported JPEG sample precision (${precision} bits; only 8)`);
    if (height === 0) throw new JpegError('unsupported JPEG (height given by a DNL marker)');
    if (width === 0) throw corrupt('image width 0 in the frame header');
    if (width * height > this.maxPixels) {
      throw new JpegError(
        `image is ${width}x${height} (${((width * height) / 1e6).toFixed(1)} megapixels), ` +
          `over the limit of ${(this.maxPixels / 1e6).toFixed(1)} megapixels`,
      );
    }
    if (width > MAX_DIMENSION || height > MAX_DIMENSION) {
      throw new JpegError(`unsupported JPEG size ${width}x${height} (libjpeg reads at most ${MAX_DIMENSION} pixels a side)`);
    }
    if (seg.length !== 6 + 3 * n) throw corrupt(`frame header of ${seg.length} bytes for ${n} components`);
    if (n !== 1 && n !== 3 && n !== 4) throw new JpegError(`unsupported JPEG with ${n} colour components`);
    const comps: Component[] = [];
    for (let i = 0; i < n; i++) {
      const id = seg[6 + 3 * i]!;
      const hv = seg[7 + 3 * i]!;
      const h = hv >> 4;
      const v = hv & 15;
      if (h < 1 || h > 4 || v < 1 || v > 4) throw corrupt(`bad sampling factors ${h}x${v}`);
      if (comps.some((c) => c.id === id)) throw corrupt(`component id ${id} appears twice in the frame header`);
      comps.push({
        id, h, v, tq: seg[8 + 3 * i]!,
        bw: 0, bh: 0, bstride: 0, brows: 0, dw: 0, dh: 0,
        quantRaw: null, quant: null, coefs: null, plane: null, coefBits: new Int8Array(64).fill(-1),
        scans: 0, pred: 0, dc: null, ac: null,
      });
    }
    this.maxH = Math.max(...comps.map((c) => c.h));
    this.maxV = Math.max(...comps.map((c) => c.v));
    for (const c of comps) {
      // jdsample.c's choices, checked now: integer ratios only.
      if (this.maxH % c.h !== 0 || this.maxV % c.v !== 0) {
        throw new JpegError(`unsupported JPEG sampling factors (component ${c.id} is ${c.h}x${c.v} of ${this.maxH}x${this.maxV}: not an integer ratio)`);
      }
    }
    this.width = width;
    this.height = height;
    this.progressive = progressive;
    this.comps = comps;
    this.mcusX = Math.ceil(width / (8 * this.maxH));
    this.mcusY = Math.ceil(height / (8 * this.maxV));
    for (const c of comps) {
      c.dw = Math.ceil((width * c.h) / this.maxH);
      c.dh = Math.ceil((height * c.v) / this.maxV);
      c.bw = Math.ceil(c.dw / 8);
      c.bh = Math.ceil(c.dh / 8);
      c.bstride = this.mcusX * c.h;
      c.brows = this.mcusY * c.v;
    }
  }

  private readQuantTables(seg: Uint8Array): void {
    let p = 0;
    while (p < seg.length) {
      const pq = seg[p] >> 4;
      const tq = seg[p]! & 15;
      if (tq > 3) throw corrupt(`quantization table number ${tq}`);
      const size = pq ? 128 : 64;
      if (p + 1 + size > seg.length) throw corrupt('short quantization table segment');
      const table = new Uint16Array(64);
      for (let i = 0; i < 64; i++) {
        table[NATURAL[i]!] = pq ? (seg[p + 1 + 2 * i]! << 8) | seg[p + 2 + 2 * i]! : seg[p + 1 + i]!;
      }
      this.quant[tq] = table;
      p += 1 + size;
    }
  }

  private readHuffmanTables(seg: Uint8Array): void {
    let p = 0;
    while (p < seg.length) {
      if (p + 17 > seg.length) throw corrupt('short Huffman table segment');
      const tc = seg[p]! >> 4;
      const th = seg[p]! & 15;
      if (tc > 1 || th > 3) throw corrupt(`Huffman table class/number ${hex2(seg[p]!)}`);
      const counts = seg.subarray(p + 1, p + 17);
      let total = 0;
      for (let i = 0; i < 16; i++) total += counts[i]!;
      if (total > 256 || p + 17 + total > seg.length) throw corrupt('bad Huffman table');
      const values = seg.slice(p + 17, p + 17 + total);
      const name = `${tc ? 'AC' : 'DC'}${th}`;
      (tc ? this.acTables : this.dcTables)[th] = buildHuffTable(counts.slice(), values, tc === 0, name);
      p += 17 + total;
    }
  }

  // ---- scans ----------------------------------------------------------------------------

  /** Reads a scan header and its entropy-coded data; returns where the data ends. */
  private readScan(seg: Uint8Array, dataStart: number): number {
    if (!this.comps.length) throw corrupt('a scan before the frame header');
    const ns = seg[0] ?? 0;
    if (ns < 1 || ns > 4 || seg.length !== 4 + 2 * ns) throw corrupt(`scan header of ${seg.length} bytes for ${ns} components`);
    if (this.scanCount === 0) this.defaultHuffmanTables();
    const scanComps: Component[] = [];
    const tables: [number, number][] = [];
    for (let i = 0; i < ns; i++) {
      const id = seg[1 + 2 * i]!;
      const c = this.comps.find((k) => k.id === id);
      if (!c) throw corrupt(`scan names component ${id}, which the frame does not have`);
      if (scanComps.includes(c)) throw corrupt(`scan names component ${id} twice`);
      scanComps.push(c);
      tables.push([seg[2 + 2 * i]! >> 4, seg[2 + 2 * i]! & 15]);
    }
    const ss = seg[1 + 2 * ns]!;
    const se = seg[2 + 2 * ns]!;
    const ah = seg[3 + 2 * ns]! >> 4;
    const al = seg[3 + 2 * ns]! & 15;

    let kind: number;
    if (!this.progressive) {
      kind = SEQUENTIAL; // libjpeg ignores (with a warning) Ss/Se/Ah/Al that are not 0/63/0/0
      for (const c of scanComps) if (c.scans) throw corrupt(`component ${c.id} in more than one sequential scan`);
    } else {
      // jdphuff.c start_pass_phuff_decoder's checks (the ones that are errors there).
      const bad =
        (ss === 0 ? se !== 0 : se < ss || se > 63 || ns !== 1) || (ah !== 0 && al !== ah - 1) || al > 13;
      if (bad) throw corrupt(`bad progression parameters Ss=${ss} Se=${se} Ah=${ah} Al=${al}`);
      kind = ss === 0 ? (ah === 0 ? DC_FIRST : DC_REFINE) : ah === 0 ? AC_FIRST : AC_REFINE;
      for (const c of scanComps) {
        for (let k = ss; k <= se; k++) c.coefBits[k] = al;
      }
    }
    if (this.scanCount >= this.maxScans) throw new JpegError(`unsupported JPEG (more than ${this.maxScans} scans)`);
    if (kind !== AC_FIRST && kind !== AC_REFINE) {
      // Every block of a DC or sequential scan takes at least one bit: a header that
      // claims more blocks than the rest of the file can code is cut off (or a bomb),
      // and is refused before the buffers are allocated.
      const blocks = ns > 1 ? this.mcusX * this.mcusY * scanComps.reduce((s, c) => s + c.h * c.v, 0) : scanComps[0]!.bw * scanComps[0]!.bh;
      const bytes = this.b.length - dataStart;
      if (blocks > bytes * 8) {
        throw new JpegError(`truncated JPEG (${bytes} bytes are left for the ${blocks} blocks of scan ${this.scanCount + 1}, each of which takes at least a bit)`);
      }
    }
    if (ns > 1) {
      const blocks = scanComps.reduce((s, c) => s + c.h * c.v, 0);
      if (blocks > MAX_BLOCKS_IN_MCU) {
        throw new JpegError(`unsupported JPEG (sampling factors too large for an interleaved scan: ${blocks} blocks an MCU, libjpeg's limit is ${MAX_BLOCKS_IN_MCU})`);
      }
    }
    for (let i = 0; i < ns; i++) {
      const c = scanComps[i]!;
      const [td, ta] = tables[i]!;
      if (!c.quant) {
        // libjpeg latches a component's quantization table at its first scan.
        const q = c.tq < 4 ? this.quant[c.tq] : null;
        if (!q) throw corrupt(`component ${c.id} uses quantization table ${c.tq}, which is not defined`);
        c.quantRaw = q.slice();
        // libjpeg-turbo (built with SIMD) keeps the multipliers as 16-bit shorts.
        c.quant = Int32Array.from(q, (x) => (x << 16) >> 16);
      }
      c.dc = kind === SEQUENTIAL || kind === DC_FIRST ? this.huffTable(this.dcTables, td, 'DC') : null;
      c.ac = kind === SEQUENTIAL || kind === AC_FIRST || kind === AC_REFINE ? this.huffTable(this.acTables, ta, 'AC') : null;
      c.scans++;
      if (this.progressive && !c.coefs) c.coefs = new Int16Array(c.bstride * c.brows * 64);
      if (!this.progressive && !c.plane) c.plane = new Uint8Array(c.bstride * 8 * c.brows * 8);
    }
    this.scanCount++;
    return this.decodeScan(scanComps, kind, ss, se, al, dataStart);
  }

  private huffTable(tables: (HuffTable | null)[], i: number, cls: string): HuffTable {
    const t = i < 4 ? tables[i] : null;
    if (!t) throw corrupt(`a scan uses Huffman table ${cls}${i}, which is not defined`);
    if (t.bad) throw corrupt(t.bad);
    return t;
  }

  private defaultHuffmanTables(): void {
    const std = (hex: string, isDC: boolean, name: string) => {
      const all = fromHex(hex);
      return buildHuffTable(all.subarray(0, 16), all.subarray(16), isDC, name);
    };
    this.dcTables[0] ??= std(STD_DC_LUMA, true, 'DC0');
    this.dcTables[1] ??= std(STD_DC_CHROMA, true, 'DC1');
    this.acTables[0] ??= std(STD_AC_LUMA, false, 'AC0');
    this.acTables[1] ??= std(STD_AC_CHROMA, false, 'AC1');
  }

  private decodeScan(scanComps: Component[], kind: number, ss: number, se: number, al: number, start: number): number {
    this.pos = start;
    this.acc = 0;
    this.cnt = 0;
    this.marker = -1;
    this.fake = 0;
    this.eobrun = 0;
    for (const c of scanComps) c.pred = 0;
    const single = scanComps.length === 1;
    const c0 = scanComps[0]!;
    const mcusX = single ? c0.bw : this.mcusX;
    const mcusY = single ? c0.bh : this.mcusY;
    const total = mcusX * mcusY;
    const interval = this.restartInterval;
    let toGo = interval;
    let rst = 0;
    const block = this.block;
    for (let m = 0, mx = 0, my = 0; m < total; m++) {
      if (interval) {
        if (toGo === 0) {
          this.restart(rst);
          rst = (rst + 1) & 7;
          toGo = interval;
          for (const c of scanComps) c.pred = 0;
          this.eobrun = 0;
        }
        toGo--;
      }
      if (single) {
        this.decodeBlock(c0, kind, mx, my, ss, se, al, block);
      } else {
        for (let i = 0; i < scanComps.length; i++) {
          const c = scanComps[i]!;
          for (let v = 0; v < c.v; v++) {
            for (let h = 0; h < c.h; h++) this.decodeBlock(c, kind, mx * c.h + h, my * c.v + v, ss, se, al, block);
          }
        }
      }
      if (this.fake && this.fake * 8 > this.cnt) {
        throw corrupt(`the entropy-coded data of scan ${this.scanCount} ends early, at ${this.marker === 0xd9 ? 'the end-of-image marker' : `marker ff${hex2(this.marker)}`} (MCU ${m} of ${total})`);
      }
      if (++mx === mcusX) {
        mx = 0;
        my++;
      }
    }
    // Where the data ends: at the marker the reader met, or the next one.
    return this.marker >= 0 ? this.markerAt : this.pos;
  }

  private decodeBlock(c: Component, kind: number, bx: number, by: number, ss: number, se: number, al: number, block: Int16Array): void {
    if (kind === SEQUENTIAL) {
      block.fill(0);
      this.decodeSequential(c, block);
      const stride = c.bstride * 8;
      idctBlock(block, 0, c.quant!, c.plane!, by * 8 * stride + bx * 8, stride, this.ws);
      return;
    }
    const coefs = c.coefs!;
    const off = (by * c.bstride + bx) * 64;
    if (kind === DC_FIRST) {
      const t = this.decodeHuff(c.dc!);
      const pred = c.pred + (t === 0 ? 0 : this.receiveExtend(t));
      if (pred > 0x7fffffff || pred < -0x80000000) throw corrupt('DC coefficient out of range');
      c.pred = pred;
      coefs[off] = pred * (1 << al);
    } else if (kind === DC_REFINE) {
      if (this.bits(1)) coefs[off] |= 1 << al;
    } else if (kind === AC_FIRST) {
      this.decodeACFirst(c.ac!, coefs, off, ss, se, al);
    } else {
      this.decodeACRefine(c.ac!, coefs, off, ss, se, al);
    }
  }

  private decodeSequential(c: Component, block: Int16Array): void {
    const t = this.decodeHuff(c.dc!);
    const pred = c.pred + (t === 0 ? 0 : this.receiveExtend(t));
    if (pred > 0x7fffffff || pred < -0x80000000) throw corrupt('DC coefficient out of range');
    c.pred = pred;
    block[0] = pred;
    const ac = c.ac!;
    for (let k = 1; k < 64; k++) {
      const rs = this.decodeHuff(ac);
      const r = rs >> 4;
      const s = rs & 15;
      if (s) {
        k += r;
        block[NATURAL[k]!] = this.receiveExtend(s);
      } else {
        if (r !== 15) break;
        k += 15;
      }
    }
  }

  private decodeACFirst(ac: HuffTable, coefs: Int16Array, off: number, ss: number, se: number, al: number): void {
    if (this.eobrun > 0) {
      this.eobrun--;
      return;
    }
    for (let k = ss; k <= se; k++) {
      const rs = this.decodeHuff(ac);
      const r = rs >> 4;
      const s = rs & 15;
      if (s) {
        k += r;
        coefs[off + NATURAL[k]!] = this.receiveExtend(s) * (1 << al);
      } else if (r === 15) {
        k += 15;
      } else {
        this.eobrun = (1 << r) - 1;
        if (r) this.eobrun += this.bits(r);
        break;
      }
    }
  }

  private decodeACRefine(ac: HuffTable, coefs: Int16Array, off: number, ss: number, se: number, al: number): void {
    const p1 = 1 << al;
    const m1 = -1 << al;
    let k = ss;
    if (this.eobrun === 0) {
      for (; k <= se; k++) {
        const rs = this.decodeHuff(ac);
        let r = rs >> 4;
        let s = rs & 15;
        if (s) {
          if (s !== 1) throw corrupt('bad Huffman code in a refinement scan');
          s = this.bits(1) ? p1 : m1;
        } else if (r !== 15) {
          this.eobrun = 1 << r;
          if (r) this.eobrun += this.bits(r);
          break; // the rest of the block is the end-of-band run's
        }
        // Step over r zero coefficients (and the nonzero ones between them, which
        // each take a correction bit) to where the new coefficient goes.
        do {
          const i = off + NATURAL[k]!;
          const v = coefs[i]!;
          if (v !== 0) {
            if (this.bits(1) && (v & p1) === 0) coefs[i] = v >= 0 ? v + p1 : v + m1;
          } else if (--r < 0) {
            break;
          }
          k++;
        } while (k <= se);
        if (s) coefs[off + NATURAL[k]!] = s;
      }
    }
    if (this.eobrun > 0) {
      // Inside an end-of-band run: only correction bits for the nonzero coefficients.
      for (; k <= se; k++) {
        const i = off + NATURAL[k]!;
        const v = coefs[i]!;
        if (v !== 0 && this.bits(1) && (v & p1) === 0) coefs[i] = v >= 0 ? v + p1 : v + m1;
      }
      this.eobrun--;
    }
  }

  /** After a restart interval: the RSTn marker, with the bit buffer dropped. */
  private restart(n: number): void {
    this.acc = 0;
    this.cnt = 0;
    this.fake = 0;
    if (this.marker < 0) {
      // Skip to the next marker (libjpeg drops leftover bytes with a warning).
      const b = this.b;
      let p = this.pos;
      for (;;) {
        while (p < b.length && b[p] !== 0xff) p++;
        let q = p;
        while (q < b.length && b[q] === 0xff) q++;
        if (q >= b.length) throw truncatedError();
        if (b[q] !== 0) {
          this.marker = b[q]!;
          this.markerAt = q - 1;
          break;
        }
        p = q + 1;
      }
    }
    if (this.marker !== 0xd0 + n) {
      const found = this.marker === 0xd9 ? 'the end-of-image marker' : `marker ff${hex2(this.marker)}`;
      throw corrupt(`expected restart marker RST${n} in scan ${this.scanCount}, found ${found} at byte ${this.markerAt}`);
    }
    this.pos = this.markerAt + 2;
    this.marker = -1;
  }

  // ---- bit reader ------------------------------------------------------------------------

  /** Tops the bit buffer up to more than 24 bits; past a marker it feeds zero bytes. */
  private fill(): void {
    const b = this.b;
    while (this.cnt <= 24) {
      let byte = 0;
      if (this.marker < 0) {
        const p = this.pos;
        if (p >= b.length) throw new JpegError(`truncated JPEG (the data ends inside scan ${this.scanCount})`);
        byte = b[p]!;
        if (byte !== 0xff) {
          this.pos = p + 1;
        } else {
          let q = p + 1;
          while (q < b.length && b[q] === 0xff) q++;
          if (q >= b.length) throw new JpegError(`truncated JPEG (the data ends inside scan ${this.scanCount})`);
          if (b[q] === 0) {
            this.pos = q + 1; // stuffed FF 00: a data byte 0xff
          } else {
            this.marker = b[q]!;
            this.markerAt = q - 1;
            this.fake++;
            byte = 0;
          }
        }
      } else {
        this.fake++;
      }
      this.acc = (this.acc << 8) | byte;
      this.cnt += 8;
    }
  }

  private bits(n: number): number {
    if (this.cnt < n) this.fill();
    this.cnt -= n;
    return (this.acc >>> this.cnt) & ((1 << n) - 1);
  }

  /** The next `s` bits as a signed coefficient (JPEG's EXTEND), s in 1..15. */
  private receiveExtend(s: number): number {
    const v = this.bits(s);
    return v < 1 << (s - 1) ? v - (1 << s) + 1 : v;
  }

  private decodeHuff(t: HuffTable): number {
    if (this.cnt < 16) this.fill();
    const e = t.lookup[(this.acc >>> (this.cnt - LOOKAHEAD)) & ((1 << LOOKAHEAD) - 1)]!;
    if (e !== 0) {
      this.cnt -= e >> 8;
      return e & 255;
    }
    for (let len = LOOKAHEAD + 1; len <= 16; len++) {
      const code = (this.acc >>> (this.cnt - len)) & ((1 << len) - 1);
      if (code <= t.maxcode[len]!) {
        this.cnt -= len;
        return t.values[code + t.valoff[len]!]!;
      }
    }
    throw corrupt(`bad Huffman code in scan ${this.scanCount}`);
  }

  // ---- output ----------------------------------------------------------------------------

  private finish(): JpegImage {
    const { comps, width, height } = this;
    // jdcoefct.c smoothing_ok: a progressive image is smoothed when every component
    // has had a DC scan and nonzero quantizers at DC and the first 9 AC positions, and
    // some component has one of those 9 AC coefficients (zigzag 1-9) unsent or not
    // refined to its last bit.
    const smooth =
      this.progressive &&
      comps.every((c) => c.coefBits[0]! >= 0 && c.quantRaw !== null && SMOOTH_Q.every((i) => c.quantRaw![i] !== 0)) &&
      comps.some((c) => c.coefBits.subarray(1, 10).some((x) => x !== 0));
    for (const c of comps) {
      const stride = c.bstride * 8;
      if (this.progressive) {
        // IDCT every block holding image data; a component no scan reached is all zero.
        c.quant ??= new Int32Array(64);
        c.coefs ??= new Int16Array(c.bstride * c.brows * 64);
        c.plane = new Uint8Array(stride * c.brows * 8);
        if (smooth) {
          smoothComponent(c, this.mcusY, this.block, this.ws);
        } else {
          for (let by = 0; by < c.bh; by++) {
            for (let bx = 0; bx < c.bw; bx++) {
              idctBlock(c.coefs, (by * c.bstride + bx) * 64, c.quant, c.plane, by * 8 * stride + bx * 8, stride, this.ws);
            }
          }
        }
        c.coefs = null;
      } else if (!c.plane) {
        c.plane = new Uint8Array(stride * c.brows * 8).fill(128); // no scan: IDCT of zeros
      }
    }
    const colorSpace = this.colorSpace();
    const data = new Uint8Array(width * height * 3);
    convertRows(comps, width, height, this.maxH, this.maxV, colorSpace, data);
    return {
      width,
      height,
      data,
      colorSpace,
      components: comps.length,
      progressive: this.progressive,
      jfif: this.jfif,
      adobe: this.adobe,
      app1: this.app1,
      smoothed: smooth,
    };
  }

  /** jdapimin.c default_decompress_parms. */
  private colorSpace(): JpegColorSpace {
    const n = this.comps.length;
    if (n === 1) return 'gray';
    if (n === 3) {
      if (this.jfif) return 'ycbcr';
      if (this.adobe) return this.adobe.transform === 0 ? 'rgb' : 'ycbcr';
      const [a, b, c] = this.comps.map((k) => k.id);
      return a === 82 && b === 71 && c === 66 ? 'rgb' : 'ycbcr';
    }
    if (this.adobe) return this.adobe.transform === 0 ? 'cmyk' : 'ycck';
    return 'cmyk';
  }
}

// ---- inverse DCT -----------------------------------------------------------------------

/**
 * libjpeg's "islow" inverse DCT (jidctint.c): the Loeffler-Ligtenberg-Moschytz
 * factorisation (12 multiplies, 32 adds per 1-D pass) in fixed point.
 *
 * Columns first, on dequantized coefficients (coefficient x quantizer), results kept
 * scaled up by 2^PASS1_BITS: each product carries 2^CONST_BITS and the outputs are
 * DESCALEd by CONST_BITS - PASS1_BITS, rounding half up. A column whose AC terms
 * are all zero is just its DC << PASS1_BITS (what the full pass gives too). Then
 * rows, DESCALEd by CONST_BITS + PASS1_BITS + 3 (the 3 is the 2-D transform's 1/8),
 * offset by CENTERJSAMPLE (128) and limited through the range-limit table.
 *
 * Even part (inputs 0, 2, 4, 6): t0 = (x0 + x4) << CONST_BITS, t1 = (x0 - x4) <<
 * CONST_BITS; the rotation z1 = (x2 + x6) * FIX(0.541196100), t2 = z1 - x6 *
 * FIX(1.847759065), t3 = z1 + x2 * FIX(0.765366865); then t0 +- t3, t1 +- t2.
 * Odd part (inputs 7, 5, 3, 1 as a, b, c, d): z1 = a + d, z2 = b + c, z3 = a + c,
 * z4 = b + d, z5 = (z3 + z4) * FIX(1.175875602); a *= FIX(0.298631336), b *=
 * FIX(2.053119869), c *= FIX(3.072711026), d *= FIX(1.501321110), z1 *=
 * -FIX(0.899976223), z2 *= -FIX(2.562915447), z3 = z3 * -FIX(1.961570560) + z5,
 * z4 = z4 * -FIX(0.390180644) + z5; outputs a + z1 + z3, b + z2 + z4, c + z2 + z3,
 * d + z1 + z4 pair with the even part's t13, t12, t11, t10 as sum and difference.
 *
 * This is libjpeg-turbo's C code path. OpenCV on x86-64 runs its SIMD version
 * (16-bit lanes, saturating), which gives the same samples whenever no intermediate
 * leaves 16 bits: for every file an encoder makes (checked down to cjpeg -quality 1,
 * quantizers up to 6050), not for hand-edited quantization tables with AC
 * quantizers in the thousands on nonzero coefficients, where the two disagree.
 * Products and sums are exact in doubles, then shifted as 32-bit integers.
 */
function idctBlock(coef: Int16Array, co: number, q: Int32Array, out: Uint8Array, oo: number, stride: number, ws: Int32Array): void {
  // Pass 1: columns, into ws.
  for (let col = 0; col < 8; col++) {
    const i = co + col;
    if ((coef[i + 8]! | coef[i + 16]! | coef[i + 24]! | coef[i + 32]! | coef[i + 40]! | coef[i + 48]! | coef[i + 56]!) === 0) {
      const dc = coef[i]! * q[col]! * (1 << PASS1_BITS);
      ws[col] = dc;
      ws[col + 8] = dc;
      ws[col + 16] = dc;
      ws[col + 24] = dc;
      ws[col + 32] = dc;
      ws[col + 40] = dc;
      ws[col + 48] = dc;
      ws[col + 56] = dc;
      continue;
    }
    // Even part.
    const x2 = coef[i + 16]! * q[col + 16]!;
    const x6 = coef[i + 48]! * q[col + 48]!;
    const r = (x2 + x6) * FIX_0_541196100;
    const e2 = r - x6 * FIX_1_847759065;
    const e3 = r + x2 * FIX_0_765366865;
    const x0 = coef[i]! * q[col]!;
    const x4 = coef[i + 32]! * q[col + 32]!;
    const e0 = (x0 + x4) * (1 << CONST_BITS);
    const e1 = (x0 - x4) * (1 << CONST_BITS);
    const s10 = e0 + e3;
    const s13 = e0 - e3;
    const s11 = e1 + e2;
    const s12 = e1 - e2;
    // Odd part.
    const a = coef[i + 56]! * q[col + 56]!;
    const bb = coef[i + 40]! * q[col + 40]!;
    const c = coef[i + 24]! * q[col + 24]!;
    const d = coef[i + 8]! * q[col + 8]!;
    const z5 = (a + c + bb + d) * FIX_1_175875602;
    const z1 = (a + d) * -FIX_0_899976223;
    const z2 = (bb + c) * -FIX_2_562915447;
    const z3 = (a + c) * -FIX_1_961570560 + z5;
    const z4 = (bb + d) * -FIX_0_390180644 + z5;
    const o0 = a * FIX_0_298631336 + z1 + z3;
    const o1 = bb * FIX_2_053119869 + z2 + z4;
    const o2 = c * FIX_3_072711026 + z2 + z3;
    const o3 = d * FIX_1_501321110 + z1 + z4;
    ws[col] = (s10 + o3 + PASS1_ROUND) >> PASS1_SHIFT;
    ws[col + 56] = (s10 - o3 + PASS1_ROUND) >> PASS1_SHIFT;
    ws[col + 8] = (s11 + o2 + PASS1_ROUND) >> PASS1_SHIFT;
    ws[col + 48] = (s11 - o2 + PASS1_ROUND) >> PASS1_SHIFT;
    ws[col + 16] = (s12 + o1 + PASS1_ROUND) >> PASS1_SHIFT;
    ws[col + 40] = (s12 - o1 + PASS1_ROUND) >> PASS1_SHIFT;
    ws[col + 24] = (s13 + o0 + PASS1_ROUND) >> PASS1_SHIFT;
    ws[col + 32] = (s13 - o0 + PASS1_ROUND) >> PASS1_SHIFT;
  }
  // Pass 2: rows, into the samples.
  for (let row = 0; row < 8; row++) {
    const w = row * 8;
    const o = oo + row * stride;
    const x2 = ws[w + 2]!;
    const x6 = ws[w + 6]!;
    const r = (x2 + x6) * FIX_0_541196100;
    const e2 = r - x6 * FIX_1_847759065;
    const e3 = r + x2 * FIX_0_765366865;
    const x0 = ws[w]!;
    const x4 = ws[w + 4]!;
    const e0 = (x0 + x4) * (1 << CONST_BITS);
    const e1 = (x0 - x4) * (1 << CONST_BITS);
    const s10 = e0 + e3;
    const s13 = e0 - e3;
    const s11 = e1 + e2;
    const s12 = e1 - e2;
    const a = ws[w + 7]!;
    const bb = ws[w + 5]!;
    const c = ws[w + 3]!;
    const d = ws[w + 1]!;
    const z5 = (a + c + bb + d) * FIX_1_175875602;
    const z1 = (a + d) * -FIX_0_899976223;
    const z2 = (bb + c) * -FIX_2_562915447;
    const z3 = (a + c) * -FIX_1_961570560 + z5;
    const z4 = (bb + d) * -FIX_0_390180644 + z5;
    const o0 = a * FIX_0_298631336 + z1 + z3;
    const o1 = bb * FIX_2_053119869 + z2 + z4;
    const o2 = c * FIX_3_072711026 + z2 + z3;
    const o3 = d * FIX_1_501321110 + z1 + z4;
    out[o] = IDCT_LIMIT[((s10 + o3 + PASS2_ROUND) >> PASS2_SHIFT) & 1023]!;
    out[o + 7] = IDCT_LIMIT[((s10 - o3 + PASS2_ROUND) >> PASS2_SHIFT) & 1023]!;
    out[o + 1] = IDCT_LIMIT[((s11 + o2 + PASS2_ROUND) >> PASS2_SHIFT) & 1023]!;
    out[o + 6] = IDCT_LIMIT[((s11 - o2 + PASS2_ROUND) >> PASS2_SHIFT) & 1023]!;
    out[o + 2] = IDCT_LIMIT[((s12 + o1 + PASS2_ROUND) >> PASS2_SHIFT) & 1023]!;
    out[o + 5] = IDCT_LIMIT[((s12 - o1 + PASS2_ROUND) >> PASS2_SHIFT) & 1023]!;
    out[o + 3] = IDCT_LIMIT[((s13 + o0 + PASS2_ROUND) >> PASS2_SHIFT) & 1023]!;
    out[o + 4] = IDCT_LIMIT[((s13 - o0 + PASS2_ROUND) >> PASS2_SHIFT) & 1023]!;
  }
}

// ---- block smoothing (progressive images with unrefined coefficients) ---------------

/**
 * Natural positions of the quantizers smoothing_ok needs nonzero: DC and the AC
 * coefficients at zigzag 1-9.
 */
const SMOOTH_Q = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24];

// libjpeg-turbo 2.1's block smoothing (jdcoefct.c decompress_smooth_data) estimates a
// block's first AC coefficients, where they are still zero and not known to be exact
// (the component's last scan for them had Al > 0, or none sent them), from the DC
// values of the 5x5 blocks around it. Each estimate is a weighted sum of those 25 DC
// values (the weights below: 5 rows of 5, the block's own DC in the middle) times the
// DC quantizer, divided by 256 times the coefficient's quantizer, rounded, and kept
// below 2^Al. Estimates for zigzag 1-5 when the component has some AC data; when it
// has none at all for zigzag 1-9, other weights for all nine plus a new DC (a smoothed
// average). Checked exact against libjpeg-turbo 2.1.5 (through OpenCV) on 800 files
// with random scan scripts, samplings and sizes; its window edges (see
// `smoothComponent`) are its own, and later versions changed them.
const W = (...rows: number[][]) => Int32Array.from(rows.flat());
const Z = [0, 0, 0, 0, 0];
/** Zigzag 1-5 (natural 1, 8, 16, 9, 2), with some AC data. */
const SMOOTH_AC = [
  W(Z, Z, [-7, 50, 0, -50, 7], Z, Z),
  W([0, 0, -7, 0, 0], [0, 0, 50, 0, 0], Z, [0, 0, -50, 0, 0], [0, 0, 7, 0, 0]),
  W([0, 0, -1, 0, 0], [0, 0, 13, 0, 0], [0, 0, -24, 0, 0], [0, 0, 13, 0, 0], [0, 0, -1, 0, 0]),
  W([0, -1, 0, 1, 0], [-1, 10, 0, -10, 1], Z, [1, -10, 0, 10, -1], [0, 1, 0, -1, 0]),
  W(Z, Z, [-1, 13, -24, 13, -1], Z, Z),
];
/** Zigzag 1-9 (natural 1, 8, 16, 9, 2, 3, 10, 17, 24), with no AC data. */
const SMOOTH_AC_ONLY_DC = [
  W([-1, -1, 0, 1, 1], [-3, 13, 0, -13, 3], [-3, 38, 0, -38, 3], [-3, 13, 0, -13, 3], [-1, -1, 0, 1, 1]),
  W([-1, -3, -3, -3, -1], [-1, 13, 38, 13, -1], Z, [1, -13, -38, -13, 1], [1, 3, 3, 3, 1]),
  W([0, 0, 1, 0, 0], [0, 2, 7, 2, 0], [0, -5, -14, -5, 0], [0, 2, 7, 2, 0], [0, 0, 1, 0, 0]),
  W([-1, 0, 0, 0, 1], [0, 9, 0, -9, 0], Z, [0, -9, 0, 9, 0], [1, 0, 0, 0, -1]),
  W(Z, [0, 2, -5, 2, 0], [1, 7, -14, 7, 1], [0, 2, -5, 2, 0], Z),
  W(Z, [0, 1, 0, -1, 0], [0, 2, 0, -2, 0], [0, 1, 0, -1, 0], Z),
  W(Z, [0, 1, -3, 1, 0], Z, [0, -1, 3, -1, 0], Z),
  W(Z, [0, 1, 0, -1, 0], [0, -3, 0, 3, 0], [0, 1, 0, -1, 0], Z),
  W(Z, [0, 1, 2, 1, 0], Z, [0, -1, -2, -1, 0], Z),
];
/** The new DC when there is no AC data (the weights sum to 256). */
const SMOOTH_DC = W([-2, -6, -8, -6, -2], [-6, 6, 42, 6, -6], [-8, 42, 152, 42, -8], [-6, 6, 42, 6, -6], [-2, -6, -8, -6, -2]);

/** round(|num| / (256 q)) with num's sign: jdcoefct.c's estimate of a coefficient. */
function estimate(num: number, q: number, al: number, clampToAl: boolean): number {
  let pred = Math.floor((q * 128 + Math.abs(num)) / (q * 256));
  // Where some bits are known (Al > 0), the estimate stays below the first known bit.
  if (clampToAl && al > 0 && pred >= 1 << al) pred = (1 << al) - 1;
  return num < 0 ? -pred : pred;
}

/** IDCTs a component's blocks into its plane with libjpeg's block smoothing. */
function smoothComponent(c: Component, totalRows: number, block: Int16Array, ws: Int32Array): void {
  const coefs = c.coefs!;
  const q = c.quantRaw!;
  const bits = c.coefBits;
  const stride = c.bstride * 8;
  let noAc = true;
  for (let k = 1; k <= 9; k++) if (bits[k] !== -1) noAc = false;
  const acWeights = noAc ? SMOOTH_AC_ONLY_DC : SMOOTH_AC;
  const dcs = new Int32Array(25);
  const rows = new Int32Array(5);
  const q00 = q[0]!;
  // The 5x5 window as libjpeg-turbo 2.1 fills it, which is not plain edge
  // replication everywhere. Down the image it goes an iMCU row (v block rows) at a
  // time: the rows above reach back only as far as the block rows of this iMCU row
  // and the one before it (so 2 rows up only from the third block row of an iMCU
  // row, or from the third iMCU row on); the rows below reach into the next iMCU row
  // when there is one (2 rows down only when two more follow, or within this one),
  // and are the block's own row (or the row below) otherwise. Across, the window
  // replicates the edge blocks, except in a component 2 blocks wide, where the
  // column 2 to the right of the first block, and both columns to the right of the
  // second, are read as column 0.
  const lastRow = totalRows - 1;
  const colsAt = (bx: number, j: number) => {
    if (c.bw === 2 && ((bx === 0 && j === 4) || (bx === 1 && j >= 3))) return 0;
    return Math.min(Math.max(bx + j - 2, 0), c.bw - 1);
  };
  for (let t = 0; t < totalRows; t++) {
    const blockRows = t < lastRow ? c.v : c.bh % c.v || c.v;
    for (let br = 0; br < blockRows; br++) {
      const row = t * c.v + br;
      rows[2] = row;
      rows[1] = t > 0 || br > 0 ? row - 1 : row;
      rows[0] = t > 1 || br > 1 ? row - 2 : rows[1]!;
      rows[3] = t < lastRow || br < blockRows - 1 ? row + 1 : row;
      rows[4] = t + 1 < lastRow || br < blockRows - 2 ? row + 2 : rows[3]!;
      for (let bx = 0; bx < c.bw; bx++) {
        const off = (row * c.bstride + bx) * 64;
        for (let i = 0; i < 64; i++) block[i] = coefs[off + i]!;
        for (let i = 0; i < 5; i++) {
          const r = Math.min(rows[i]!, c.brows - 1) * c.bstride;
          for (let j = 0; j < 5; j++) dcs[i * 5 + j] = coefs[(r + colsAt(bx, j)) * 64]!;
        }
        for (let k = 0; k < acWeights.length; k++) {
          const al = bits[k + 1]!;
          const pos = SMOOTH_Q[k + 1]!;
          if (al === 0 || block[pos] !== 0) continue;
          const w = acWeights[k]!;
          let sum = 0;
          for (let i = 0; i < 25; i++) sum += w[i]! * dcs[i]!;
          block[pos] = estimate(q00 * sum, q[pos]!, al, true);
        }
        if (noAc) {
          let sum = 0;
          for (let i = 0; i < 25; i++) sum += SMOOTH_DC[i]! * dcs[i]!;
          block[0] = estimate(q00 * sum, q00, 0, false);
        }
        idctBlock(block, 0, c.quant!, c.plane!, row * 8 * stride + bx * 8, stride, ws);
      }
    }
  }
}

// ---- upsampling and colour conversion ---------------------------------------------------

// Upsampling methods (jdsample.c jinit_upsampler with do_fancy_upsampling on).
const FULL = 0;
const H2V1_FANCY = 1;
const H1V2_FANCY = 2;
const H2V2_FANCY = 3;
const BOX = 4;

/**
 * Upsamples each component to full size a row at a time and converts the colours
 * into `out` (RGB).
 */
function convertRows(comps: Component[], width: number, height: number, maxH: number, maxV: number, space: JpegColorSpace, out: Uint8Array): void {
  const n = comps.length;
  const methods = comps.map((c) => {
    const hr = maxH / c.h;
    const vr = maxV / c.v;
    if (hr === 1 && vr === 1) return FULL;
    // The triangle filters need 3 input columns (libjpeg-turbo's downsampled_width > 2);
    // h1v2 has no such condition.
    if (hr === 2 && vr === 1 && c.dw > 2) return H2V1_FANCY;
    if (hr === 1 && vr === 2) return H1V2_FANCY;
    if (hr === 2 && vr === 2 && c.dw > 2) return H2V2_FANCY;
    return BOX;
  });
  const rowBufs = comps.map((c) => new Uint8Array(Math.max(width, c.dw * (maxH / c.h)) + 8));
  const colsum = new Int32Array(Math.max(...comps.map((c) => c.dw)) + 2);
  const srcs: Uint8Array[] = new Array(n);
  const offs = new Int32Array(n);
  for (let y = 0; y < height; y++) {
    for (let ci = 0; ci < n; ci++) {
      const c = comps[ci]!;
      const plane = c.plane!;
      const ps = c.bstride * 8;
      const method = methods[ci]!;
      if (method === FULL) {
        srcs[ci] = plane;
        offs[ci] = y * ps;
        continue;
      }
      const row = rowBufs[ci]!;
      srcs[ci] = row;
      offs[ci] = 0;
      const dw = c.dw;
      if (method === H2V1_FANCY) {
        const p = y * ps;
        let cur = plane[p]!;
        row[0] = cur;
        row[1] = (cur * 3 + plane[p + 1]! + 2) >> 2;
        for (let x = 1; x < dw - 1; x++) {
          cur = plane[p + x]! * 3;
          row[2 * x] = (cur + plane[p + x - 1]! + 1) >> 2;
          row[2 * x + 1] = (cur + plane[p + x + 1]! + 2) >> 2;
        }
        cur = plane[p + dw - 1]!;
        row[2 * dw - 2] = (cur * 3 + plane[p + dw - 2]! + 1) >> 2;
        row[2 * dw - 1] = cur;
      } else if (method === H1V2_FANCY || method === H2V2_FANCY) {
        // The nearer input row counts 3, the other one (above for an even output row,
        // below for an odd one; at the edges the row itself) counts 1.
        const cy = y >> 1;
        const odd = y & 1;
        const ny = odd ? Math.min(cy + 1, c.dh - 1) : Math.max(cy - 1, 0);
        const p = cy * ps;
        const q = ny * ps;
        if (method === H1V2_FANCY) {
          const bias = odd ? 2 : 1;
          for (let x = 0; x < dw; x++) row[x] = (plane[p + x]! * 3 + plane[q + x]! + bias) >> 2;
        } else {
          for (let x = 0; x < dw; x++) colsum[x] = plane[p + x]! * 3 + plane[q + x]!;
          // Then across: 3/4 nearer column sum + 1/4 further one, in 1/16ths; the
          // biases 8 and 7 alternate so that rounding does not drift one way.
          let cur = colsum[0]!;
          row[0] = (cur * 4 + 8) >> 4;
          row[1] = (cur * 3 + colsum[1]! + 7) >> 4;
          for (let x = 1; x < dw - 1; x++) {
            cur = colsum[x]! * 3;
            row[2 * x] = (cur + colsum[x - 1]! + 8) >> 4;
            row[2 * x + 1] = (cur + colsum[x + 1]! + 7) >> 4;
          }
          cur = colsum[dw - 1]!;
          row[2 * dw - 2] = (cur * 3 + colsum[dw - 2]! + 8) >> 4;
          row[2 * dw - 1] = (cur * 4 + 7) >> 4;
        }
      } else {
        // Box: every sample repeated hr times across, its row vr times down.
        const hr = maxH / c.h;
        const p = Math.floor(y / (maxV / c.v)) * ps;
        for (let x = 0, o = 0; x < dw; x++) {
          const v = plane[p + x]!;
          for (let k = 0; k < hr; k++) row[o++] = v;
        }
      }
    }
    convertRow(srcs, offs, space, out, y * width * 3, width);
  }
}

function convertRow(srcs: Uint8Array[], offs: Int32Array, space: JpegColorSpace, out: Uint8Array, o: number, width: number): void {
  if (space === 'gray') {
    const s = srcs[0]!;
    const a = offs[0]!;
    for (let x = 0; x < width; x++, o += 3) {
      const v = s[a + x]!;
      out[o] = v;
      out[o + 1] = v;
      out[o + 2] = v;
    }
    return;
  }
  const s0 = srcs[0]!;
  const s1 = srcs[1]!;
  const s2 = srcs[2]!;
  const a0 = offs[0]!;
  const a1 = offs[1]!;
  const a2 = offs[2]!;
  if (space === 'ycbcr') {
    for (let x = 0; x < width; x++, o += 3) {
      const y = s0[a0 + x]! + 256;
      const cb = s1[a1 + x]!;
      const cr = s2[a2 + x]!;
      out[o] = CLAMP[y + CR_R[cr]!]!;
      out[o + 1] = CLAMP[y + ((CB_G[cb]! + CR_G[cr]!) >> SCALEBITS)]!;
      out[o + 2] = CLAMP[y + CB_B[cb]!]!;
    }
  } else if (space === 'rgb') {
    for (let x = 0; x < width; x++, o += 3) {
      out[o] = s0[a0 + x]!;
      out[o + 1] = s1[a1 + x]!;
      out[o + 2] = s2[a2 + x]!;
    }
  } else {
    // libjpeg hands OpenCV CMYK (from YCCK: C, M, Y = 255 - the YCbCr -> RGB of the
    // first three, K as is); OpenCV's icvCvt_CMYK2BGR_8u_C4C3R reads Adobe's inverted
    // CMYK: R = K - ((255 - C) * K >> 8), and so on.
    const s3 = srcs[3]!;
    const a3 = offs[3]!;
    const ycck = space === 'ycck';
    for (let x = 0; x < width; x++, o += 3) {
      let c = s0[a0 + x]!;
      let m = s1[a1 + x]!;
      let yy = s2[a2 + x]!;
      const k = s3[a3 + x]!;
      if (ycck) {
        const y = c + 256;
        const cb = m;
        const cr = yy;
        c = 255 - CLAMP[y + CR_R[cr]!]!;
        m = 255 - CLAMP[y + ((CB_G[cb]! + CR_G[cr]!) >> SCALEBITS)]!;
        yy = 255 - CLAMP[y + CB_B[cb]!]!;
      }
      out[o] = k - (((255 - c) * k) >> 8);
      out[o + 1] = k - (((255 - m) * k) >> 8);
      out[o + 2] = k - (((255 - yy) * k) >> 8);
    }
  }
}
