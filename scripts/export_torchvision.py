#!/usr/bin/python3
"""Exports torchvision CNNs with seeded random weights to ONNX.

For each model NAME writes into --out:

  NAME.onnx           opset 13, input "input" float32 [1,3,224,224], output
                      "output" float32 [1,1000]; eval mode, BatchNormalization
                      nodes kept (not fused by the exporter)
  NAME_input.npy      a seeded random input, float32 [1,3,224,224]
  NAME_expected.npy   PyTorch's output for it, float32 [1,1000]
  NAME_expected64.npy the same network run in float64 (the exact answer, up
                      to float64 rounding): float32 engines, PyTorch's own
                      included, are compared with it (bench/zoo.py)

Weights are torchvision's own random initialization (weights=None) after
torch.manual_seed, made so that every layer matters:
  * no parameter is all zeros (torchvision zero-initializes some heads, e.g.
    vit_b_16's, and many biases): such weights get normal * 0.02, biases
    uniform in [-0.1, 0.1];
  * BatchNorm affine parameters are randomized (weight uniform in [0.5, 1.5],
    bias normal * 0.1) and their running statistics are then MEASURED on
    data (a few train-mode passes over seeded random inputs), so activations
    keep their scale through the network instead of dying out, and the
    output depends on the input (printed: the relative difference of the
    outputs for two inputs).
Segmentation models (torchvision.models.segmentation) export their "out"
tensor. Models whose three files exist with NAME.recipe naming the current
recipe and seed are skipped (a cache), unless --force.

Usage: /usr/bin/python3 scripts/export_torchvision.py --out DIR \
           [--models resnet18,resnet50,mobilenet_v2,squeezenet1_1] [--seed 0]
"""

import argparse
import os
import sys
import time
import zlib

import numpy as np
import torch
from torch import nn
import torchvision

DEFAULT_MODELS = "resnet18,resnet50,mobilenet_v2,squeezenet1_1"
OPSET = 13
# Bumped whenever the weights recipe changes: cached exports of another
# recipe are made anew.
RECIPE = "recipe 2 (measured BatchNorm statistics, no zero parameters)"
INPUT_SHAPE = (1, 3, 224, 224)
# Models whose architecture needs a larger input than 224x224.
INPUT_SIZES = {"inception_v3": 299}


def _zero_symbolic(g, self):
    """aten::zero (Tensor.zero_(), left by the exporter's in-place removal):
    zeros of the input's shape and dtype. torch 1.13's exporter has no
    symbolic for it, and Swin V2 zeroes the middle third of its qkv bias."""
    zeros = g.op("ConstantOfShape", g.op("Shape", self), value_t=torch.tensor([0.0]))
    return g.op("CastLike", zeros, self) if OPSET >= 15 else zeros


torch.onnx.register_custom_op_symbolic("aten::zero", _zero_symbolic, OPSET)


def input_shape(name):
    size = INPUT_SIZES.get(name, INPUT_SHAPE[2])
    return (1, 3, size, size)


def model_files(out, name):
    return (os.path.join(out, f"{name}.onnx"),
            os.path.join(out, f"{name}_input.npy"),
            os.path.join(out, f"{name}_expected.npy"))


def expected64_path(out, name):
    return os.path.join(out, f"{name}_expected64.npy")


def name_seed(name, seed):
    """A seed per (model, seed) that does not depend on export order."""
    return (zlib.crc32(name.encode()) + seed * 1000003) % (2**31)


def build_model(name, seed):
    torch.manual_seed(name_seed(name, seed))
    kwargs = {"weights": None}
    if hasattr(torchvision.models.segmentation, name):
        kwargs["weights_backbone"] = None  # no download: random backbone too
    model = _constructor(name)(**kwargs)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_().mul_(0.1)
        for pname, p in model.named_parameters():
            if p.numel() > 1 and bool((p == 0).all()):
                # Zero weights (a zero-initialized head) or biases would
                # hide bugs, make the output constant, or make the exporter
                # share them via Identity.
                if pname.endswith("bias") or p.dim() == 1:
                    p.uniform_(-0.1, 0.1)
                else:
                    p.normal_().mul_(0.02)
    calibrate_batchnorm(model, name_seed(name, seed) + 2, input_shape(name))
    return model.eval()


def _constructor(name):
    for mod in (torchvision.models, torchvision.models.segmentation):
        if hasattr(mod, name):
            return getattr(mod, name)
    raise SystemExit(f"error: torchvision.models has no model '{name}'")


def calibrate_batchnorm(model, seed, shape, passes=3, batch=4):
    """Running statistics measured on seeded random inputs (cumulative
    average over `passes` train-mode batches), the way a trained network's
    match its activations."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    gen = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(passes):
            model(torch.randn((batch,) + shape[1:], generator=gen))
    model.eval()


def model_output(model, x):
    """The network's output tensor (segmentation models return a dict)."""
    y = model(x)
    return y["out"] if isinstance(y, dict) else y


