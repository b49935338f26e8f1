"""PyTorch peers of bench/run.ts: the same networks with the same weights, timed the same way.

Usage: python3 torch_peers.py <dir written by bench/run.ts>  (prints one JSON object)

For each workload and variant (eager, CUDA graph replay, torch.compile) it reports:
  host_us:   median of per-call wall times of host input -> host output
             (copy in, run, copy out, which synchronizes), one call per timed run;
  device_us: median of CUDA-event intervals around each run of a back-to-back sequence with
             inputs and outputs resident on the device (no host sync between runs).
FP32 throughout: TF32 is disabled for matmuls and cuDNN convolutions.
"""
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_float32_matmul_precision("highest")

WARMUP = 50


def load(d, name, shape):
    return torch.from_numpy(np.fromfile(os.path.join(d, name + ".f32"), dtype="<f4").reshape(shape))


class LeNet(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.ip1 = nn.Linear(800, 500)
        self.ip2 = nn.Linear(500, 10)
        with torch.no_grad():
            self.conv1.weight.copy_(load(d, "lenet.conv1", (20, 1, 5, 5)))
            self.conv1.bias.copy_(load(d, "lenet.conv1Bias", (20,)))
            self.conv2.weight.copy_(load(d, "lenet.conv2", (50, 20, 5, 5)))
            self.conv2.bias.copy_(load(d, "lenet.conv2Bias", (50,)))
            self.ip1.weight.copy_(load(d, "lenet.ip1", (500, 800)))
            self.ip1.bias.copy_(load(d, "lenet.ip1Bias", (500,)))
            self.ip2.weight.copy_(load(d, "lenet.ip2", (10, 500)))
            self.ip2.bias.copy_(load(d, "lenet.ip2Bias", (10,)))

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2, 2)
        x = F.max_pool2d(self.conv2(x), 2, 2)
        x = F.relu(self.ip1(x.flatten(1)))
        return F.softmax(self.ip2(x), dim=1)


class Mlp(nn.Module):
    def __init__(self, d, sizes):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(sizes[i], sizes[i + 1]) for i in range(len(sizes) - 1))
        with torch.no_grad():
            for i, l in enumerate(self.layers):
                l.weight.copy_(load(d, f"mlp.w{i}", (sizes[i + 1], sizes[i])))
                l.bias.copy_(load(d, f"mlp.b{i}", (sizes[i + 1],)))

    def forward(self, x):
        for i, l in enumerate(self.layers):
            x = l(x)
            if i + 1 < len(self.layers):
                x = F.relu(x)
        return x


def median_us(samples):
    return statistics.median(samples) * 1e6


def time_host(run, x_host, runs):
    for _ in range(WARMUP):
        run(x_host)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run(x_host)
        samples.append(time.perf_counter() - t0)
    return median_us(samples)


def time_device(run, runs):
    for _ in range(WARMUP):
        run()
    events = [torch.cuda.Event(enable_timing=True) for _ in range(runs + 1)]
    torch.cuda.synchronize()
    events[0].record()
    for i in range(runs):
        run()
        events[i + 1].record()
    torch.cuda.synchronize()
    return statistics.median(events[i].elapsed_time(events[i + 1]) * 1e3 for i in range(runs))


def variants(model, x_host, runs):
    dev = torch.device("cuda")
    x_dev = x_host.to(dev)
    out = {}
    with torch.inference_mode():
        eager = lambda x: model(x.to(dev)).cpu()
        reference = eager(x_host)
        out["eager"] = {
            "host_us": time_host(eager, x_host, runs),
            "device_us": time_device(lambda: model(x_dev), runs),
        }
        # CUDA graph replay: static input/output buffers, captured once.
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

        out["cuda_graph"] = {
            "host_us": time_host(graph_host, x_host, runs),
            "device_us": time_device(g.replay, runs),
        }
        try:
            compiled = torch.compile(model, dynamic=False)
            compiled(x_dev)
            out["torch_compile"] = {
                "host_us": time_host(lambda x: compiled(x.to(dev)).cpu(), x_host, runs),
                "device_us": time_device(lambda: compiled(x_dev), runs),
            }
        except Exception as e:  # a peer that cannot run is reported, not fatal
            out["torch_compile"] = {"error": f"{type(e).__name__}: {e}"[:300]}
    return out, reference


def main():
    d = sys.argv[1]
    spec = json.load(open(os.path.join(d, "spec.json")))
    runs = spec["runs"]
    torch.manual_seed(0)
    models = {"lenet": LeNet(d).cuda().eval(), "mlp": Mlp(d, spec["mlp_sizes"]).cuda().eval()}
    result = {"torch": torch.__version__, "device": torch.cuda.get_device_name(), "workloads": {}}
    for w in spec["workloads"]:
        x = load(d, w["input"], w["shape"])
        timings, y = variants(models[w["model"]], x, runs)
        y.numpy().astype("<f4").tofile(os.path.join(d, w["name"] + ".torch_out.f32"))
        result["workloads"][w["name"]] = timings
        print(f"peers: {w['name']} done", file=sys.stderr, flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
