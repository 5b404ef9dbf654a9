#!/usr/bin/python3
"""The PyTorch side of the training comparison: trains what strata trains, for as
many epochs, on the same photos, and prints the wall time and the test accuracy.

Usage (Debian's interpreter: python3-torch 1.13, python3-torchvision 0.14):

    /usr/bin/python3 bench/train_torch.py --model models/felines/model.json
    /usr/bin/python3 bench/train_torch.py --model /tmp/m/mnv2/model.json --arch mobilenet_v2

--model is a strata model.json: its "training" object gives the recipe (epochs, batch,
Adam with decoupled weight decay, cosine schedule with warm-up, label smoothing,
balanced class weights, validation split, flips, zoom, translation, brightness,
contrast, saturation), its "input" the image size, its "dataset" the photos under
--data. The network is the model.json's layers rebuilt in PyTorch (Conv2d "same" or
"valid", BatchNorm2d with Keras's momentum, MaxPool2d, global average pooling,
Dropout, Linear), or, with --arch, a torchvision architecture built untrained with
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


def sequential(layers, channels, size, n_classes):
    """strata's sequential layers as a torch.nn.Sequential."""
    mods, c, flat = [], channels, None
    h, w = size
    act = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}
    for L in layers:
        t = L["type"]
        if t == "conv2d":
            k, s = L["kernel_size"], L.get("strides", 1)
            pad = "same" if L.get("padding", "valid") == "same" and s == 1 else 0
            mods.append(nn.Conv2d(c, L["filters"], k, stride=s, padding=pad,
                                  bias=L.get("use_bias", True)))
            c = L["filters"]
            if pad == 0:
                h, w = (h - k) // s + 1, (w - k) // s + 1
        elif t == "batch_norm":
            mods.append(nn.BatchNorm2d(c, eps=L.get("epsilon", 1e-3),
                                       momentum=1 - L.get("momentum", 0.99)))
        elif t == "maxpool2d":
            p = L["pool_size"]
            mods.append(nn.MaxPool2d(p, L.get("strides", p)))
            h, w = h // p, w // p
        elif t == "global_avg_pool":
            mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            flat = c
        elif t == "flatten":
            mods.append(nn.Flatten())
            flat = c * h * w
        elif t == "dropout":
            mods.append(nn.Dropout(L["rate"]))
        elif t == "dense":
            mods.append(nn.Linear(flat, L["units"]))
            flat = L["units"]
        if L.get("activation") in act:
            mods.append(act[L["activation"]]())
    return nn.Sequential(*mods)


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

    net = (getattr(torchvision.models, a.arch)(weights=None, num_classes=len(classes)) if a.arch
           else sequential(m["layers"], 3, size, len(classes)))
    ops = []
    if aug.get("flip"):
        ops.append(T.RandomHorizontalFlip())
    if aug.get("zoom") or aug.get("translate"):
        z, t = aug.get("zoom", 0.0), aug.get("translate", 0.0)
        ops.append(T.RandomAffine(0, translate=(t, t) if t else None, scale=(1 - z, 1 + z) if z else None))
    if aug.get("brightness") or aug.get("contrast") or aug.get("saturation"):
        ops.append(T.ColorJitter(aug.get("brightness", 0), aug.get("contrast", 0), aug.get("saturation", 0)))
    augment = T.Compose(ops)
    # AdamW decays θ by lr·wd·θ per step, as strata does
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=wd)
    steps_per_epoch = max(1, len(train_idx) // batch)
    total = epochs * steps_per_epoch

    def lr_at(step):
        e = step / steps_per_epoch
        if warmup and e < warmup:
            return (e + 1e-3) / warmup
        span = epochs - warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (e - warmup) / span if span > 0 else 1.0)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=smoothing)

    def prepare(idx, train):
        b = x[idx].float() / 255.0
        if train and ops:
            b = torch.stack([augment(img) for img in b])
        return (b - mean) / std

    def accuracy(xs, ys):
        net.eval()
        right = 0
        with torch.no_grad():
            for i in range(0, len(ys), 64):
                b = (xs[i:i + 64].float() / 255.0 - mean) / std
                right += (net(b).argmax(1) == ys[i:i + 64]).sum().item()
        net.train()
        return right / max(1, len(ys))

    t0 = time.time()
    net.train()
    for epoch in range(epochs):
        order = train_idx[torch.randperm(len(train_idx))]
        for s in range(steps_per_epoch):
            idx = order[s * batch:(s + 1) * batch]
            opt.zero_grad()
            loss = loss_fn(net(prepare(idx, True)), y[idx])
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
