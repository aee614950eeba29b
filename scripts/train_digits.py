#!/usr/bin/python3
"""Trains the bundled digits CNN and exports it to ONNX.

Trains a small CNN on scikit-learn's 8x8 handwritten digits (1797 images,
pixels 0..16, scaled to [0, 1]) and writes into --out (default models/digits):

  digits_cnn.onnx    the model, opset 13, input "input" [N,1,8,8] float32
                     (dynamic batch axis), output "logits" [N,10]
  heldout_x.npy      held-out images, float32 [N,1,8,8], values in [0, 1]
  heldout_y.npy      their labels, int64 [N]
  torch_logits.npy   PyTorch's logits for heldout_x, float32 [N,10]
  README.md          how these files were made

Everything is seeded and torch runs single-threaded with deterministic
algorithms, so a rerun reproduces the same weights. Takes a few seconds.

Usage: /usr/bin/python3 scripts/train_digits.py [--out DIR] [--epochs N]
"""

import argparse
import os
import random
import sys
import time

import numpy as np
import torch
from torch import nn
from sklearn.datasets import load_digits

SEED = 0
HELDOUT_FRACTION = 0.2
OPSET = 13


class DigitsCNN(nn.Module):
    """conv-bn-relu x2, maxpool, conv-bn-relu, maxpool, flatten, linear."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.MaxPool2d(2),  # 4x4 -> 2x2
        )
        self.classifier = nn.Linear(32 * 2 * 2, 10)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def load_split():
    """Returns (train_x, train_y, held_x, held_y) from a seeded permutation."""
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    perm = np.random.RandomState(SEED).permutation(len(x))
    n_held = int(round(len(x) * HELDOUT_FRACTION))
    train, held = perm[:-n_held], perm[-n_held:]
    return x[train], y[train], x[held], y[held]


def train(model, x, y, epochs, batch):
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    gen = torch.Generator().manual_seed(SEED)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), batch):
            idx = order[i:i + batch]
            xb = xt[idx]
            # Light augmentation: a random shift of up to one pixel.
            dx, dy = torch.randint(-1, 2, (2,), generator=gen).tolist()
            xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            opt.zero_grad()
            loss = loss_fn(model(xb), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        if (epoch + 1) % 5 == 0 or epoch == 0:
            print(f"  epoch {epoch + 1:3d}  loss {total / len(xt):.4f}",
                  flush=True)


def export_onnx(model, path):
    model.eval()
    dummy = torch.zeros(1, 1, 8, 8)
    # TrainingMode.PRESERVE on an eval-mode model exports inference semantics
    # but skips the exporter's Conv+BatchNorm fusion, so the file keeps its
    # BatchNormalization nodes and shoal's own folding gets exercised.
    torch.onnx.export(
        model, dummy, path, opset_version=OPSET,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
        training=torch.onnx.TrainingMode.PRESERVE,
        do_constant_folding=False)


README = """\
# digits: the bundled test model

A small CNN for scikit-learn's 8x8 handwritten digits, used by
`examples/classify_digits.py` and `tests/python/test_digits.py`.

Made by `/usr/bin/python3 scripts/train_digits.py` (seed {seed}, {epochs}
epochs, torch {torch_version}, single-threaded, deterministic; a few seconds
on one core). Rerunning it rewrites every file here.

| file | contents |
|------|----------|
| `digits_cnn.onnx` | the model, ONNX opset {opset}; input `input` float32 [N,1,8,8] (dynamic N), output `logits` float32 [N,10]; BatchNormalization nodes kept (not fused by the exporter) |
| `heldout_x.npy` | the {n_held} held-out images, float32 [{n_held},1,8,8], pixel/16 so in [0,1] |
| `heldout_y.npy` | their labels, int64 [{n_held}] |
| `torch_logits.npy` | PyTorch's logits for `heldout_x` (eval mode), float32 [{n_held},10] |

Data: `sklearn.datasets.load_digits()` (1797 images); pixels divided by 16;
a `numpy.random.RandomState({seed}).permutation` of the images, the last
{n_held} (20%) held out, the rest used for training (Adam, cosine schedule,
random one-pixel shifts).

Model: conv 1->16 3x3 pad 1, BN, ReLU; conv 16->32 3x3 pad 1, BN, ReLU;
maxpool 2; conv 32->32 3x3 pad 1, BN, ReLU; maxpool 2; flatten; linear 128->10.

Held-out accuracy (PyTorch): {acc:.2f}% ({correct}/{n_held}).
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "models",
                                                  "digits"),
                    help="output directory (default: models/digits)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()

    t0 = time.time()
    seed_everything(SEED)
    train_x, train_y, held_x, held_y = load_split()
    print(f"train {len(train_x)}, held out {len(held_x)}", flush=True)

    model = DigitsCNN()
    train(model, train_x, train_y, args.epochs, args.batch)

    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(held_x)).numpy().astype(np.float32)
    correct = int((logits.argmax(1) == held_y).sum())
    acc = 100.0 * correct / len(held_y)
    print(f"held-out accuracy {acc:.2f}% ({correct}/{len(held_y)})")
    if acc < 95.0:
        print("error: accuracy below 95%", file=sys.stderr)
        return 1

    os.makedirs(args.out, exist_ok=True)
    export_onnx(model, os.path.join(args.out, "digits_cnn.onnx"))
    np.save(os.path.join(args.out, "heldout_x.npy"),
            np.ascontiguousarray(held_x, dtype=np.float32))
    np.save(os.path.join(args.out, "heldout_y.npy"), held_y.astype(np.int64))
    np.save(os.path.join(args.out, "torch_logits.npy"), logits)
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write(README.format(seed=SEED, epochs=args.epochs,
                              torch_version=torch.__version__, opset=OPSET,
                              n_held=len(held_y), acc=acc, correct=correct))
    print(f"wrote {os.path.normpath(args.out)} in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
