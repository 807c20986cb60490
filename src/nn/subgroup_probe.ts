// Whether a device's subgroups behave as the fast conv kernels assume. A driver can
// report one subgroup size and run another: lavapipe 25.0 with
// LP_NATIVE_VECTOR_WIDTH=1024 reports 32 lanes, but numbers its invocations 0-15 and
// broadcasts from a lane past 15 give 0, so every kernel that shares weights across the
// subgroup computes wrong convolutions. One small dispatch at device open tells, and a
// device that fails it runs the kernels' portable paths instead (slower, correct).
import { workgroupWidth } from '../kernels/conv2d_tiled.js';

/**
 * The probe for `width` lanes and a workgroup of `threads`: each thread writes 1 where
 * every check holds, else 0. Values come from a buffer (`tag[i]` = 1000 + i), so the
 * compiler cannot fold a check away (broadcasting the lane id itself folds to the
 * lane asked for).
 * - Each thread reads the tag of its own lane; broadcasts from lanes 0..width-1 give
 *   those lanes' tags (the GEMM kernel's weight sharing, in a workgroup of two or more
 *   subgroups).
 * - With `rows` (a workgroup of `width` threads: the rows kernel), the thread's lane is
 *   its local index, and a shuffle from lane (lane + 1) mod width gives the next
 *   thread's tag.
 */
export function probeShader(width: number, threads: number, rows: boolean): string {
  const checks: string[] = [];
  for (let l = 0; l < width; l++) checks.push(`subgroupBroadcast(mine, ${l}u) == tag[${l}]`);
  if (rows) {
    checks.push('lane == lid.x');
    checks.push(`subgroupShuffle(tag[lid.x], (lane & ~${width - 1}u) | ((lane + 1u) & ${width - 1}u)) == tag[(lid.x + 1u) % ${width}u]`);
  }
  // Joined with `&`, not `&&`: a short circuit would put the later broadcasts in
  // non-uniform control flow, which WGSL rejects.
  return `enable subgroups;
@group(0) @binding(0) var<storage, read> tag: array<u32>;
@group(0) @binding(1) var<storage, read_write> ok: array<u32>;
@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let mine = tag[min(lane, ${TAGS - 1}u)];
  var good = true;
${checks.map((c) => `  good = good & (${c});`).join('\n')}
  ok[wid.x * ${threads}u + lid.x] = select(0u, 1u, good);
}`;
}

/** Tags in the probe's buffer: one per lane a subgroup may have (WebGPU allows up to 128). */
const TAGS = 128;

const WORKGROUPS = 2;

/**
 * Runs the probe for kernels planned with `width` lanes (the adapter's smallest
 * subgroup) on a device opened with the `subgroups` feature. Resolves to null when the
 * subgroups behave as the kernels assume, else to a one-line reason.
 */
export async function probeSubgroups(device: GPUDevice, width: number, maxThreads: number): Promise<string | null> {
  if (!(width >= 4 && width <= 128 && (width & (width - 1)) === 0 && width <= maxThreads)) return null; // the kernels plan without subgroups then
  const shapes = [
    { threads: workgroupWidth(width, maxThreads), rows: false },
    { threads: width, rows: true },
  ];
  const results = await Promise.all(shapes.map(({ threads, rows }) => runProbe(device, probeShader(width, threads, rows), threads)));
  const failed = shapes.filter((_, i) => !results[i]);
  if (failed.length === 0) return null;
  return `subgroups of ${width} lanes failed the lane probe (${failed.map((s) => `${s.threads}-thread workgroups`).join(', ')}): broadcasts or shuffles do not reach the lanes the driver reports`;
}

async function runProbe(device: GPUDevice, code: string, threads: number): Promise<boolean> {
  const n = WORKGROUPS * threads;
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ code });
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const tag = device.createBuffer({ size: TAGS * 4, usage: GPUBufferUsage.STORAGE, mappedAtCreation: true });
  new Uint32Array(tag.getMappedRange()).set(Array.from({ length: TAGS }, (_, i) => 1000 + i));
  tag.unmap();
  const out = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  try {
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: tag } }, { binding: 1, resource: { buffer: out } }] }));
    pass.dispatchWorkgroups(WORKGROUPS);
    pass.end();
    encoder.copyBufferToBuffer(out, 0, read, 0, n * 4);
    device.queue.submit([encoder.finish()]);
    // A driver that rejects the shader has no usable subgroups either.
    if (await device.popErrorScope()) return false;
    await read.mapAsync(GPUMapMode.READ);
    const ok = new Uint32Array(read.getMappedRange()).every((v) => v === 1);
    read.unmap();
    return ok;
  } finally {
    tag.destroy();
    out.destroy();
    read.destroy();
  }
}
