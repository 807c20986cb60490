// Feature maps as pictures: an activation's channels laid out as tiles of one RGB
// image, each channel scaled to its own min..max, with a label row on top.
// Browser-safe: no Node imports (the CLI writes the PNG, see src/cli/features.ts).
import { colorMapTable, type ColorMapName } from './colormap.js';
import { drawText, LINE_HEIGHT, textWidth, type RgbCanvas } from './font5x7.js';

/** 'gray' (black = the channel's min, white = its max) or one of the depth colour maps. */
export type GridColors = 'gray' | ColorMapName;
export const GRID_COLORS: readonly GridColors[] = ['gray', 'inferno', 'turbo'];

export interface ChannelGridOptions {
  /** Default 'gray'. */
  colors?: GridColors;
  /** Channels drawn, from channel 0 (default 256); the rest are left out. */
  maxChannels?: number;
  /** Small maps are enlarged by a whole factor (nearest neighbour) until their shorter side is at least this (default 32). */
  minTile?: number;
  /** Largest width or height of the tile area; tiles shrink by whole factors (box average) to fit (default 2048). */
  maxSide?: number;
  /** Lines of text drawn above the tiles. */
  label?: readonly string[];
  /** Font cell size in pixels (default: the largest of 3, 2, 1 at which the label fits the tiles' width). */
  fontScale?: number;
}

export interface ChannelGrid extends RgbCanvas, GridLayout {
  /** Channels of the activation; the first `shown` are drawn. */
  channels: number;
  /** Rows of the label band above the tiles (0 without a label). */
  labelHeight: number;
  /** Each drawn channel's finite min and max (what black and white stand for). */
  ranges: { min: number; max: number }[];
  /** Top-left pixel of channel `i`'s tile. */
  tileOrigin(i: number): [number, number];
}

/** Between and around the tiles, and where the label is wider than the tiles. */
export const GAP_COLOR = [40, 64, 112] as const;
export const LABEL_BACKGROUND = [16, 16, 16] as const;
export const LABEL_INK = [240, 240, 240] as const;
/** The gray level of a channel whose values are all equal (no range to scale). */
export const FLAT_LEVEL = 0.5;

export interface GridLayout {
  /** Tiles drawn: channels 0 .. shown-1. */
  shown: number;
  cols: number;
  rows: number;
  tileWidth: number;
  tileHeight: number;
  /** Each activation pixel became `upscale` x `upscale` pixels (1 = not enlarged). */
  upscale: number;
  /** Each tile pixel is the mean of `downscale` x `downscale` activation pixels (1 = not shrunk). */
  downscale: number;
}

/**
 * Columns for `n` tiles of `height x width`: near the square picture's
 * sqrt(n * height / width), trading how far the picture is from square (|ln(W / H)|)
 * against how much of the last row is left empty (half a point for a whole row).
 */
export function gridColumns(n: number, height: number, width: number): number {
  const ideal = Math.sqrt((n * height) / width);
  let best = 1;
  let bestScore = Infinity;
  for (let c = Math.max(1, Math.floor(ideal / 1.5)); c <= Math.min(n, Math.ceil(ideal * 1.5)); c++) {
    const rows = Math.ceil(n / c);
    const score = Math.abs(Math.log((c * width) / (rows * height))) + (0.5 * (rows * c - n)) / c;
    if (score < bestScore - 1e-12) [best, bestScore] = [c, score];
  }
  return best;
}

/**
 * Where the tiles of a `height x width x channels` activation go: `shown` tiles in
 * `cols` columns (near-square picture), each enlarged by a whole factor until its
 * shorter side reaches `minTile`, or shrunk by one until the tile area fits `maxSide`.
 */
export function gridLayout(height: number, width: number, channels: number, opts: ChannelGridOptions = {}): GridLayout {
  const shown = Math.min(channels, Math.max(1, opts.maxChannels ?? 256));
  const minTile = opts.minTile ?? 32;
  const maxSide = opts.maxSide ?? 2048;
  const cols = gridColumns(shown, height, width);
  const rows = Math.ceil(shown / cols);
  const sideOf = (tw: number, th: number) => Math.max(cols * (tw + 1) + 1, rows * (th + 1) + 1);
  let upscale = Math.max(1, Math.ceil(minTile / Math.min(height, width)));
  while (upscale > 1 && sideOf(width * upscale, height * upscale) > maxSide) upscale--;
  let downscale = 1;
  const shrunk = (d: number) => [Math.ceil(width / d), Math.ceil(height / d)] as const;
  while (upscale === 1 && sideOf(...shrunk(downscale)) > maxSide && downscale < Math.max(width, height)) downscale++;
  const [tileWidth, tileHeight] = upscale > 1 ? [width * upscale, height * upscale] : shrunk(downscale);
  return { shown, cols, rows, tileWidth, tileHeight, upscale, downscale };
}

