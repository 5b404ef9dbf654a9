#!/usr/bin/python3
"""Trains a small residual CNN on a demo dataset and exports it to ONNX with a reference.

Usage (run with Debian's interpreter, /usr/bin/python3: it has python3-torch 1.13
and python3-torchvision; a `python3` found first on PATH may lack torch):

    /usr/bin/python3 scripts/onnx/train_residual.py --out /tmp/onnx-residual
    /usr/bin/python3 scripts/onnx/train_residual.py --out DIR [--data ../shared/datasets] \
        [--dataset felines] [--epochs 60] [--seed 0] [--shift 4] [--wd 5e-4]

The model, for a 64x64 RGB input (NCHW, normalised (pixel/255 - mean)/std with
ImageNet mean/std):
    stem     conv3x3/2 3->32, BN, ReLU                       32x32
    stage 1  2 residual blocks, 32 ch                        32x32
    stage 2  2 residual blocks, 64 ch (first: stride 2)      16x16
    stage 3  2 residual blocks, 128 ch (first: stride 2)      8x8
    global average pool, linear 128 -> classes
A block is conv3x3-BN-ReLU-conv3x3-BN plus a shortcut, then ReLU; the shortcut is
the identity, or a 1x1 conv + BN projection where the stage changes (stride 2 and
more channels). 0.7 M parameters, ~0.1 GMAC per image. Trained with Adam (one-cycle
learning rate, max 2e-3, L2 weight decay 5e-4), batch 32, random horizontal flips
and random translations of up to 4 pixels (edge-padded), on the train split
resized to 64x64 by PIL (bilinear). Felines, 60 epochs, on an idle 2-core machine:
about 90 s, test accuracy about 0.77 (flips alone overfit: 0.63).

Written into DIR (a strata dataset folder as well: DIR is <root>/<name>, so
`--data <root>` with the name `<name>` reads it):
  residual.onnx                opset 13, batch axis dynamic, "input" [B,3,64,64] -> "logits" [B,K]
                               (BatchNorm folded into the convolutions by the exporter)
  test/<class>/<name>.png      every test-split image, resized to 64x64 (PIL bilinear)
  train/<class>/<name>.png     the first 8 train images of each class, likewise (strata's
                               dataset loader may want both splits)
  residual.reference.json      {"classes": sorted class folder names, "mean", "std",
                                "input": [64,64], "onnx": "residual.onnx",
                                "accuracy": correct/n_test, "n_test", "correct",
                                "images": test PNG paths relative to DIR in byte-sorted order,
                                "predictions": class index per image in that order,
                                "probs": float64 softmax per image in that order,
                                plus "dataset", "epochs", "seed", "train_seconds"}
The accuracy is PyTorch's (eval mode) on exactly those PNG files decoded by PIL
and normalised in float32 as strata will. Deterministic for a given seed:
torch.manual_seed, numpy's seeded generator, torch.set_num_threads(2). The
photos are never copied into the repository; keep DIR outside it.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from torch import nn
from PIL import Image

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
SIDE = 64
OPSET = 13
TRAIN_PNGS_PER_CLASS = 8
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXTS = (".jpg", ".jpeg", ".png")


class Block(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN + shortcut, ReLU; 1x1 conv+BN projection when the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.proj is None else self.proj(x)))


class ResidualNet(nn.Module):
    def __init__(self, classes, widths=(32, 64, 128)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        blocks, cin = [], widths[0]
        for i, w in enumerate(widths):
            blocks += [Block(cin, w, 1 if i == 0 else 2), Block(w, w, 1)]
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


def list_split(root, split):
    """[(class, path)] of a split, classes and files in byte order (as strata lists them)."""
    base = os.path.join(root, split)
    if not os.path.isdir(base):
        sys.exit(f"error: no folder {base} (use --data DIR and --dataset NAME)")
    items = []
    for cls in sorted(os.listdir(base)):
        d = os.path.join(base, cls)
        if cls.startswith(".") or not os.path.isdir(d):
            continue
        items += [(cls, os.path.join(d, f)) for f in sorted(os.listdir(d))
                  if not f.startswith(".") and f.lower().endswith(EXTS)]
    return items


def load_resized(path):
    """File -> RGB uint8 [SIDE,SIDE,3], resized by PIL bilinear (what the PNGs hold)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((SIDE, SIDE), Image.BILINEAR), dtype=np.uint8)


def augment(px, shift, rng):
    """Random horizontal flips and translations of up to +-shift pixels (edge-padded), uint8 N,H,W,3."""
    out = px.copy()
    flip = rng.random(len(out)) < 0.5
    out[flip] = out[flip, :, ::-1]  # W is axis 2 of N,H,W,3
    if shift > 0:
        padded = np.pad(out, ((0, 0), (shift, shift), (shift, shift), (0, 0)), mode="edge")
        dy = rng.integers(0, 2 * shift + 1, len(out))
        dx = rng.integers(0, 2 * shift + 1, len(out))
        for i in range(len(out)):
            out[i] = padded[i, dy[i]:dy[i] + SIDE, dx[i]:dx[i] + SIDE]
    return out


