"""Writes the small PyTorch files under assets/fixtures/ that the import tests read.

Run once with the libtorch install's Python packages on the path:
    PYTHONPATH=~/.cache/kiln/torch-2.9.0 python3 scripts/make-fixtures.py
The outputs are committed; tests never need Python.
"""
import os
import torch
from torch import nn

OUT = os.path.join(os.path.dirname(__file__), "..", "assets", "fixtures")
torch.manual_seed(7)


class Mlp(nn.Module):
    """Mirrors kiln's mlp: hidden.<i> linear layers, then output."""

    def __init__(self, inputs, hidden, classes):
        super().__init__()
        widths = [inputs] + hidden
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.output = nn.Linear(widths[-1], classes)

    def forward(self, x):
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.output(x)


class Cnn(nn.Module):
    """Mirrors kiln's cnn: 3x3 'same' convs with 2x2 max-pool, hidden linear, output."""

    def __init__(self, channels, size, conv_channels, hidden, classes):
        super().__init__()
        widths = [channels] + conv_channels
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(widths, widths[1:]))
        side = size >> len(conv_channels)
        self.hidden = nn.Linear(widths[-1] * side * side, hidden)
        self.output = nn.Linear(hidden, classes)

    def forward(self, x):
        for conv in self.convs:
            x = torch.max_pool2d(torch.relu(conv(x)), 2)
        return self.output(torch.relu(self.hidden(x.flatten(1))))


class Evil:
    """Unpickling this would run a shell command; a safe reader must refuse it."""

    def __reduce__(self):
        return (os.system, ("touch /tmp/kiln-pickle-executed",))


def main():
    mlp = Mlp(4, [8], 3)
    torch.save(mlp.state_dict(), os.path.join(OUT, "mlp-4-8-3.pt"))
    x = torch.tensor([[0.5, -1.0, 2.0, 0.25]])
    with open(os.path.join(OUT, "mlp-4-8-3.expected.txt"), "w") as f:
        f.write(" ".join(f"{v:.6f}" for v in mlp(x)[0].tolist()) + "\n")
    torch.save(Mlp(4, [9], 3).state_dict(), os.path.join(OUT, "mlp-4-9-3.pt"))
    torch.save(Cnn(1, 8, [4], 16, 3).state_dict(), os.path.join(OUT, "cnn-8x8.pt"))
    torch.save({"hidden.0.weight": Evil()}, os.path.join(OUT, "evil.pt"))


if __name__ == "__main__":
    main()
