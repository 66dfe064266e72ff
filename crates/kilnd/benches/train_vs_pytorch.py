"""PyTorch eager reference for benches/train_vs_pytorch.rs: kiln's `cnn` (Fashion-MNIST shape,
default config) trained with Adam on one fixed batch; prints steps/s as JSON."""
import json
import sys
import time

import torch
from torch import nn

batch, steps, warmup, threads = (int(a) for a in sys.argv[1:5])
torch.set_num_threads(threads)
torch.manual_seed(0)


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(1, 32, 3, padding=1), nn.Conv2d(32, 64, 3, padding=1)])
        self.hidden = nn.Linear(64 * 7 * 7, 128)
        self.output = nn.Linear(128, 10)

    def forward(self, x):
        for conv in self.convs:
            x = torch.max_pool2d(torch.relu(conv(x)), 2)
        return self.output(torch.relu(self.hidden(x.flatten(1))))


model = Cnn()
optim = torch.optim.Adam(model.parameters(), lr=1e-3)
x = torch.rand(batch, 1, 28, 28)
y = torch.randint(0, 10, (batch,))
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
