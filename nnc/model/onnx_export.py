"""The decoder's two networks as ONNX graphs, for the torch-free decoder (nnc/decoder.py), and
the encoder's first pass, for its float32 path (nnc/analysis.py).

Part of installing a model (weights.install) and shipped beside its weights, sha256 in the
manifest (``onnx``): ``<name>.prior1.onnx`` (h_s: z2, quality -> mu_p, sigma_p),
``<name>.synthesis.onnx`` (g_s + 0.5: z1, quality -> x) and ``<name>.analysis.onnx`` (g_a and
h_a: x, quality -> mu_x, sigma_x, mu2, sigma2), their transposed convolutions in
the sub-pixel form (layers.SubpixelDeconv; :func:`subpixel`). Float initializers that are exactly
float16 (the weights file's values) are stored as float16 with a Cast, so the graphs cost
what the weights do. Re-export the installed models' graphs (and record them) with

    python -m nnc.model.weights pln-gpu-1 pln-cpu-1 pln-cpu-3
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import torch

OPSET = 17
PARTS = ("prior1", "synthesis", "analysis")


class _Method(torch.nn.Module):
    """One of the network's methods as a module's forward (what the exporter traces)."""

    def __init__(self, net, method: str):
        super().__init__()
        self.net, self.method = net, method

    def forward(self, latent, quality):
        return getattr(self.net, self.method)(latent, quality)


class _Analysis(torch.nn.Module):
    """The encoder's first pass, x -> (mu_x, sigma_x, mu2, sigma2) (nnc/analysis.py)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, quality):
        (mu_x, sigma_x), (mu2, sigma2) = self.net.encode(x, quality)
        return mu_x, sigma_x, mu2, sigma2


def _graph_bytes(module, example, inputs, outputs, axes) -> bytes:
    import warnings
    buf = io.BytesIO()
    with warnings.catch_warnings():      # the TorchScript exporter's deprecation notices
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, buf, input_names=inputs, output_names=outputs,
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return _half_initializers(buf.getvalue())


def _half_initializers(model_bytes: bytes) -> bytes:
    """Float32 initializers that float16 holds exactly become float16 + Cast."""
    import onnx
    from onnx import helper, numpy_helper
    model = onnx.load_from_string(model_bytes)
    g = model.graph
    casts, keep = [], []
    for init in g.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32 and arr.size >= 16 and np.array_equal(
                arr.astype(np.float16).astype(np.float32), arr):
            half = numpy_helper.from_array(arr.astype(np.float16), init.name + "_f16")
            keep.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name],
                                          to=onnx.TensorProto.FLOAT))
        else:
            keep.append(init)
    del g.initializer[:]
    g.initializer.extend(keep)
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def subpixel(net, phases: bool = True):
    """A copy of ``net`` whose transposed convolutions (h_s's and g_s's) are in the sub-pixel
    form (layers.SubpixelDeconv), which ONNX Runtime runs several times faster; with
    ``phases``, g_s's wide ones (output channels a multiple of 16) as one convolution per
    output phase (layers.PhaseDeconv: 30% fewer multiply-adds; kodim23's synthesis 0.27 ->
    0.2x s on 2 cores)."""
    import copy
    from .layers import PhaseDeconv, SubpixelDeconv
    net = copy.deepcopy(net)
    for seq in (net.h_s, net.g_s):
        for i, layer in enumerate(seq.layers):
            if isinstance(layer, torch.nn.ConvTranspose2d):
                wide = phases and seq is net.g_s and layer.out_channels % 16 == 0
                seq.layers[i] = (PhaseDeconv if wide else SubpixelDeconv)(layer)
    return net


def export(net, directory: Path, name: str) -> dict:
    """Write the graphs of ``net`` (float32, eval mode) into ``directory``; returns the
    manifest's ``onnx`` field: {part: {"file", "sha256"}}."""
    net = subpixel(net)
    cfg = net.cfg
    q = torch.tensor([0.5])
    specs = {
        "prior1": (_Method(net, "prior1"), (torch.zeros(1, cfg.g, 2, 3), q), ["z2", "quality"],
                   ["mu_p", "sigma_p"], {"z2": {2: "h2", 3: "w2"}, "mu_p": {2: "h1", 3: "w1"},
                                         "sigma_p": {2: "h1", 3: "w1"}}),
        "synthesis": (_Method(net, "decode"), (torch.zeros(1, cfg.m, 8, 12), q), ["z1", "quality"],
                      ["x"], {"z1": {2: "h1", 3: "w1"}, "x": {2: "h", 3: "w"}}),
        "analysis": (_Analysis(net), (torch.zeros(1, 3, 128, 192), q), ["x", "quality"],
                     ["mu_x", "sigma_x", "mu2", "sigma2"],
                     {"x": {2: "h", 3: "w"}, "mu_x": {2: "h1", 3: "w1"},
                      "sigma_x": {2: "h1", 3: "w1"}, "mu2": {2: "h2", 3: "w2"},
                      "sigma2": {2: "h2", 3: "w2"}}),
    }
    out = {}
    with torch.no_grad():
        for part, (module, example, inputs, outputs, axes) in specs.items():
            data = _graph_bytes(module.eval(), example, inputs, outputs, axes)
            path = Path(directory) / f"{name}.{part}.onnx"
            path.write_bytes(data)
            out[part] = {"file": path.name, "sha256": hashlib.sha256(data).hexdigest()}
    return out
