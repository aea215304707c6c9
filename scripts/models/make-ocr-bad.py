#!/usr/bin/env python3
"""Broken PP-OCR text detectors for the refusal tests (tests/data/models/ocr-bad/).

Made with onnx.helper (Debian python3-onnx), no weights:
  det_nan.onnx          input x (N, 3, H, W) like PP-OCR's DB detector, output
                        (N, 1, H, W) = ReduceMean over channels of x * 0 / 0: NaN
                        everywhere, the shape of a real probability map.
  det_two_outputs.onnx  same input, two outputs (the map and the input again).
Run: /usr/bin/python3 scripts/models/make-ocr-bad.py
"""
import os
import onnx
from onnx import TensorProto, helper

OUT = os.path.join(os.path.dirname(__file__), '..', '..', 'tests', 'data', 'models', 'ocr-bad')


def model(two_outputs):
    x = helper.make_tensor_value_info('x', TensorProto.FLOAT, ['N', 3, 'H', 'W'])
    y = helper.make_tensor_value_info('sigmoid_0.tmp_0', TensorProto.FLOAT, ['N', 1, 'H', 'W'])
    zero = helper.make_tensor('zero', TensorProto.FLOAT, [], [0.0])
    nodes = [
        helper.make_node('Mul', ['x', 'zero'], ['z']),
        helper.make_node('Div', ['z', 'zero'], ['n']),
        helper.make_node('ReduceMean', ['n'], ['sigmoid_0.tmp_0'], axes=[1], keepdims=1),
    ]
    outs = [y]
    if two_outputs:
        nodes.append(helper.make_node('Identity', ['x'], ['copy']))
        outs.append(helper.make_tensor_value_info('copy', TensorProto.FLOAT, ['N', 3, 'H', 'W']))
    g = helper.make_graph(nodes, 'det', [x], outs, initializer=[zero])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


os.makedirs(OUT, exist_ok=True)
onnx.save(model(False), os.path.join(OUT, 'det_nan.onnx'))
onnx.save(model(True), os.path.join(OUT, 'det_two_outputs.onnx'))