/**
 * Lays out channel c of an HWC activation (`values[(y * width + x) * channels + c]`,
 * i.e. NHWC with N = 1) as tile c of a near-square grid, left to right, top to
 * bottom, with 1-pixel gaps. Every channel is scaled to 0..1 over its own finite
 * min..max (all-equal: FLAT_LEVEL; NaN: 0; +-Infinity: the ends), then to 0..255
 * gray or a colour-map entry (as `colorize`: entry floor(v * 256), at most 255).
 */
export function channelGrid(
  values: Float32Array,
  height: number,
  width: number,
  channels: number,
  opts: ChannelGridOptions = {},
): ChannelGrid {
  for (const [name, v] of [['height', height], ['width', width], ['channels', channels]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`channelGrid: ${name} must be a positive integer (got ${v})`);
  }
  if (values.length !== height * width * channels) {
    throw new RangeError(`channelGrid: ${height}x${width}x${channels} needs ${height * width * channels} values, got ${values.length}`);
  }
  const colors = opts.colors ?? 'gray';
  const table = colors === 'gray' ? null : colorMapTable(colors);
  const { shown, cols, rows, tileWidth, tileHeight, upscale, downscale } = gridLayout(height, width, channels, opts);
  const gridWidth = cols * (tileWidth + 1) + 1;
  const gridHeight = rows * (tileHeight + 1) + 1;

  // Label band.
  const lines = opts.label ?? [];
  const widest = Math.max(0, ...lines.map((l) => textWidth(l, 1)));
  let fontScale = opts.fontScale ?? 3;
  if (opts.fontScale === undefined) while (fontScale > 1 && widest * fontScale + 8 * fontScale > gridWidth) fontScale--;
  const pad = 4 * fontScale;
  const labelHeight = lines.length ? 2 * pad + (lines.length * LINE_HEIGHT - 2) * fontScale : 0;
  const labelWidth = lines.length ? 2 * pad + widest * fontScale : 0;
  const imageWidth = Math.max(gridWidth, labelWidth);
  const imageHeight = labelHeight + gridHeight;
  const data = new Uint8Array(imageWidth * imageHeight * 3);
  const fill = (y0: number, y1: number, color: readonly number[]) => {
    for (let i = y0 * imageWidth; i < y1 * imageWidth; i++) data.set(color, 3 * i);
  };
  fill(0, labelHeight, LABEL_BACKGROUND);
  fill(labelHeight, imageHeight, GAP_COLOR);
  const canvas = { data, width: imageWidth, height: imageHeight };
  lines.forEach((line, i) => drawText(canvas, pad, pad + i * LINE_HEIGHT * fontScale, line, LABEL_INK, fontScale));

  // Each channel's range over its finite values.
  const lo = new Float64Array(shown).fill(Infinity);
  const hi = new Float64Array(shown).fill(-Infinity);
  for (let p = 0; p < height * width; p++) {
    const base = p * channels;
    for (let c = 0; c < shown; c++) {
      const v = values[base + c]!;
      if (v - v !== 0) continue; // NaN or +-Infinity
      if (v < lo[c]!) lo[c] = v;
      if (v > hi[c]!) hi[c] = v;
    }
  }
  const ranges = Array.from({ length: shown }, (_, c) => (lo[c]! <= hi[c]! ? { min: lo[c]!, max: hi[c]! } : { min: 0, max: 0 }));

  const tileOrigin = (i: number): [number, number] => [1 + (i % cols) * (tileWidth + 1), labelHeight + 1 + Math.floor(i / cols) * (tileHeight + 1)];
  const level = new Float32Array(height * width);
  for (let c = 0; c < shown; c++) {
    const { min, max } = ranges[c]!;
    const span = max - min;
    for (let p = 0; p < height * width; p++) {
      const v = values[p * channels + c]!;
      level[p] = !(span > 0) ? FLAT_LEVEL : Number.isNaN(v) ? 0 : Math.min(1, Math.max(0, (v - min) / span));
    }
    const [ox, oy] = tileOrigin(c);
    for (let ty = 0; ty < tileHeight; ty++) {
      for (let tx = 0; tx < tileWidth; tx++) {
        let l: number;
        if (downscale === 1) {
          l = level[Math.floor(ty / upscale) * width + Math.floor(tx / upscale)]!;
        } else {
          let sum = 0;
          let n = 0;
          for (let y = ty * downscale; y < Math.min(height, (ty + 1) * downscale); y++) {
            for (let x = tx * downscale; x < Math.min(width, (tx + 1) * downscale); x++, n++) sum += level[y * width + x]!;
          }
          l = sum / n;
        }
        const o = 3 * ((oy + ty) * imageWidth + ox + tx);
        if (table) {
          const k = 3 * Math.min(255, Math.floor(l * 256));
          data[o] = table[k]!;
          data[o + 1] = table[k + 1]!;
          data[o + 2] = table[k + 2]!;
        } else {
          data[o] = data[o + 1] = data[o + 2] = Math.round(l * 255);
        }
      }
    }
  }

  return {
    data, width: imageWidth, height: imageHeight,
    channels, shown, cols, rows, tileWidth, tileHeight, upscale, downscale, labelHeight, ranges, tileOrigin,
  };
}
