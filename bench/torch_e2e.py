"""PyTorch CPU side of `bench e2e`: MiDaS v2 / v2.1 large (MidasNet from the test
fixtures' reference) or v2.1 small (MidasNetSmall, test/fixtures/small), random weights,
at S x S, timed as `median of N runs of model(x)` under no_grad with
torch.set_num_threads(THREADS), plus the same pipeline our e2e figure covers (uint8 RGB
in -> /255, ImageNet normalization -> model -> bicubic back -> numpy out).

With --weights (a safetensors file the bench writes from bench/random-weights.ts) the
network runs on exactly our random weights instead of its own, so that its output can
be checked against ours and ONNX Runtime's. --share DIR then, for each size S, reads
DIR/input-S.bin (our network's input read back from the GPU, f32 NCHW 1x3xSxS), writes
model(x) to DIR/torch-S.bin (f32 1xSxS) and exports the network at that size to
DIR/midas-S.onnx for bench/ort-run.ts (static shapes: the small network's "same"
padding reads x.shape, which tracing turns into constants).

usage: /usr/bin/python3 bench/torch_e2e.py --sizes 256,384 --runs 3 [--model v2|v2.1|small] [--threads 2]
                                           [--runs-for 512=2] [--min-ms 3000]
                                           [--weights W.safetensors] [--share DIR] [--no-timing]
Prints one JSON object on stdout (progress on stderr).
"""
import argparse
import json
import os
import statistics
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "test", "fixtures")

