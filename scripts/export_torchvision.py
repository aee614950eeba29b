#!/usr/bin/python3
"""Exports torchvision CNNs with seeded random weights to ONNX.

For each model NAME writes into --out:

  NAME.onnx           opset 13, input "input" float32 [1,3,224,224], output
                      "output" float32 [1,1000]; eval mode, BatchNormalization
                      nodes kept (not fused by the exporter)
  NAME_input.npy      a seeded random input, float32 [1,3,224,224]
  NAME_expected.npy   PyTorch's output for it, float32 [1,1000]

Weights are torchvision's own random initialization (weights=None) after
torch.manual_seed; BatchNorm running statistics and affine parameters are
randomized too (var uniform in [0.5, 1.5], mean normal * 0.1, ...) so that
BN folding is exercised with non-trivial values, and so are Conv/Linear biases
(uniform in [-0.1, 0.1]; torchvision zero-initializes many). Models whose three files all
exist already are skipped (a cache), unless --force.

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
INPUT_SHAPE = (1, 3, 224, 224)


def model_files(out, name):
    return (os.path.join(out, f"{name}.onnx"),
            os.path.join(out, f"{name}_input.npy"),
            os.path.join(out, f"{name}_expected.npy"))


def name_seed(name, seed):
    """A seed per (model, seed) that does not depend on export order."""
    return (zlib.crc32(name.encode()) + seed * 1000003) % (2**31)


def build_model(name, seed):
    if not hasattr(torchvision.models, name):
        raise SystemExit(f"error: torchvision.models has no model '{name}'")
    torch.manual_seed(name_seed(name, seed))
    model = getattr(torchvision.models, name)(weights=None)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_().mul_(0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_().mul_(0.1)
            elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                # torchvision zero-initializes many biases; zeros would hide
                # bias bugs (and make the exporter share them via Identity).
                m.bias.uniform_(-0.1, 0.1)
    return model.eval()


def export_one(name, out, seed, force):
    onnx_path, input_path, expected_path = model_files(out, name)
    if not force and all(os.path.exists(p) for p in model_files(out, name)):
        print(f"{name}: cached in {out}", flush=True)
        return
    t0 = time.time()
    model = build_model(name, seed)
    gen = torch.Generator().manual_seed(name_seed(name, seed) + 1)
    x = torch.randn(INPUT_SHAPE, generator=gen)
    with torch.no_grad():
        y = model(x)
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
    os.replace(onnx_path + suffix, onnx_path)
    mb = os.path.getsize(onnx_path) / 1e6
    print(f"{name}: exported {onnx_path} ({mb:.1f} MB) in "
          f"{time.time() - t0:.1f} s", flush=True)


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
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        export_one(name, args.out, args.seed, args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
