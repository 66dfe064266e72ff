"""The reference server for benches/serving.rs: FastAPI + uvicorn + PyTorch eager serving
kiln's `cnn` (same architecture, same weights) behind the same KServe v2 JSON infer route,
one request per forward pass, as such servers are usually written.

Usage: serving_fastapi.py <weights.safetensors> <port> <threads>
The weights are kiln's export (burn layout: Linear weights are [in, out]); read here with
torch.frombuffer, so the venv needs only fastapi and uvicorn.
"""

import json
import struct
import sys

import torch
import uvicorn
from fastapi import Body, FastAPI, HTTPException
from torch import nn

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    body = memoryview(data)[8 + length :]
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        t = torch.frombuffer(bytearray(body[start:end]), dtype=DTYPES[meta["dtype"]])
        tensors[name] = t.reshape(meta["shape"]).float()
    return tensors


class Cnn(nn.Module):
    def __init__(self, tensors):
        super().__init__()
        convs = sorted({k.split(".")[1] for k in tensors if k.startswith("convs.")}, key=int)
        self.convs = nn.ModuleList()
        for i in convs:
            w = tensors[f"convs.{i}.weight"]
            conv = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], padding=w.shape[2] // 2)
            conv.weight.data, conv.bias.data = w, tensors[f"convs.{i}.bias"]
            self.convs.append(conv)
        self.hidden = self.linear(tensors, "hidden")
        self.output = self.linear(tensors, "output")

    @staticmethod
    def linear(tensors, name):
        w = tensors[f"{name}.weight"].t().contiguous()  # burn keeps [in, out]
        layer = nn.Linear(w.shape[1], w.shape[0])
        layer.weight.data, layer.bias.data = w, tensors[f"{name}.bias"]
        return layer

    def forward(self, x):
        for conv in self.convs:
            x = torch.max_pool2d(torch.relu(conv(x)), 2)
        return self.output(torch.relu(self.hidden(x.flatten(1))))


weights, port, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
model = Cnn(load_safetensors(weights)).eval()
in_channels = model.convs[0].in_channels
app = FastAPI()


@app.get("/v2/health/ready")
def ready():
    return {"ready": True}


# A plain `def`: FastAPI runs it in its thread pool, and torch releases the GIL while it
# computes, which is the most concurrency this kind of server gets.
@app.post("/v2/models/{name}/infer")
def infer(name: str, body: dict = Body(...)):
    try:
        (tensor,) = body["inputs"]
        shape = tensor["shape"]
        if tensor["datatype"] != "FP32" or len(shape) != 4 or shape[1] != in_channels:
            raise ValueError("bad shape or datatype")
        x = torch.tensor(tensor["data"], dtype=torch.float32).reshape(shape)
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise HTTPException(status_code=400, detail=str(e))
    with torch.inference_mode():
        probs = torch.softmax(model(x), dim=1)
    return {
        "model_name": name,
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": list(probs.shape), "data": probs.flatten().tolist()},
            {"name": "class", "datatype": "INT64", "shape": [probs.shape[0]], "data": probs.argmax(1).tolist()},
        ],
    }


uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
