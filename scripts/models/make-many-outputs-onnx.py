#!/usr/bin/env python3
# Usage: make-many-outputs-onnx.py OUT.onnx [N]  (tests/data/models/sam2-bad/encoder_17_outputs.onnx: N 17)
# A minimal ONNX model: one float input x (1, 3, 8, 8), 17 Identity outputs o0..o16
# (hand-encoded protobuf; no onnx package needed).
import sys
def varint(v):
    out = b""
    while True:
        b = v & 0x7F; v >>= 7
        if v: out += bytes([b | 0x80])
        else: return out + bytes([b])
def key(f, wt): return varint((f << 3) | wt)
def ld(f, payload):
    if isinstance(payload, str): payload = payload.encode()
    return key(f, 2) + varint(len(payload)) + payload
def vi(f, v): return key(f, 0) + varint(v)
def value_info(name, dims):
    shape = b"".join(ld(1, vi(1, d)) for d in dims)
    tensor = vi(1, 1) + ld(2, shape)          # elem_type FLOAT, shape
    return ld(1, name) + ld(2, ld(1, tensor))   # name, type{tensor_type}
n = int(sys.argv[2]) if len(sys.argv) > 2 else 17
graph = b""
for i in range(n):
    graph += ld(1, ld(1, "x") + ld(2, "o%d" % i) + ld(3, "n%d" % i) + ld(4, "Identity"))
graph += ld(2, "g")
graph += ld(11, value_info("x", [1, 3, 8, 8]))
for i in range(n):
    graph += ld(12, value_info("o%d" % i, [1, 3, 8, 8]))
model = vi(1, 8) + ld(8, ld(1, "") + vi(2, 17)) + ld(7, graph)
open(sys.argv[1], "wb").write(model)
