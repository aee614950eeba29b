#!/usr/bin/env python3
"""Writes the seeds of the serve fuzz target (fuzz/corpus/serve/): infer
requests for its model (inputs x [N,3,4,4] and y [N,2], outputs z and w, all
FP32; see decode_serve_request in fuzz/fuzz_common.hpp), as JSON tensors and
with the binary extension. Byte 0 of a seed holds the flags (bit 0: an
Inference-Header-Content-Length line follows).

Run from the repository root:  /usr/bin/python3 fuzz/make_serve_corpus.py
Pure Python, no build needed; the outputs are committed. Every seed must
decode (tests/cpp/test_fuzz_regressions.cpp checks it).
"""

import json
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parents[1]


def floats(n, start=0.0):
    return [start + 0.5 * i for i in range(n)]


def json_seed(doc):
    return b"\x00" + json.dumps(doc, separators=(",", ":")).encode()


def binary_seed(doc, payload):
    head = json.dumps(doc, separators=(",", ":")).encode()
    return b"\x01" + str(len(head)).encode() + b"\n" + head + payload


def seeds():
    x = {"name": "x", "shape": [1, 3, 4, 4], "datatype": "FP32", "data": floats(48)}
    y = {"name": "y", "shape": [1, 2], "datatype": "FP32", "data": [1.0, -2.0]}
    yield "json_flat", json_seed({"id": "a", "inputs": [x, y]})
    nested = dict(x, data=[[[floats(4, 4 * (r + 4 * c)) for r in range(4)] for c in range(3)]])
    yield "json_nested_outputs", json_seed(
        {"inputs": [y, nested],
         "outputs": [{"name": "w"}, {"name": "z", "parameters": {"binary_data": True}}]})
    x2 = dict(x, shape=[2, 3, 4, 4], data=floats(96))
    y2 = dict(y, shape=[2, 2], data=[1, 2, 3, 4])
    yield "json_batch2", json_seed({"inputs": [x2, y2], "parameters": {"binary_data_output": True}})
    bx = {"name": "x", "shape": [1, 3, 4, 4], "datatype": "FP32",
          "parameters": {"binary_data_size": 192}}
    by = {"name": "y", "shape": [1, 2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}
    payload = struct.pack("<48f", *floats(48)) + struct.pack("<2f", 3.0, 4.0)
    yield "binary", binary_seed({"inputs": [bx, by],
                                 "outputs": [{"name": "z", "parameters": {"binary_data": True}}]},
                                payload)
    yield "binary_and_json", binary_seed(
        {"inputs": [bx, y], "parameters": {"binary_data_output": True}},
        struct.pack("<48f", *floats(48)))


def main():
    out = ROOT / "fuzz" / "corpus" / "serve"
    out.mkdir(parents=True, exist_ok=True)
    for name, data in seeds():
        (out / f"{name}.bin").write_bytes(data)
        print(f"{out / name}.bin: {len(data)} bytes")


if __name__ == "__main__":
    main()
