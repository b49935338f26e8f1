"""PyTorch peers of bench/googlenet.ts: BVLC GoogLeNet (models/bvlc_googlenet/deploy.prototxt),
written out here without torchvision, with the weights Kiln drew (one .f32 file per blob, named
after the Caffe layer), timed as bench/peers/torch_peers.py times its networks.

Usage: python3 googlenet_torch.py <dir written by bench/googlenet.ts>  (prints one JSON object)

Variants per batch size: eager NCHW, eager channels_last, CUDA-graph replay (channels_last and
NCHW) and
torch.compile(mode="reduce-overhead") (channels_last). FP32, TF32 off. Every weight file must
load into a module of the same name and shape, and every module must get one: that checks this
definition against the prototxt Kiln parsed.
"""
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_peers import time_device, time_host  # noqa: E402  (also turns TF32 off)

# (name, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj), from deploy.prototxt.
INCEPTIONS = [
    ("inception_3a", 64, 96, 128, 16, 32, 32),
    ("inception_3b", 128, 128, 192, 32, 96, 64),
    ("inception_4a", 192, 96, 208, 16, 48, 64),
    ("inception_4b", 160, 112, 224, 24, 64, 64),
    ("inception_4c", 128, 128, 256, 24, 64, 64),
    ("inception_4d", 112, 144, 288, 32, 64, 64),
    ("inception_4e", 256, 160, 320, 32, 128, 128),
    ("inception_5a", 256, 160, 320, 32, 128, 128),
    ("inception_5b", 384, 192, 384, 48, 128, 128),
]


class Inception(nn.Module):
    def __init__(self, cin, c1, c3r, c3, c5r, c5, cp):
        super().__init__()
        self.b1 = nn.Conv2d(cin, c1, 1)
        self.b3r = nn.Conv2d(cin, c3r, 1)
        self.b3 = nn.Conv2d(c3r, c3, 3, padding=1)
        self.b5r = nn.Conv2d(cin, c5r, 1)
        self.b5 = nn.Conv2d(c5r, c5, 5, padding=2)
        self.proj = nn.Conv2d(cin, cp, 1)

    def forward(self, x):
        a = F.relu(self.b1(x))
        b = F.relu(self.b3(F.relu(self.b3r(x))))
        c = F.relu(self.b5(F.relu(self.b5r(x))))
        d = F.relu(self.proj(F.max_pool2d(x, 3, 1, 1, ceil_mode=True)))
        return torch.cat([a, b, c, d], 1)


class GoogLeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3)
        self.conv2r = nn.Conv2d(64, 64, 1)
        self.conv2 = nn.Conv2d(64, 192, 3, padding=1)
        self.lrn = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        cin, blocks = 192, []
        for _, c1, c3r, c3, c5r, c5, cp in INCEPTIONS:
            blocks.append(Inception(cin, c1, c3r, c3, c5r, c5, cp))
            cin = c1 + c3 + c5 + cp
        self.blocks = nn.ModuleList(blocks)
        self.classifier = nn.Linear(1024, 1000)

    def forward(self, x):
        x = self.lrn(F.max_pool2d(F.relu(self.conv1(x)), 3, 2, ceil_mode=True))
        x = F.relu(self.conv2(F.relu(self.conv2r(x))))
        x = F.max_pool2d(self.lrn(x), 3, 2, ceil_mode=True)
        for i, b in enumerate(self.blocks):
            x = b(x)
            if i in (1, 6):  # pool3/3x3_s2 after 3b, pool4/3x3_s2 after 4e
                x = F.max_pool2d(x, 3, 2, ceil_mode=True)
        x = F.avg_pool2d(x, 7, 1)
        return F.softmax(self.classifier(x.flatten(1)), dim=1)

    def caffe_names(self):
        """Caffe layer name -> module, as deploy.prototxt names them."""
        names = {
            "conv1/7x7_s2": self.conv1,
            "conv2/3x3_reduce": self.conv2r,
            "conv2/3x3": self.conv2,
            "loss3/classifier": self.classifier,
        }
        for (n, *_), b in zip(INCEPTIONS, self.blocks):
            names.update({
                f"{n}/1x1": b.b1,
                f"{n}/3x3_reduce": b.b3r,
                f"{n}/3x3": b.b3,
                f"{n}/5x5_reduce": b.b5r,
                f"{n}/5x5": b.b5,
                f"{n}/pool_proj": b.proj,
            })
        return names


