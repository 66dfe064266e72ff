"""PyTorch eager reference for benches/train_vs_pytorch.rs: kiln's `cnn` (Fashion-MNIST shape,
default config) or `rnn` (LSTM or GRU over 48 token ids, embedding 64, hidden 128) trained with
Adam on one fixed batch; prints steps/s and the phase split as JSON.

usage: train_vs_pytorch.py ARCH BATCH STEPS WARMUP THREADS [--channels-last] [--pool-first]
                           [--fused-adam]
  ARCH            cnn | lstm | gru
  --channels-last the cnn's weights and input in channels-last (NHWC) memory format, the
                  layout PyTorch's CPU performance guide recommends for convolutions
  --pool-first    the cnn as conv → max-pool → ReLU (the same function: ReLU commutes with max)
  --fused-adam    torch.optim.Adam(fused=True), the single-kernel Adam (CPU since torch 2.4)
"""
import json
import sys
import time

import torch
from torch import nn

arch = sys.argv[1]
batch, steps, warmup, threads = (int(a) for a in sys.argv[2:6])
flags = set(sys.argv[6:])
unknown = flags - {"--channels-last", "--pool-first", "--fused-adam"}
if unknown:
    sys.exit(f"unknown flags {sorted(unknown)}")
torch.set_num_threads(threads)
torch.manual_seed(0)

VOCAB, TOKENS, EMBED, HIDDEN, RNN_CLASSES = 12000, 48, 64, 128, 8


class Cnn(nn.Module):
    def __init__(self, pool_first):
        super().__init__()
        self.pool_first = pool_first
        self.convs = nn.ModuleList([nn.Conv2d(1, 32, 3, padding=1), nn.Conv2d(32, 64, 3, padding=1)])
        self.hidden = nn.Linear(64 * 7 * 7, 128)
        self.output = nn.Linear(128, 10)

    def forward(self, x):
        for conv in self.convs:
            if self.pool_first:
                x = torch.relu(torch.max_pool2d(conv(x), 2))
            else:
                x = torch.max_pool2d(torch.relu(conv(x)), 2)
        return self.output(torch.relu(self.hidden(x.flatten(1))))


class Rnn(nn.Module):
    def __init__(self, cell):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, EMBED)
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](EMBED, HIDDEN, batch_first=True)
        self.output = nn.Linear(HIDDEN, RNN_CLASSES)

    def forward(self, tokens):
        states, _ = self.rnn(self.embedding(tokens))
        return self.output(states[:, -1])


if arch == "cnn":
    model = Cnn("--pool-first" in flags)
    x = torch.rand(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    if "--channels-last" in flags:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
elif arch in ("lstm", "gru"):
    model = Rnn(arch)
    x = torch.randint(0, VOCAB, (batch, TOKENS))
    y = torch.randint(0, RNN_CLASSES, (batch,))
else:
    sys.exit(f"unknown arch {arch!r}")
optim = torch.optim.Adam(model.parameters(), lr=1e-3, fused="--fused-adam" in flags or None)
loss_fn = nn.CrossEntropyLoss()

phases = [0.0, 0.0, 0.0]


def step(record):
    t0 = time.perf_counter()
    optim.zero_grad()
    loss = loss_fn(model(x), y)
    loss.item()
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    optim.step()
    t3 = time.perf_counter()
    if record:
        for i, (a, b) in enumerate([(t0, t1), (t1, t2), (t2, t3)]):
            phases[i] += b - a


for _ in range(warmup):
    step(False)
start = time.perf_counter()
for _ in range(steps):
    step(True)
seconds = time.perf_counter() - start
ms = [p * 1000 / steps for p in phases]
print(json.dumps({"steps_per_sec": steps / seconds, "forward_ms": ms[0], "backward_ms": ms[1],
                  "optimizer_ms": ms[2], "threads": torch.get_num_threads()}))