# torch 1.13 exports up to opset 17; ONNX Runtime 1.2x-1.31 runs it (every op MiDaS
# needs: Conv, BatchNormalization, Relu, Add, Resize, Pad, Sigmoid, Mul, Clip).
ONNX_OPSET = 17

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def busy_jiffies():
    """Busy CPU time of the whole machine (all cores), in jiffies (USER_HZ = 100)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        return sum(v) - v[3] - v[4]
    except OSError:
        return None


class LoadWatch:
    """Share of all cores' time that other processes used (this one's CPU time taken out)."""

    def __init__(self):
        self.busy0, self.own0, self.t0 = busy_jiffies(), time.process_time(), time.perf_counter()

    def others_share(self):
        b1 = busy_jiffies()
        wall = time.perf_counter() - self.t0
        if self.busy0 is None or b1 is None or wall <= 0:
            return None
        busy = (b1 - self.busy0) / 100.0
        own = time.process_time() - self.own0
        return min(1.0, max(0.0, (busy - own) / ((os.cpu_count() or 1) * wall)))


def count_macs(model, size):
    """Conv MACs of one forward pass at size x size, from forward hooks (a cross-check of the TS count)."""
    total = {"n": 0}

    def hook(m, inp, out):
        total["n"] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for h in handles:
        h.remove()
    return total["n"]


def build_model(name, seed, weights=None):
    """The reference network of a model name (bench/main.ts's --model), with random weights:
    its own (randomize) or ours (a safetensors file, see load_safetensors).
    The references are imported here, by model: each fixture folder has its own helpers."""
    if name == "small":
        sys.path.insert(0, os.path.join(FIXTURES, "small"))
        from midas_small_ref import MIDAS_SMALL, MidasNetSmall, randomize
        if weights:
            return load_safetensors(MidasNetSmall(MIDAS_SMALL), weights)
        # Its randomize() calibrates every conv and BN on one input, so activations stay
        # O(1) through the 23 blocks (and no denormals slow the CPU down); the values do
        # not change the work. A normalized-image-like input, without cv2.
        calib = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(seed))
        return randomize(MidasNetSmall(MIDAS_SMALL), seed, calib)
    sys.path.insert(0, os.path.join(FIXTURES, "midas"))
    from midas_ref import MIDAS_V2, MidasNet, randomize
    if weights:
        return load_safetensors(MidasNet(MIDAS_V2), weights)
    return randomize(MidasNet(MIDAS_V2), seed)


def load_safetensors(model, path):
    """Our random weights (a safetensors file of F32 tensors named like the checkpoint)
    into the reference network; every parameter and BN statistic must be in it."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    sd = model.state_dict()
    wanted = {k for k in sd if not k.endswith("num_batches_tracked")}
    if set(header) != wanted:
        raise SystemExit(f"{path}: keys differ from the network's: missing {sorted(wanted - set(header))[:5]}, "
                         f"unexpected {sorted(set(header) - wanted)[:5]}")
    loaded = {}
    for k, h in header.items():
        if h["dtype"] != "F32":
            raise SystemExit(f"{path}: {k} is {h['dtype']}, not F32")
        a, b = h["data_offsets"]
        t = torch.from_numpy(np.frombuffer(data, dtype="<f4", count=(b - a) // 4, offset=a).copy())
        loaded[k] = t.view(h["shape"])
    model.load_state_dict(loaded, strict=False)  # num_batches_tracked keep their zeros
    return model


def share(model, s, folder):
    """model(x) on our network input at size s, and the network exported to ONNX at s."""
    x = torch.from_numpy(np.fromfile(os.path.join(folder, f"input-{s}.bin"), dtype="<f4")).view(1, 3, s, s)
    with torch.no_grad():
        model(x).numpy().astype("<f4").tofile(os.path.join(folder, f"torch-{s}.bin"))
    t0 = time.perf_counter()
    # Kept off the bench's output: the exporter's UserWarnings are about its own passes
    # (constant folding of Slice, shape inference), and its TracerWarnings say that the
    # small network's "same" padding becomes constants for this size, as meant here.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(model, x, os.path.join(folder, f"midas-{s}.onnx"), opset_version=ONNX_OPSET,
                          input_names=["x"], output_names=["depth"], do_constant_folding=True)
    return time.perf_counter() - t0


def timed(fn, runs, min_ms, max_runs=20):
    """One warm-up, then at least `runs` timed calls, more (up to max_runs) until they add up to min_ms."""
    fn()
    ms = []
    while len(ms) < runs or (sum(ms) < min_ms and len(ms) < max(runs, max_runs)):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1000.0)
    return ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="384")
    ap.add_argument("--model", default="v2", choices=["v2", "v2.1", "small"],
                    help="v2 and v2.1 are one network (ResNeXt-101); small is MidasNet_small")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--runs-for", action="append", default=[], help="SIZE=RUNS, overrides --runs for one size")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-ms", type=float, default=3000.0,
                    help="keep timing (up to 20 runs) until the runs add up to this: short runs are noisy on a shared CPU")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-pipeline", action="store_true", help="time only model(x)")
    ap.add_argument("--weights", help="a safetensors file of our random weights (default: randomize(seed))")
    ap.add_argument("--share", help="folder: input-S.bin in; torch-S.bin and midas-S.onnx out (see above)")
    ap.add_argument("--no-timing", action="store_true", help="only --share's outputs and exports")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",") if s]
    runs_for = {int(k): int(v) for k, v in (r.split("=") for r in a.runs_for)}

    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    model = build_model(a.model, a.seed, a.weights).eval()
    build_s = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    out = {
        "model": a.model,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "params": params,
        "buildSeconds": build_s,
        "weights": "ours (--weights)" if a.weights else "randomize(seed)",
        "onnxOpset": ONNX_OPSET if a.share else None,
        "sizes": [],
    }
    g = torch.Generator().manual_seed(1)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    for s in sizes:
        export_s = None
        if a.share:
            export_s = share(model, s, a.share)
            print(f"  torch {s}x{s}: model(x) on our input written, ONNX (opset {ONNX_OPSET}) exported in {export_s:.1f} s",
                  file=sys.stderr, flush=True)
        if a.no_timing:
            out["sizes"].append({"size": s, "onnxExportSeconds": export_s})
            continue
        runs = runs_for.get(s, a.runs)
        img = torch.randint(0, 256, (s, s, 3), dtype=torch.uint8, generator=g).numpy()
        x = torch.randn(1, 3, s, s, generator=g)

        def net():
            with torch.no_grad():
                return model(x)

        def pipeline():
            # Our e2e covers the same steps: RGB bytes -> normalized tensor -> network ->
            # bicubic back to the image's size -> a float array on the CPU. (The hub's
            # cv2 INTER_CUBIC at an unchanged size is an identity, so it is left out.)
            with torch.no_grad():
                t = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
                t = ((t - mean) / std).contiguous()
                d = model(t)
                d = F.interpolate(d.unsqueeze(1), size=(s, s), mode="bicubic", align_corners=False).squeeze()
                return d.numpy().copy()

        macs = count_macs(model, s)
        watch = LoadWatch()
        ms = timed(net, runs, a.min_ms)
        others = watch.others_share()
        row = {"size": s, "runs": len(ms), "macs": macs, "ms": ms, "medianMs": statistics.median(ms), "minMs": min(ms),
               "othersCpuShare": others, "onnxExportSeconds": export_s}
        if not a.no_pipeline:
            watch = LoadWatch()
            pms = timed(pipeline, runs, a.min_ms)
            row.update({"pipelineRuns": len(pms), "pipelineMs": pms, "pipelineMedianMs": statistics.median(pms), "pipelineMinMs": min(pms),
                        "pipelineOthersCpuShare": watch.others_share()})
        out["sizes"].append(row)
        print(f"  torch {s}x{s}: model(x) median {row['medianMs']:.0f} ms (min {row['minMs']:.0f}), "
              f"{macs / 1e9:.1f} GMAC" + (f"; pipeline {row['pipelineMedianMs']:.0f} ms" if not a.no_pipeline else ""),
              file=sys.stderr, flush=True)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
