#!/usr/bin/python3
"""The PyTorch side of the training comparison: trains what strata trains, for as
many epochs, on the same photos, and prints the wall time and the test accuracy.

Usage (Debian's interpreter: python3-torch 1.13, python3-torchvision 0.14):

    /usr/bin/python3 bench/train_torch.py --model models/felines/model.json
    /usr/bin/python3 bench/train_torch.py --model /tmp/m/mnv2/model.json --arch mobilenet_v2

--model is a strata model.json: its "training" object gives the recipe (epochs, batch,
Adam with decoupled weight decay, cosine schedule with warm-up, label smoothing,
balanced class weights, validation split, flips, zoom, translation, brightness,
contrast, saturation, random erasing, CutMix, rotation labels), its "input" the image size, its "dataset" the
photos under --data. The network is the model.json's layers rebuilt in PyTorch (Conv2d
"same" or "valid" with its groups, BatchNorm2d with Keras's momentum, MaxPool2d, global
average pooling, Dropout, Linear, the adds and concats of layers that name their inputs,
ReLU, ReLU6, Hardswish), or, with --arch, a torchvision architecture built untrained with
one output per class (what `strata train --from` trains). Photos are decoded and
resized to the input size once, as strata does, and kept in memory; augmentation
is torchvision's (RandomHorizontalFlip, RandomAffine for zoom and translation,
ColorJitter), the nearest it offers to strata's. Two threads, like strata on this
machine. Prints one JSON line: {"seconds", "epochs", "test_accuracy", ...}.
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torchvision
from PIL import Image
from torchvision import transforms as T


def load_split(root, split, classes, size):
    xs, ys = [], []
    for label, cls in enumerate(classes):
        folder = os.path.join(root, split, cls)
        for name in sorted(os.listdir(folder)):
            if not name.lower().endswith((".jpg", ".jpeg", ".png")):
                continue
            img = Image.open(os.path.join(folder, name)).convert("RGB")
            if img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.BILINEAR)
            xs.append(np.asarray(img, dtype=np.uint8))
            ys.append(label)
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous()  # N,3,H,W uint8
    return x, torch.tensor(ys)


class StrataNet(nn.Module):
    """strata's layers as a torch module: each layer reads the one before it, or the
    layers its "inputs" name ("input": the image); add sums, concat joins channels."""

    def __init__(self, layers, channels, size):
        super().__init__()
        acts = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "relu6": nn.ReLU6,
                "hardswish": nn.Hardswish, "softmax": None, "linear": None, None: None}
        shape = {"input": (channels, size[0], size[1], None)}  # c, h, w, flat length
        self.plan, self.mods, prev = [], nn.ModuleList(), "input"
        for L in layers:
            t, name = L["type"], L["name"]
            ins = L.get("inputs", [prev])
            c, h, w, flat = shape[ins[0]]
            if t == "conv2d":
                k, s = L["kernel_size"], L.get("strides", 1)
                pad = "same" if L.get("padding", "valid") == "same" and s == 1 else 0
                mod = nn.Conv2d(c, L["filters"], k, stride=s, padding=pad,
                                groups=L.get("groups", 1), bias=L.get("use_bias", True))
                if pad == 0:
                    h, w = (h - k) // s + 1, (w - k) // s + 1
                c = L["filters"]
            elif t == "batch_norm":
                mod = nn.BatchNorm2d(c, eps=L.get("epsilon", 1e-3), momentum=1 - L.get("momentum", 0.99))
            elif t == "maxpool2d":
                p = L["pool_size"]
                mod = nn.MaxPool2d(p, L.get("strides", p))
                h, w = h // p, w // p
            elif t == "global_avg_pool":
                mod, flat = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), c
            elif t == "flatten":
                mod, flat = nn.Flatten(), c * h * w
            elif t == "dropout":
                mod = nn.Dropout(L["rate"])
            elif t == "dense":
                mod, flat = nn.Linear(flat, L["units"]), L["units"]
            elif t == "add":
                mod = None
            elif t == "concat":
                mod, c = None, sum(shape[i][0] for i in ins)
            else:
                raise SystemExit(f"layer type {t} has no PyTorch counterpart here")
            act = acts[L.get("activation")]
            self.mods.append(nn.Sequential(*([mod] if mod is not None else []) +
                                           ([act()] if act else [])))
            self.plan.append((name, t, ins))
            shape[name] = (c, h, w, flat)
            prev = name

    def forward(self, x):
        values = {"input": x}
        for (name, t, ins), mod in zip(self.plan, self.mods):
            if t == "add":
                y = sum(values[i] for i in ins)
            elif t == "concat":
                y = torch.cat([values[i] for i in ins], 1)
            else:
                y = values[ins[0]]
            values[name] = mod(y)
        return values[self.plan[-1][0]]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a strata model.json")
    ap.add_argument("--arch", help="a torchvision architecture instead of the model.json's layers")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                                   "datasets"))
    ap.add_argument("--epochs", type=int, help="override training.epochs")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    m = json.load(open(a.model))
    tr = m.get("training", {})
    size = (m["input"]["height"], m["input"]["width"])
    classes = m["classes"]
    root = os.path.join(a.data, m.get("dataset", m["id"]))
    epochs = a.epochs or tr.get("epochs", 20)
    batch = tr.get("batch_size", 32)
    opt_cfg = tr.get("optimizer", {})
    lr, wd = opt_cfg.get("lr", 1e-3), opt_cfg.get("weight_decay", 0.0)
    warmup = tr.get("schedule", {}).get("warmup_epochs", 0)
    smoothing = tr.get("label_smoothing", 0.0)
    aug = tr.get("augment", {})
    torch.manual_seed(tr.get("seed", 1))

    x, y = load_split(root, "train", classes, size)
    xt, yt = load_split(root, "test", classes, size)
    mean = torch.tensor(m.get("normalization", {}).get("mean", [0.485, 0.456, 0.406])).view(1, 3, 1, 1)
    std = torch.tensor(m.get("normalization", {}).get("std", [0.229, 0.224, 0.225])).view(1, 3, 1, 1)
    # the validation split strata holds out (not stratified here: the same count)
    n = len(y)
    perm = torch.randperm(n)
    n_val = int(round(n * tr.get("validation_split", 0.1)))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    counts = torch.bincount(y[train_idx], minlength=len(classes)).float()
    weight = (len(train_idx) / (len(classes) * counts)) if tr.get("class_weight") == "balanced" else None

    # rotation labels: 4·C outputs while training (unit k·C + c: class c turned k
    # quarter turns clockwise), the upright C kept for testing
    turns = tr.get("rotation_labels", 0)
    layers = m["layers"]
    if turns:
        layers = [dict(L) for L in layers]
        layers[-1]["units"] = 4 * len(classes)
        if weight is not None:
            weight = weight.repeat(4)
    net = (getattr(torchvision.models, a.arch)(weights=None, num_classes=len(classes)) if a.arch
           else StrataNet(layers, 3, size))
    ops = []
    if aug.get("flip"):
        ops.append(T.RandomHorizontalFlip())
    if aug.get("zoom") or aug.get("translate"):
        z, t = aug.get("zoom", 0.0), aug.get("translate", 0.0)
        ops.append(T.RandomAffine(0, translate=(t, t) if t else None, scale=(1 - z, 1 + z) if z else None))
    if aug.get("brightness") or aug.get("contrast") or aug.get("saturation"):
        ops.append(T.ColorJitter(aug.get("brightness", 0), aug.get("contrast", 0), aug.get("saturation", 0)))
    augment = T.Compose(ops)
    erase = T.RandomErasing(p=aug["erase"], scale=(0.02, 0.25), ratio=(0.3, 3.3)) if aug.get("erase") else None
    # AdamW decays θ by lr·wd·θ per step, as strata does
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=wd)
    per_epoch = len(train_idx) + int(round(turns * len(train_idx)))
    steps_per_epoch = max(1, per_epoch // batch)
    total = epochs * steps_per_epoch

    def lr_at(step):
        e = step / steps_per_epoch
        if warmup and e < warmup:
            return (e + 1e-3) / warmup
        span = epochs - warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (e - warmup) / span if span > 0 else 1.0)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=smoothing)
    each_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=smoothing, reduction="none")
    cutmix = aug.get("cutmix", 0.0)

    def cut_mix(b):
        """CutMix as strata does it: per image with probability `cutmix`, a box of
        another image of the batch, λ uniform, side √(1−λ), clipped; keep = the share
        of its own pixels left."""
        n, _, h, w = b.shape
        src, partner, keep = b.clone(), torch.arange(n), torch.ones(n)
        for i in range(n):
            if n < 2 or torch.rand(1).item() >= cutmix:
                continue
            j = int(torch.randint(n - 1, (1,)))
            j += j >= i
            cut = math.sqrt(1 - torch.rand(1).item())
            bh, bw = round(cut * h), round(cut * w)
            cy, cx = int(torch.randint(h, (1,))), int(torch.randint(w, (1,)))
            y0, x0 = max(cy - bh // 2, 0), max(cx - bw // 2, 0)
            y1, x1 = min(cy - bh // 2 + bh, h), min(cx - bw // 2 + bw, w)
            if y1 <= y0 or x1 <= x0:
                continue
            b[i, :, y0:y1, x0:x1] = src[j, :, y0:y1, x0:x1]
            partner[i], keep[i] = j, 1 - (y1 - y0) * (x1 - x0) / (h * w)
        return b, partner, keep

    def prepare(idx, train, turn=None):
        b = x[idx].float() / 255.0
        if train and ops:
            b = torch.stack([augment(img) for img in b])
        if turn is not None:  # after the other augmentations, as strata does
            b = torch.stack([torch.rot90(img, -int(k), (1, 2)) for img, k in zip(b, turn)])
        b = (b - mean) / std
        if train and erase:
            b = torch.stack([erase(img) for img in b])  # erased to 0: the mean colour once normalised
        return b

    def accuracy(xs, ys):
        net.eval()
        right = 0
        with torch.no_grad():
            for i in range(0, len(ys), 64):
                b = (xs[i:i + 64].float() / 255.0 - mean) / std
                right += (net(b)[:, :len(classes)].argmax(1) == ys[i:i + 64]).sum().item()
        net.train()
        return right / max(1, len(ys))

    t0 = time.time()
    net.train()
    for epoch in range(epochs):
        images, turn = train_idx, torch.zeros(len(train_idx), dtype=torch.long)
        if turns:  # every image upright, plus turned copies drawn from the 3·n pairs
            pairs = torch.randperm(3 * len(train_idx))[:per_epoch - len(train_idx)]
            images = torch.cat([images, train_idx[pairs % len(train_idx)]])
            turn = torch.cat([turn, 1 + pairs // len(train_idx)])
        order = torch.randperm(len(images))
        for s in range(steps_per_epoch):
            pick = order[s * batch:(s + 1) * batch]
            idx, k = images[pick], turn[pick]
            opt.zero_grad()
            target = y[idx] + len(classes) * k
            b = prepare(idx, True, k if turns else None)
            if cutmix:
                b, partner, keep = cut_mix(b)
                out = net(b)
                wy = weight[target] if weight is not None else torch.ones(len(target))
                wz = weight[target[partner]] if weight is not None else torch.ones(len(target))
                loss = (keep * each_fn(out, target) + (1 - keep) * each_fn(out, target[partner])).sum() / \
                    (keep * wy + (1 - keep) * wz).sum()
            else:
                loss = loss_fn(net(b), target)
            loss.backward()
            opt.step()
            sched.step()
        if n_val:
            accuracy(x[val_idx], y[val_idx])
    seconds = time.time() - t0
    print(json.dumps({"model": m["id"], "arch": a.arch or "model.json layers", "epochs": epochs,
                      "batch": batch, "n_train": len(train_idx), "seconds": round(seconds, 1),
                      "test_accuracy": accuracy(xt, yt), "threads": a.threads,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