def load_weights(model, d, blobs):
    modules = model.caffe_names()
    seen = set()
    with torch.no_grad():
        for b in blobs:
            m = modules.get(b["layer"])
            if m is None:
                raise SystemExit(f"no module for Caffe layer {b['layer']}")
            p = m.weight if b["slot"] == "weights" else m.bias
            data = np.fromfile(os.path.join(d, b["file"]), dtype="<f4")
            if data.size != p.numel():
                raise SystemExit(f"{b['layer']}.{b['slot']}: {data.size} values for {tuple(p.shape)}")
            p.copy_(torch.from_numpy(data).reshape(p.shape))
            seen.add((b["layer"], b["slot"]))
    missing = [n for n in modules if (n, "weights") not in seen or (n, "bias") not in seen]
    if missing:
        raise SystemExit(f"no weights for {missing}")


def graph_variant(model, x_dev, x_host, runs):
    """CUDA-graph replay: static input/output buffers in x_dev's layout, captured once."""
    static_x = x_dev.clone()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            model(static_x)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        static_y = model(static_x)

    def graph_host(x):
        static_x.copy_(x)
        g.replay()
        return static_y.cpu()

    return {"host_us": time_host(graph_host, x_host, runs), "device_us": time_device(g.replay, runs)}


def variants(model, x_host, runs, compile_ok):
    dev = torch.device("cuda")
    out = {}
    with torch.inference_mode():
        x_dev = x_host.to(dev)
        reference = model(x_dev).cpu()
        out["eager"] = {
            "host_us": time_host(lambda x: model(x.to(dev)).cpu(), x_host, runs),
            "device_us": time_device(lambda: model(x_dev), runs),
        }
        cl = model.to(memory_format=torch.channels_last)
        x_cl = x_dev.contiguous(memory_format=torch.channels_last)
        out["eager_cl"] = {
            "host_us": time_host(
                lambda x: cl(x.to(dev).contiguous(memory_format=torch.channels_last)).cpu(), x_host, runs),
            "device_us": time_device(lambda: cl(x_cl), runs),
        }
        for key, x_in in (("cuda_graph", x_cl), ("cuda_graph_nchw", x_dev)):
            if key == "cuda_graph_nchw":
                model.to(memory_format=torch.contiguous_format)
            out[key] = graph_variant(model, x_in, x_host, runs)
        model.to(memory_format=torch.channels_last)
        if not compile_ok:
            out["torch_compile"] = {"error": "skipped: over the compile time budget"}
        else:
            try:
                t0 = time.perf_counter()
                compiled = torch.compile(cl, mode="reduce-overhead", dynamic=False)
                for _ in range(3):
                    compiled(x_cl)
                out["torch_compile"] = {
                    "device_us": time_device(lambda: compiled(x_cl), runs),
                    "compile_s": time.perf_counter() - t0,
                }
            except Exception as e:  # a peer that cannot run is reported, not fatal
                out["torch_compile"] = {"error": f"{type(e).__name__}: {e}"[:300]}
        model.to(memory_format=torch.contiguous_format)
    return out, reference


def main():
    d = sys.argv[1]
    spec = json.load(open(os.path.join(d, "spec.json")))
    started = time.perf_counter()
    model = GoogLeNet()
    load_weights(model, d, spec["blobs"])
    model = model.cuda().eval()
    result = {"torch": torch.__version__, "device": torch.cuda.get_device_name(), "workloads": {}}
    for w in spec["workloads"]:
        x = torch.from_numpy(np.fromfile(os.path.join(d, w["input"]), dtype="<f4").reshape(w["shape"]))
        compile_ok = time.perf_counter() - started < spec.get("compile_budget_s", 240)
        timings, y = variants(model, x, w["runs"], compile_ok)
        y.numpy().astype("<f4").tofile(os.path.join(d, w["name"] + ".torch_out.f32"))
        result["workloads"][w["name"]] = timings
        print(f"peers: {w['name']} done ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
