"""PyTorch FP16 peers of bench/precision.ts: LeNet (sampleMNIST's shapes) at batch 256 and BVLC
GoogLeNet (googlenet_torch.py's definition) at batch 128, both in FP16 (model.half()), GoogLeNet
channels_last, timed as CUDA-graph replay back to back on the device (torch_peers.time_device).
Random weights: only the time is compared.

Usage: python3 precision_torch.py [--no-googlenet]   (prints one JSON object: µs per run)
"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_peers import time_device  # noqa: E402

RUNS = 100


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.ip1 = nn.Linear(800, 500)
        self.ip2 = nn.Linear(500, 10)

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2, 2)
        x = F.max_pool2d(self.conv2(x), 2, 2)
        x = F.relu(self.ip1(x.flatten(1)))
        return F.softmax(self.ip2(x), dim=1)


def graph_us(model, x):
    static_x = x.clone()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s), torch.no_grad():
        for _ in range(3):
            model(static_x)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g), torch.no_grad():
        model(static_x)
    return time_device(g.replay, RUNS)


def main():
    torch.manual_seed(0)
    dev = torch.device("cuda")
    out = {"device": torch.cuda.get_device_name()}
    lenet = LeNet().to(dev).half().eval()
    out["lenet_b256_fp16_graph"] = graph_us(lenet, torch.randn(256, 1, 28, 28, device=dev).half())
    print("peers: lenet done", file=sys.stderr, flush=True)
    if "--no-googlenet" not in sys.argv:
        from googlenet_torch import GoogLeNet  # noqa: E402

        net = GoogLeNet().to(dev).half().eval().to(memory_format=torch.channels_last)
        x = torch.randn(128, 3, 224, 224, device=dev).half().contiguous(memory_format=torch.channels_last)
        out["googlenet_b128_fp16_channels_last_graph"] = graph_us(net, x)
        print("peers: googlenet done", file=sys.stderr, flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