def normalise(px):
    """uint8 [N,H,W,3] -> float32 [N,3,H,W], (pixel/255 - mean)/std in float32, as strata computes it."""
    mean = np.array(MEAN, dtype=np.float32)
    std = np.array(STD, dtype=np.float32)
    x = (px.astype(np.float32) / np.float32(255.0) - mean) / std
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def write_png_split(items, out, split, classes, limit=None):
    """Writes the resized PNGs of a split to out/split/<class>/<stem>.png; returns relative paths."""
    rels, per_class = [], {}
    for cls, path in items:
        if limit is not None and per_class.get(cls, 0) >= limit:
            continue
        per_class[cls] = per_class.get(cls, 0) + 1
        os.makedirs(os.path.join(out, split, cls), exist_ok=True)
        rel = f"{split}/{cls}/{os.path.splitext(os.path.basename(path))[0]}.png"
        Image.fromarray(load_resized(path)).save(os.path.join(out, rel))
        rels.append(rel)
    return rels


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder (keep it outside the repo)")
    ap.add_argument("--data", default=os.path.join(REPO, "..", "shared", "datasets"),
                    help="demo datasets root (default ../shared/datasets)")
    ap.add_argument("--dataset", default="felines")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--wd", type=float, default=5e-4, help="Adam weight decay (L2)")
    ap.add_argument("--shift", type=int, default=4, help="random translation, pixels (0: flips only)")
    args = ap.parse_args()

    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    root = os.path.join(args.data, args.dataset)
    t0 = time.perf_counter()

    train_items = list_split(root, "train")
    test_items = list_split(root, "test")
    classes = sorted({c for c, _ in train_items} | {c for c, _ in test_items})
    label = {c: i for i, c in enumerate(classes)}
    x_train = np.stack([load_resized(p) for _, p in train_items])
    y_train = torch.tensor([label[c] for c, _ in train_items])
    t1 = time.perf_counter()
    print(f"{args.dataset}: {len(train_items)} train, {len(test_items)} test, classes {classes}; "
          f"loaded in {t1 - t0:.1f}s")

    model = ResidualNet(len(classes))
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.wd)
    steps_per_epoch = (len(train_items) + args.batch - 1) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=args.epochs,
                                                steps_per_epoch=steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    print(f"model: {n_params} parameters; {args.epochs} epochs of {steps_per_epoch} steps")
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(len(train_items))
        seen = correct = 0
        loss_sum = 0.0
        for s in range(0, len(order), args.batch):
            idx = order[s:s + args.batch]
            px = augment(x_train[idx], args.shift, rng)
            x, y = normalise(px), y_train[idx]
            logits = model(x)
            loss = loss_fn(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(idx)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss_sum / seen:.4f}, train acc {correct / seen:.3f}, "
              f"{time.perf_counter() - t1:.0f}s")
        sys.stdout.flush()
    t2 = time.perf_counter()
    model.eval()

    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, "residual.onnx")
    with torch.no_grad():
        torch.onnx.export(model, torch.zeros(1, 3, SIDE, SIDE), onnx_path,
                          opset_version=OPSET, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          do_constant_folding=True)
    write_png_split(train_items, args.out, "train", classes, limit=TRAIN_PNGS_PER_CLASS)
    rels = sorted(write_png_split(test_items, args.out, "test", classes), key=lambda r: r.encode())

    # Measure on the PNG files themselves, read back, in byte-sorted path order.
    px = []
    for rel in rels:
        with Image.open(os.path.join(args.out, rel)) as im:
            px.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
    truth = torch.tensor([label[rel.split("/")[1]] for rel in rels])
    with torch.no_grad():
        logits = model(normalise(np.stack(px)))
    probs = torch.softmax(logits.double(), dim=1)
    pred = probs.argmax(1)
    correct = int((pred == truth).sum())
    ref = {
        "classes": classes,
        "mean": MEAN,
        "std": STD,
        "input": [SIDE, SIDE],
        "onnx": "residual.onnx",
        "dataset": args.dataset,
        "epochs": args.epochs,
        "seed": args.seed,
        "train_seconds": round(t2 - t1, 1),
        "accuracy": correct / len(rels),
        "n_test": len(rels),
        "correct": correct,
        "images": rels,
        "predictions": pred.tolist(),
        "probs": probs.tolist(),
    }
    with open(os.path.join(args.out, "residual.reference.json"), "w") as f:
        json.dump(ref, f)
        f.write("\n")
    t3 = time.perf_counter()
    print(f"test accuracy {correct}/{len(rels)} = {correct / len(rels):.4f} (PyTorch on the written PNGs)")
    print(f"load {t1 - t0:.1f}s, train {t2 - t1:.1f}s, export+pngs+reference {t3 - t2:.1f}s, "
          f"total {t3 - t0:.1f}s; {os.path.getsize(onnx_path) / 1e6:.2f} MB ONNX")


if __name__ == "__main__":
    main()
