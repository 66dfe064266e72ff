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


def step():
    optim.zero_grad()
    loss = loss_fn(model(x), y)
    loss.item()
    loss.backward()
    optim.step()


for _ in range(warmup):
    step()
start = time.perf_counter()
for _ in range(steps):
    step()
print(json.dumps({"steps_per_sec": steps / (time.perf_counter() - start), "threads": torch.get_num_threads()}))
