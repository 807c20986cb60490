// The demo page: pick or drop an image and converted weights (or give a URL), see the
// colour-mapped depth beside the photo, download PFM/PNG; or run depth on a live camera.
// Built by build.mjs.
//
// URL parameters (all optional): weights=<url of a .safetensors>, image=<url>,
// model=v2|v2.1|small (default: the file's), arch=<url of a MidasConfig JSON, for
// reduced networks>, size=<multiple of 32; default the model's>, precision=f32|f16,
// map=inferno|turbo. `window.midasDemo` holds the page's state (tests and scripts read it).
import {
  MODELS,
  MODEL_NAMES,
  WebGPUUnavailableError,
  browserGpu,
  colorizeRGBA,
  createBrowserRuntime,
  deviceFeatureLevel,
  encodeColorPng,
  encodePfm,
  encodePng16,
  imageToRGB,
  loadMidas,
  type ColorMapName,
  type DepthResult,
  type MidasConfig,
  type MidasModel,
  type ModelName,
  type Precision,
  type Runtime,
  type WeightsSource,
} from '../../src/browser/index.js';

interface AdapterReport {
  featureLevel: 'core' | 'compatibility';
  name: string;
  isFallbackAdapter: boolean | undefined;
  features: string[];
  limits: Record<string, number>;
}

interface DemoState {
  status: 'starting' | 'idle' | 'loading-weights' | 'ready' | 'predicting' | 'done' | 'error';
  error: string | null;
  adapter: AdapterReport | null;
  /** Finished predictions. */
  runs: number;
  /** The last prediction's input pixels (RGB) and depth. */
  rgb: Uint8Array | null;
  result: DepthResult | null;
  timings: { weightsMs?: number; predictMs?: number };
  /** The loaded model's name and its transform size; null before any load succeeds. */
  model: ModelName | null;
  size: number | null;
  camera: CameraState;
}

interface CameraState {
  running: boolean;
  /** Frames whose depth was computed since the camera started. */
  frames: number;
  /** Frames that arrived while one was being computed: skipped, so the depth stays live instead of falling behind. */
  dropped: number;
  /** Computed frames per second over the last few frames (0 before the second). */
  fps: number;
  /** The last computed frame: its pixels (RGB, as predicted), depth and time. */
  rgb: Uint8Array | null;
  result: DepthResult | null;
  frameMs: number | null;
}

declare global {
  interface Window {
    midasDemo: DemoState;
  }
}

const state: DemoState = {
  status: 'starting',
  error: null,
  adapter: null,
  runs: 0,
  rgb: null,
  result: null,
  timings: {},
  model: null,
  size: null,
  camera: newCameraState(false),
};
window.midasDemo = state;

