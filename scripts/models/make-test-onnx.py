#!/usr/bin/python3
"""Write the tiny hand-built ONNX files the model unit tests use.

    /usr/bin/python3 scripts/models/make-test-onnx.py

Into tests/data/models/:
  ultra-tiny/weights.onnx   a valid detector (input 1x3x32x32, output
                            (1, 4+2, 16)) carrying Ultralytics-style custom
                            metadata: names "{0: 'cat', 1: 'dog'}",
                            imgsz "[32, 32]", task "detect"; no other files
  bad/rank3/                input of rank 3            -> refused
  bad/uint8/                uint8 input                -> refused
  bad/layout/               output (1, 9, 16) for 3 classes -> refused
  bad/garbage/              weights.onnx is not ONNX   -> refused
  bad/missing/              class_names.txt only, no weights -> refused
Every file is a few hundred bytes; deterministic (fixed weights).
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "data", "models")


def save(model, d, names=None):
    os.makedirs(d, exist_ok=True)
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(d, "weights.onnx"))
    if names:
        with open(os.path.join(d, "class_names.txt"), "w") as f:
            f.write("\n".join(names) + "\n")


def conv_det(in_shape, out_c, in_type=TensorProto.FLOAT, meta=None):
    """Conv k=8 s=8 then reshape to (1, out_c, A)."""
    rng = np.random.default_rng(7)
    c = in_shape[1] if len(in_shape) == 4 else 3
    w = numpy_helper.from_array((rng.standard_normal((out_c, c, 8, 8)) * 0.05).astype(np.float32), "w")
    b = numpy_helper.from_array(np.linspace(-1, 1, out_c).astype(np.float32), "b")
    shape = numpy_helper.from_array(np.array([1, out_c, -1], np.int64), "shape")
    nodes = [helper.make_node("Conv", ["images", "w", "b"], ["c"], kernel_shape=[8, 8], strides=[8, 8]),
             helper.make_node("Reshape", ["c", "shape"], ["output0"])]
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("images", in_type, in_shape)],
                          [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, out_c, None])],
                          [w, b, shape])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    for k, v in (meta or {}).items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    return m


def main():
    save(conv_det([1, 3, 32, 32], 6, meta={"names": "{0: 'cat', 1: 'dog'}", "imgsz": "[32, 32]",
                                           "task": "detect", "stride": "8"}),
         os.path.join(OUT, "ultra-tiny"))
    # rank-3 input: a graph that just flattens
    g = helper.make_graph([helper.make_node("Identity", ["images"], ["output0"])], "r3",
                          [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64])],
                          [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3, 64])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    save(m, os.path.join(OUT, "bad", "rank3"), ["a", "b", "c"])
    # uint8 input
    g = helper.make_graph([helper.make_node("Cast", ["images"], ["output0"], to=TensorProto.FLOAT)], "u8",
                          [helper.make_tensor_value_info("images", TensorProto.UINT8, [1, 3, 32, 32])],
                          [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3, 32, 32])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    save(m, os.path.join(OUT, "bad", "uint8"), ["a", "b", "c"])
    # detection output with the wrong number of rows for 3 classes
    save(conv_det([1, 3, 32, 32], 9), os.path.join(OUT, "bad", "layout"), ["a", "b", "c"])
    d = os.path.join(OUT, "bad", "garbage")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "weights.onnx"), "wb") as f:
        f.write(b"this is not an onnx model\n" * 4)
    with open(os.path.join(d, "class_names.txt"), "w") as f:
        f.write("a\n")
    d = os.path.join(OUT, "bad", "missing")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "class_names.txt"), "w") as f:
        f.write("a\n")


if __name__ == "__main__":
    main()
