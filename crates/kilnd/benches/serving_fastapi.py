"""The reference server for benches/serving.rs: FastAPI + uvicorn + PyTorch eager serving
kiln's `cnn` (same architecture, same weights) behind the same KServe v2 JSON infer route,
written the way a careful Python engineer writes it for speed:

* an `async def` handler that reads the raw body and parses it with orjson, with no pydantic
  model for the tensor (FastAPI's validation of a 784-number list costs more than the forward);
* the forward pass inline in the handler, under `torch.inference_mode()`, with torch's
  intra-op threads set as the raw forward runs (every core): one request at a time per
  process is what an async handler gives, and torch parallelises inside it;
* the answer serialised with orjson into a plain `Response`;
* uvicorn with uvloop and httptools (`uvicorn[standard]`), access log off.

Usage: serving_fastapi.py <weights.safetensors> <port> <threads>
The weights are kiln's export (burn layout: Linear weights are [in, out]); read here with
torch.frombuffer, so the venv needs only fastapi, uvicorn[standard] and orjson.
"""

import json
import struct
import sys

import orjson
import torch
import uvicorn
from fastapi import FastAPI, Request, Response
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
with torch.inference_mode():  # warm up, as kiln's deploy does
    model(torch.zeros(2, in_channels, 28, 28))
app = FastAPI()
BAD_REQUEST = {"status_code": 400, "media_type": "application/json"}


@app.get("/v2/health/ready")
async def ready():
    return Response(b'{"ready":true}', media_type="application/json")


@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request):
    try:
        (tensor,) = orjson.loads(await request.body())["inputs"]
        shape = tensor["shape"]
        if tensor["datatype"] != "FP32" or len(shape) != 4 or shape[1] != in_channels:
            raise ValueError("bad shape or datatype")
        x = torch.tensor(tensor["data"], dtype=torch.float32).reshape(shape)
    except (KeyError, ValueError, TypeError, RuntimeError, orjson.JSONDecodeError) as e:
        return Response(orjson.dumps({"error": str(e)}), **BAD_REQUEST)
    with torch.inference_mode():
        probs = torch.softmax(model(x), dim=1)
    answer = {
        "model_name": name,
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": list(probs.shape), "data": probs.flatten().tolist()},
            {"name": "class", "datatype": "INT64", "shape": [probs.shape[0]], "data": probs.argmax(1).tolist()},
        ],
    }
    return Response(orjson.dumps(answer), media_type="application/json")


uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, loop="uvloop", http="httptools")