function newCameraState(running: boolean): CameraState {
  return { running, frames: 0, dropped: 0, fps: 0, rgb: null, result: null, frameMs: null };
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const gpuStatus = $<HTMLParagraphElement>('gpu-status');
const message = $<HTMLDivElement>('message');
const weightsFile = $<HTMLInputElement>('weights-file');
const weightsUrl = $<HTMLInputElement>('weights-url');
const weightsLoad = $<HTMLButtonElement>('weights-load');
const progress = $<HTMLProgressElement>('weights-progress');
const progressLabel = $<HTMLSpanElement>('weights-label');
const imageFile = $<HTMLInputElement>('image-file');
const colormap = $<HTMLSelectElement>('colormap');
const modelSelect = $<HTMLSelectElement>('model');
const modelHint = $<HTMLSpanElement>('model-hint');
const modelLabel = $<HTMLSpanElement>('model-label');
const drop = $<HTMLDivElement>('drop');
const photo = $<HTMLCanvasElement>('photo');
const depthCanvas = $<HTMLCanvasElement>('depth');
const photoCaption = $<HTMLElement>('photo-caption');
const timing = $<HTMLSpanElement>('timing');
const cameraStart = $<HTMLButtonElement>('camera-start');
const cameraStop = $<HTMLButtonElement>('camera-stop');
const cameraStats = $<HTMLSpanElement>('camera-stats');
const video = $<HTMLVideoElement>('camera-video');
const downloads = { pfm: $<HTMLButtonElement>('dl-pfm'), png16: $<HTMLButtonElement>('dl-png16'), color: $<HTMLButtonElement>('dl-color') };

const params = new URLSearchParams(location.search);
const size = params.has('size') ? Number(params.get('size')) : undefined;
const precision = (params.get('precision') ?? 'f32') as Precision;
if (params.get('map') === 'turbo') colormap.value = 'turbo';

let runtime: Runtime | null = null;
let model: MidasModel | null = null;
/** A reduced network's shape from `arch=`; unset, the model's own. */
let config: MidasConfig | undefined;
/** The last weights given, so that picking another model reloads them. */
let weightsSource: { source: WeightsSource; name: string } | null = null;
let image: { blob: Blob; name: string } | null = null;
/** What the depth panel and the downloads show: the photo's depth or the last camera frame's. */
let shown: { result: DepthResult; name: string } | null = null;
/** Why there is no runtime, when opening one failed. */
let gpuError: unknown = null;

// ---- messages ---------------------------------------------------------------------------

function showError(e: unknown): void {
  const text = e instanceof Error ? e.message : String(e);
  state.status = 'error';
  state.error = text;
  message.textContent = text;
  message.classList.add('show');
  console.error(e);
}

function clearError(): void {
  state.error = null;
  message.textContent = '';
  message.classList.remove('show');
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

// One thing at a time: loading weights and predicting never overlap.
let queue: Promise<void> = Promise.resolve();
function enqueue(task: () => Promise<void>): Promise<void> {
  queue = queue.then(async () => {
    try {
      clearError();
      await task();
    } catch (e) {
      showError(e);
    }
  });
  return queue;
}

// ---- WebGPU ---------------------------------------------------------------------------

async function openRuntime(): Promise<Runtime> {
  if (runtime) return runtime;
  browserGpu(); // throws WebGPUUnavailableError with what to do
  runtime = await createBrowserRuntime();
  const device = runtime.device;
  const info = device.adapterInfo as GPUAdapterInfo | undefined;
  const limits: Record<string, number> = {};
  for (const key in device.limits) limits[key] = device.limits[key as keyof GPUSupportedLimits] as number;
  state.adapter = {
    featureLevel: deviceFeatureLevel(device),
    name: runtime.adapterName,
    isFallbackAdapter: info?.isFallbackAdapter,
    features: [...device.features].map(String).sort(),
    limits,
  };
  const f = runtime.features;
  gpuStatus.textContent =
    `WebGPU: ${runtime.adapterName === 'unknown adapter' ? 'an adapter the browser does not name' : runtime.adapterName}, ` +
    `${state.adapter.featureLevel} level` +
    `${info?.isFallbackAdapter ? ' (software fallback adapter)' : ''}; ` +
    `shader-f16 ${f.f16 ? 'yes' : 'no'}, timestamps ${f.timestamps ? 'yes' : 'no'}; ` +
    `largest storage binding ${Math.round(runtime.limits.maxStorageBufferBindingSize / 2 ** 20)} MiB`;
  gpuStatus.classList.add('ok');
  void device.lost.then((lost) => {
    if (lost.reason !== 'destroyed') showError(new Error(`the WebGPU device was lost (${lost.message}); reload the page`));
  });
  return runtime;
}

// ---- model ------------------------------------------------------------------------------

// What each converted checkpoint weighs, so the download is no surprise (v2 and v2.1
// large: ResNeXt-101, 105 M parameters; small: 21 M; f16 halves the conv weights).
const CONVERTED_MB: Record<ModelName, { f32: number; f16: number }> = {
  v2: { f32: 422, f16: 211 },
  'v2.1': { f32: 422, f16: 211 },
  small: { f32: 85, f16: 43 },
};

function modelHtml(m: ModelName): string {
  const { f32, f16 } = CONVERTED_MB[m];
  return (
    `converted weights ${f16} MB in f16 / ${f32} MB in f32 ` +
    `(<code>midas convert ${MODELS[m].checkpoint.file} --dtype f16</code>); default input ${MODELS[m].size}`
  );
}

function pickedModel(): ModelName | undefined {
  const v = modelSelect.value;
  return v === 'auto' ? undefined : (v as ModelName);
}

function showModelHint(): void {
  const m = pickedModel();
  modelHint.innerHTML = m ? modelHtml(m) : `the file's keys decide; small: ${modelHtml('small')}`;
}

// ---- weights ----------------------------------------------------------------------------

function loadWeights(source: WeightsSource, name: string): Promise<void> {
  weightsSource = { source, name };
  return enqueue(async () => {
    const rt = await openRuntime();
    state.status = 'loading-weights';
    model?.dispose();
    model = null;
    state.model = null;
    state.size = null;
    modelLabel.textContent = 'Loaded model: none';
    modelLabel.classList.remove('loaded');
    progress.value = 0;
    progressLabel.textContent = `loading ${name}…`;
    const t0 = performance.now();
    model = await loadMidas({
      weights: source,
      runtime: rt,
      model: pickedModel(),
      config,
      size,
      precision,
      onProgress: ({ loaded, total }) => {
        if (total) {
          progress.value = loaded / total;
          progressLabel.textContent = `${name}: ${mb(loaded)} of ${mb(total)}`;
        } else {
          progress.removeAttribute('value'); // indeterminate
          progressLabel.textContent = `${name}: ${mb(loaded)}`;
        }
        if (total && loaded === total) progressLabel.textContent = `${name}: ${mb(total)}, uploading to the GPU…`;
      },
    });
    state.timings.weightsMs = performance.now() - t0;
    progress.value = 1;
    progressLabel.textContent = `${name}: loaded in ${(state.timings.weightsMs / 1000).toFixed(1)} s (network input up to ${model.size}x${model.size})`;
    state.model = model.model.name;
    state.size = model.size;
    // A reduced test network runs under a model's name but is not that checkpoint: say so.
    modelLabel.textContent = `Loaded model: ${model.model.title}${config ? ', reduced test network' : ''}; input ${model.size}x${model.size}`;
    modelLabel.classList.add('loaded');
    state.status = 'ready';
    if (image) await predict();
  }).catch(() => {
    progress.value = 0;
  });
}

// ---- images and prediction --------------------------------------------------------------

function setImage(blob: Blob, name: string): Promise<void> {
  stopCamera(); // a picked image replaces the live one
  return enqueue(async () => {
    // The photo is shown even without WebGPU; then the message says why there is no depth.
    await openRuntime().catch((e: unknown) => (gpuError = e));
    image = { blob, name };
    const bitmap = await createImageBitmap(blob, { imageOrientation: 'from-image' }).catch((e: Error) => {
      throw new Error(`${name}: the browser could not decode this image (${e.message})`);
    });
    photo.width = bitmap.width;
    photo.height = bitmap.height;
    photo.getContext('2d')!.drawImage(bitmap, 0, 0);
    bitmap.close();
    photoCaption.textContent = `Photo: ${name}, ${photo.width}x${photo.height}`;
    if (!runtime) throw gpuError ?? new WebGPUUnavailableError('WebGPU is not available');
    if (model) await predict();
    else progressLabel.textContent = 'now load the weights (a converted .safetensors file)';
  });
}

async function predict(): Promise<void> {
  if (!model || !image) return;
  state.status = 'predicting';
  timing.textContent = 'predicting…';
  const t0 = performance.now();
  const rgb = await imageToRGB(image.blob);
  const result = await model.predict({ ...rgb, channels: 3 });
  state.timings.predictMs = performance.now() - t0;
  state.rgb = rgb.data;
  state.result = result;
  shown = { result, name: baseName(image.name) };
  drawDepth();
  timing.textContent = `${result.width}x${result.height} in ${state.timings.predictMs.toFixed(0)} ms`;
  for (const b of Object.values(downloads)) b.disabled = false;
  state.runs++;
  state.status = 'done';
}

function drawDepth(): void {
  const r = shown?.result;
  if (!r) return;
  depthCanvas.width = r.width;
  depthCanvas.height = r.height;
  const pixels = colorizeRGBA(r.depth, r.width, r.height, colormap.value as ColorMapName);
  depthCanvas.getContext('2d')!.putImageData(new ImageData(pixels as Uint8ClampedArray<ArrayBuffer>, r.width, r.height), 0, 0);
}

// ---- downloads ----------------------------------------------------------------------------

function save(bytes: Uint8Array, name: string, type: string): void {
  const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function baseName(name: string): string {
  return name.replace(/^.*[\\/]/, '').replace(/\.[^.]*$/, '') || 'image';
}

downloads.pfm.addEventListener('click', () => {
  if (!shown) return;
  const { result: r, name } = shown;
  save(encodePfm(r.depth, r.width, r.height), `${name}.pfm`, 'application/octet-stream');
});
downloads.png16.addEventListener('click', () => {
  if (!shown) return;
  const { result: r, name } = shown;
  void encodePng16(r.depth, r.width, r.height).then((b) => save(b, `${name}.png`, 'image/png'), showError);
});
downloads.color.addEventListener('click', () => {
  if (!shown) return;
  const { result: r, name } = shown;
  const map = colormap.value as ColorMapName;
  void encodeColorPng(r.depth, r.width, r.height, map).then((b) => save(b, `${name}-${map}.png`, 'image/png'), showError);
});

// ---- camera -------------------------------------------------------------------------------

/** Changes on each start, so that a stopped stream's late callbacks do nothing. */
let cameraSession = 0;
let stream: MediaStream | null = null;
/** A camera frame is being computed (or waits behind a weights load): newer frames are dropped. */
let inFlight = false;
/** When the last few frames finished, for frames/s. */
let finishedAt: number[] = [];

/**
 * Calls `onFrame` once for the next frame the video presents: requestVideoFrameCallback
 * where the browser has it, else a check of the playback time on each animation frame.
 */
function onNextFrame(onFrame: () => void): void {
  if (typeof video.requestVideoFrameCallback === 'function') {
    video.requestVideoFrameCallback(() => onFrame());
    return;
  }
  const seen = video.currentTime;
  const poll = () => {
    if (!stream) return;
    if (video.currentTime !== seen) onFrame();
    else requestAnimationFrame(poll);
  };
  requestAnimationFrame(poll);
}

function showCameraStats(): void {
  const c = state.camera;
  const r = c.result;
  if (!model && c.running) {
    cameraStats.textContent = 'camera on: load weights to see its depth';
    return;
  }
  cameraStats.textContent =
    `${c.frames} frames, ${c.fps.toFixed(c.fps < 10 ? 2 : 1)} frames/s, ${c.dropped} dropped` +
    (r && c.frameMs !== null ? `; ${r.width}x${r.height}, ${c.frameMs.toFixed(0)} ms a frame` : '');
}

async function startCamera(): Promise<void> {
  if (stream) return;
  clearError();
  const media = navigator.mediaDevices;
  if (!media?.getUserMedia) {
    throw new Error('this browser gives the page no camera (navigator.mediaDevices is missing: the page must be served over https or from 127.0.0.1 / localhost)');
  }
  cameraStart.disabled = true;
  try {
    stream = await media.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
    video.srcObject = stream;
    await video.play();
  } catch (e) {
    stopCamera();
    const err = e as Error;
    throw new Error(`the camera could not be opened (${err.name}: ${err.message})`);
  }
  const session = ++cameraSession;
  state.camera = newCameraState(true);
  finishedAt = [];
  document.body.classList.add('camera-on');
  cameraStop.disabled = false;
  photoCaption.textContent = `Camera: ${video.videoWidth}x${video.videoHeight}`;
  showCameraStats();
  const onFrame = () => {
    if (session !== cameraSession || !stream) return;
    onNextFrame(onFrame); // armed again at once, so that frames arriving meanwhile are seen (and dropped)
    if (!model) return;
    if (inFlight) {
      state.camera.dropped++;
      return;
    }
    inFlight = true;
    void enqueue(() => cameraFrame(session)).finally(() => (inFlight = false));
  };
  onNextFrame(onFrame);
}

/** Depth of the frame the video shows now, drawn beside it. */
async function cameraFrame(session: number): Promise<void> {
  if (session !== cameraSession || !model || !stream) return;
  try {
    const t0 = performance.now();
    const rgb = await imageToRGB(video);
    const result = await model.predict({ ...rgb, channels: 3 });
    const t1 = performance.now();
    if (session !== cameraSession || !stream) return; // stopped meanwhile: the shown frame stays the last one
    const c = state.camera;
    // The pixels and depth are set together, so a reader never sees one frame's pixels with another's depth.
    c.rgb = rgb.data;
    c.result = result;
    c.frameMs = t1 - t0;
    c.frames++;
    finishedAt = [...finishedAt.slice(-15), t1];
    c.fps = finishedAt.length > 1 ? (1000 * (finishedAt.length - 1)) / (t1 - finishedAt[0]!) : 0;
    shown = { result, name: `camera-${c.frames}` };
    drawDepth();
    for (const b of Object.values(downloads)) b.disabled = false;
    showCameraStats();
  } catch (e) {
    stopCamera();
    throw e;
  }
}

function stopCamera(): void {
  for (const track of stream?.getTracks() ?? []) track.stop();
  stream = null;
  video.srcObject = null;
  state.camera.running = false;
  document.body.classList.remove('camera-on');
  cameraStart.disabled = false;
  cameraStop.disabled = true;
  // The photo panel keeps the last computed frame, beside its depth.
  const { rgb, result } = state.camera;
  if (rgb && result) {
    photo.width = result.width;
    photo.height = result.height;
    const rgba = new Uint8ClampedArray(result.width * result.height * 4);
    for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
      rgba[j] = rgb[i]!;
      rgba[j + 1] = rgb[i + 1]!;
      rgba[j + 2] = rgb[i + 2]!;
      rgba[j + 3] = 255;
    }
    photo.getContext('2d')!.putImageData(new ImageData(rgba, result.width, result.height), 0, 0);
    photoCaption.textContent = `Camera: frame ${state.camera.frames}, ${result.width}x${result.height}`;
  }
  if (state.camera.frames || state.camera.dropped) showCameraStats();
}

cameraStart.addEventListener('click', () => void startCamera().catch(showError));
cameraStop.addEventListener('click', stopCamera);

// ---- inputs -------------------------------------------------------------------------------

const isWeights = (f: File) => /\.(safetensors|bin)$/i.test(f.name) || (!f.type.startsWith('image/') && f.size > 1e6);

weightsFile.addEventListener('change', () => {
  const f = weightsFile.files?.[0];
  if (f) void loadWeights(f, f.name);
});
weightsLoad.addEventListener('click', () => {
  const url = weightsUrl.value.trim();
  if (url) void loadWeights(url, url.replace(/^.*\//, '') || url);
});
imageFile.addEventListener('change', () => {
  const f = imageFile.files?.[0];
  if (f) void setImage(f, f.name);
});
colormap.addEventListener('change', drawDepth);
modelSelect.addEventListener('change', () => {
  showModelHint();
  // The same file under another name: a mismatch is refused by loadMidas, which says why.
  if (weightsSource) void loadWeights(weightsSource.source, weightsSource.name);
});

for (const target of [drop, document.body]) {
  target.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  target.addEventListener('dragleave', () => drop.classList.remove('over'));
  target.addEventListener('drop', (e) => {
    e.preventDefault();
    e.stopPropagation();
    drop.classList.remove('over');
    const files = [...(e.dataTransfer?.files ?? [])];
    const w = files.find(isWeights);
    const img = files.find((f) => f !== w && f.type.startsWith('image/'));
    if (w) void loadWeights(w, w.name);
    if (img) void setImage(img, img.name);
    if (!w && !img && files.length) showError(new Error(`not an image or a .safetensors file: ${files.map((f) => f.name).join(', ')}`));
  });
}

// ---- start --------------------------------------------------------------------------------

async function start(): Promise<void> {
  const named = params.get('model');
  if (named !== null) {
    if (!(MODEL_NAMES as readonly string[]).includes(named) && named !== 'auto') {
      showError(new Error(`model=${named}: unknown model (choose from auto, ${MODEL_NAMES.join(', ')})`));
      return;
    }
    modelSelect.value = named;
  }
  showModelHint();
  try {
    await openRuntime();
  } catch (e) {
    gpuError = e;
    gpuStatus.textContent = 'WebGPU: not available';
    showError(e);
    return;
  }
  state.status = 'idle';
  try {
    const arch = params.get('arch');
    if (arch) {
      const response = await fetch(arch);
      if (!response.ok) throw new Error(`arch ${arch}: HTTP ${response.status}`);
      config = (await response.json()) as MidasConfig;
    }
    const weights = params.get('weights');
    const img = params.get('image');
    if (img) {
      const response = await fetch(img);
      if (!response.ok) throw new Error(`image ${img}: HTTP ${response.status}`);
      await setImage(await response.blob(), img);
    }
    if (weights) {
      weightsUrl.value = weights;
      await loadWeights(weights, weights.replace(/^.*\//, ''));
    }
  } catch (e) {
    showError(e);
  }
}

void start();
