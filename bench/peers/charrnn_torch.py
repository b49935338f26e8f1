"""PyTorch peers of bench/charrnn.ts: sampleCharRNN's dimensions (embedding 512, 2-layer LSTM of
hidden 512, vocabulary 65) as nn.Embedding -> nn.LSTM (cuDNN) -> nn.Linear -> topk(1), FP32 with
TF32 off, in three variants: eager, one step captured in a CUDA graph, torch.compile
(mode="reduce-overhead"). Weights are PyTorch's seeded defaults: timing does not depend on them.

Usage: python3 charrnn_torch.py <runs> <generate_steps>   (prints one JSON object, last line)

Per variant:
  step1_dev_us / step1_host_us  one step at batch 1: device-resident back-to-back (CUDA events
                                around each step), and host -> host (index and states copied in,
                                next index and states copied out);
  gen_us_per_char               <generate_steps> steps with the argmax fed back on the device,
                                the indices collected on the device, one sync at the end
                                (wall time / steps);
  step64_dev_us                 one step at batch 64, device-resident (samples/s = 64 / this).
"""
import json
import statistics
import sys
import time

import torch
import torch.nn as nn

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_float32_matmul_precision("highest")

VOCAB, EMBED, HIDDEN, LAYERS = 65, 512, 512, 2
WARMUP = 30


class CharRnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, EMBED)
        self.lstm = nn.LSTM(EMBED, HIDDEN, LAYERS, batch_first=True)
        self.fc = nn.Linear(HIDDEN, VOCAB)

    def forward(self, index, h, c):
        y, (h2, c2) = self.lstm(self.embedding(index), (h, c))
        nxt = torch.topk(self.fc(y[:, 0]), 1, dim=1).indices
        return nxt, h2, c2


def inputs(batch):
    g = torch.Generator().manual_seed(batch)
    idx = torch.randint(0, VOCAB, (batch, 1), generator=g)
    h = torch.rand(LAYERS, batch, HIDDEN, generator=g) - 0.5
    c = torch.rand(LAYERS, batch, HIDDEN, generator=g) - 0.5
    return idx, h, c


def device_us(step, runs):
    """Median CUDA-event interval around each of `runs` back-to-back steps."""
    for _ in range(WARMUP):
        step()
    ev = [torch.cuda.Event(enable_timing=True) for _ in range(runs + 1)]
    torch.cuda.synchronize()
    ev[0].record()
    for i in range(runs):
        step()
        ev[i + 1].record()
    torch.cuda.synchronize()
    return statistics.median(ev[i].elapsed_time(ev[i + 1]) * 1000 for i in range(runs))


def host_us(call, runs):
    for _ in range(WARMUP):
        call()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(times)


def variant(name, model, runs, steps):
    """The three measures for one variant; `name` picks eager, cuda_graph or torch_compile."""
    out = {}
    for batch in (1, 64):
        idx, h, c = (t.cuda() for t in inputs(batch))
        if name == "eager":
            f = model
        elif name == "torch_compile":
            compiled = torch.compile(model, mode="reduce-overhead", dynamic=False)

            def f(i, hh, cc, compiled=compiled):
                # reduce-overhead reuses its output memory: clone what is fed back or kept.
                return tuple(t.clone() for t in compiled(i, hh, cc))
        else:
            si, sh, sc = idx.clone(), h.clone(), c.clone()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(3):
                    model(si, sh, sc)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                so = model(si, sh, sc)
            # The step with feedback: outputs copied into the static inputs inside the graph.
            fb_graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(fb_graph):
                fo = model(si, sh, sc)
                si.copy_(fo[0])
                sh.copy_(fo[1])
                sc.copy_(fo[2])

            def f(i, hh, cc, graph=graph, so=so, si=si, sh=sh, sc=sc):
                if i is not si:
                    si.copy_(i), sh.copy_(hh), sc.copy_(cc)
                graph.replay()
                return so

        with torch.no_grad():
            if name == "cuda_graph":
                step = lambda g=graph: g.replay()  # noqa: E731
            else:
                step = lambda: f(idx, h, c)  # noqa: E731
            key = "step1" if batch == 1 else "step64"
            out[f"{key}_dev_us"] = device_us(step, runs)
            if batch == 1:
                hi, hh, hc = (t.pin_memory() for t in inputs(1))

                def call():
                    r = f(hi.cuda(non_blocking=True), hh.cuda(non_blocking=True),
                          hc.cuda(non_blocking=True))
                    return [t.cpu() for t in r]

                out["step1_host_us"] = host_us(call, runs)
                # Generation: argmax fed back on the device, indices collected on the device.
                collected = torch.empty(steps, 1, 1, dtype=torch.int64, device="cuda")

                def generate():
                    if name == "cuda_graph":
                        si.copy_(idx), sh.copy_(h), sc.copy_(c)
                        for s in range(steps):
                            fb_graph.replay()
                            collected[s].copy_(si)
                    else:
                        i, hh, cc = idx, h, c
                        for s in range(steps):
                            i, hh, cc = f(i, hh, cc)
                            collected[s].copy_(i)
                    torch.cuda.synchronize()

                generate()
                t = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    generate()
                    t.append((time.perf_counter() - t0) * 1e6 / steps)
                out["gen_us_per_char"] = statistics.median(t)
    return out


def main():
    runs, steps = int(sys.argv[1]), int(sys.argv[2])
    torch.manual_seed(0)
    model = CharRnn().cuda().eval()
    result = {"torch": torch.__version__, "device": torch.cuda.get_device_name(), "variants": {}}
    for name in ("eager", "cuda_graph", "torch_compile"):
        t0 = time.perf_counter()
        try:
            result["variants"][name] = variant(name, model, runs, steps)
        except Exception as e:  # a peer that fails is reported, not fatal
            result["variants"][name] = {"error": f"{type(e).__name__}: {e}"[:300]}
        print(f"peer {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