class _MainOutput(nn.Module):
    """A segmentation model's "out" tensor alone (they return a dict)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


def _cached(out, name, seed):
    recipe = os.path.join(out, f"{name}.recipe")
    if not all(os.path.exists(p) for p in model_files(out, name) + (expected64_path(out, name),)) \
            or not os.path.exists(recipe):
        return False
    with open(recipe) as f:
        return f.read().strip() == f"{RECIPE} seed {seed}"


def export_one(name, out, seed, force):
    onnx_path, input_path, expected_path = model_files(out, name)
    if not force and _cached(out, name, seed):
        print(f"{name}: cached in {out}", flush=True)
        return
    t0 = time.time()
    model = build_model(name, seed)
    if hasattr(torchvision.models.segmentation, name):
        model = _MainOutput(model).eval()
    gen = torch.Generator().manual_seed(name_seed(name, seed) + 1)
    x = torch.randn(input_shape(name), generator=gen)
    with torch.no_grad():
        y = model(x)
        y2 = model(torch.randn(input_shape(name), generator=gen))
    spread = float((y2 - y).abs().max() / (y.max() - y.min()))
    # Each file is written under a temporary name and renamed, the ONNX file
    # last: concurrent exporters never expose a partial file, and an
    # interrupted export is not mistaken for a cached one.
    suffix = f".{os.getpid()}.tmp"
    for path, array in ((input_path, x), (expected_path, y)):
        with open(path + suffix, "wb") as f:
            np.save(f, array.numpy().astype(np.float32))
        os.replace(path + suffix, path)
    # PRESERVE on an eval-mode model: inference semantics, but the exporter
    # does not fuse BatchNorm into Conv, leaving that to shoal.
    torch.onnx.export(model, x, onnx_path + suffix, opset_version=OPSET,
                      input_names=["input"], output_names=["output"],
                      training=torch.onnx.TrainingMode.PRESERVE,
                      do_constant_folding=False)
    # Last (double() converts the model in place): the float64 answer.
    with torch.no_grad():
        y64 = model.double()(x.double())
    with open(expected64_path(out, name) + suffix, "wb") as f:
        np.save(f, y64.numpy())
    os.replace(expected64_path(out, name) + suffix, expected64_path(out, name))
    os.replace(onnx_path + suffix, onnx_path)
    with open(os.path.join(out, f"{name}.recipe"), "w") as f:
        f.write(f"{RECIPE} seed {seed}\n")
    mb = os.path.getsize(onnx_path) / 1e6
    print(f"{name}: exported {onnx_path} ({mb:.1f} MB) in "
          f"{time.time() - t0:.1f} s; another input moves the output by "
          f"{spread:.1%} of its range", flush=True)


def export_batched(name, out, seed, force, batch):
    path = os.path.join(out, f"{name}_b{batch}.onnx")
    recipe = os.path.join(out, f"{name}_b{batch}.recipe")
    stamp = f"{RECIPE} seed {seed}"
    if not force and os.path.exists(path) and os.path.exists(recipe):
        with open(recipe) as f:
            if f.read().strip() == stamp:
                print(f"{name} batch {batch}: cached in {out}", flush=True)
                return
    model = build_model(name, seed)
    if hasattr(torchvision.models.segmentation, name):
        model = _MainOutput(model).eval()
    x = torch.randn((batch,) + input_shape(name)[1:],
                    generator=torch.Generator().manual_seed(name_seed(name, seed) + 1))
    tmp = f"{path}.{os.getpid()}.tmp"
    torch.onnx.export(model, x, tmp, opset_version=OPSET, input_names=["input"],
                      output_names=["output"], training=torch.onnx.TrainingMode.PRESERVE,
                      do_constant_folding=False)
    os.replace(tmp, path)
    with open(recipe, "w") as f:
        f.write(stamp + "\n")
    print(f"{name} batch {batch}: exported {path}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Export torchvision models with seeded random weights.")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--models", default=DEFAULT_MODELS,
                    help=f"comma-separated torchvision names "
                         f"(default: {DEFAULT_MODELS})")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true",
                    help="re-export even if the files exist")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1)")
    ap.add_argument("--batch", type=int, default=1,
                    help="with N > 1: write only NAME_bN.onnx, the same model "
                         "(same weights) traced at batch N, for engines whose "
                         "programs are static in the batch (onnxruntime: "
                         "shapes some exporters write as constants, e.g. "
                         "ShuffleNet's channel shuffle, carry the batch)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        if args.batch > 1:
            export_batched(name, args.out, args.seed, args.force, args.batch)
        else:
            export_one(name, args.out, args.seed, args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
