#!/usr/bin/python3
"""Exports torchvision CNNs (random weights) to ONNX, each with a PyTorch reference.

Usage (run with Debian's interpreter, /usr/bin/python3: it has python3-torch 1.13
and python3-torchvision 0.14; a `python3` found first on PATH may lack torch):

    /usr/bin/python3 scripts/onnx/export_torchvision.py --out /tmp/onnx-models
    /usr/bin/python3 scripts/onnx/export_torchvision.py --out DIR --arch resnet18,mobilenet_v2 \
        [--classes 1000] [--data ../shared/datasets] [--seed 0]

Architectures: resnet18, mobilenet_v2, mobilenet_v3_small, efficientnet_b0,
squeezenet1_1, densenet121, shufflenet_v2_x0_5 (default: all seven).

No weights are downloaded. Each model gets random weights (torch.manual_seed(seed)
right before it is built, so an arch's weights do not depend on which others are
chosen), then its BatchNorm statistics are estimated with the BatchNorm layers in
train mode, momentum=None (cumulative average), every other module in eval mode,
on two random batches of 8 — without that, MobileNet/EfficientNet logits at
random init are 1e-9..1e-14 and every softmax is flat. The batches are, by
default (--bn-data photos), 16 photos drawn at random (seeded) from the datasets'
train splits, preprocessed like the reference images. With N(0,1) noise batches
(--bn-data noise) the statistics do not fit real photos: EfficientNet-B0's
activations then grow ~200x through its stages and its logits on the reference
photos have std ~46, a softmax saturated at 1.0 (DenseNet: std 3.5); from photos
every arch's logits have std 0.03-0.6. Then eval() and torch.onnx.export at
opset 13, batch axis dynamic, input "input" [B,3,224,224], output "logits" [B,K].

Written into DIR:
  <arch>.onnx
  images/<dataset>-<class>-<file>.png   16 real photos from the demo datasets' test
                                       splits, resized to 224x224 by PIL (bilinear)
                                       and saved as PNG, so strata decodes exactly
                                       these pixels and does not resize them
  <arch>.reference.json  {"arch", "onnx", "input": [224,224], "mean", "std",
                          "images": [16 paths relative to DIR],
                          "probs_batch1":  softmax per image run alone,
                          "probs_batch16": softmax of the 16 run as one batch,
                          plus "logits_batch1" (the float32 logits, which show
                          errors a flat softmax hides), "classes", "opset",
                          "seed", "bn_data"}; resnet18's also has "gradcam":
                          {"layer", "classes", "cams" (7x7), "maps" (224x224 scaled
                          to [0, 1])} for its first 3 images (gradcam_reference)
The input is normalised as strata will: (pixel/255 - mean)/std in float32, ImageNet
mean/std, RGB, NCHW. Softmax is taken in float64 over the float32 logits; JSON
floats are Python reprs (shortest exact round trip of the float64).

Deterministic: fixed seeds, torch.set_num_threads(2). The photos are never copied
into the repository; keep DIR outside it.
"""

import argparse
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torchvision
from PIL import Image

ARCHS = [
    "resnet18",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "squeezenet1_1",
    "densenet121",
    "shufflenet_v2_x0_5",
]
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
SIDE = 224
N_IMAGES = 16
OPSET = 13
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build(arch, classes, seed, bn_batches):
    """Random-init model with BatchNorm statistics estimated on bn_batches (a list of
    [8,3,H,W] tensors, or None for two N(0,1) batches drawn after the weights), in eval mode."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, arch)(weights=None, num_classes=classes)
    if bn_batches is None:
        bn_batches = [torch.randn(8, 3, SIDE, SIDE) for _ in range(2)]
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches seen
    # Only the BatchNorm layers run in train mode: stochastic depth (EfficientNet)
    # and dropout stay off, so the statistics are those of the eval-mode network.
    model.eval()
    for bn in bns:
        bn.train()
    with torch.no_grad():
        for x in bn_batches:
            model(x)
    for bn in bns:
        bn.momentum = 0.1  # back to the default, so the exported attribute is ordinary
    model.eval()
    return model


def pick_images(data):
    """16 test photos, round-robin over datasets/classes (sorted), file r of each class in round r."""
    classes = []
    for ds in sorted(os.listdir(data)):
        test = os.path.join(data, ds, "test")
        if not os.path.isdir(test):
            continue
        for cls in sorted(os.listdir(test)):
            d = os.path.join(test, cls)
            if os.path.isdir(d):
                files = sorted(f for f in os.listdir(d) if f.lower().endswith((".jpg", ".jpeg", ".png")))
                if files:
                    classes.append((ds, cls, d, files))
    if not classes:
        sys.exit(f"error: no <dataset>/test/<class>/ image folders under {data} (use --data DIR)")
    picked, r = [], 0
    while len(picked) < N_IMAGES:
        progressed = False
        for ds, cls, d, files in classes:
            if r < len(files) and len(picked) < N_IMAGES:
                picked.append((ds, cls, os.path.join(d, files[r])))
                progressed = True
        if not progressed:
            sys.exit(f"error: fewer than {N_IMAGES} test images under {data}")
        r += 1
    return picked


def normalise(im):
    """PIL RGB image -> float32 [3,H,W], (pixel/255 - mean)/std in float32, as strata computes it."""
    px = np.asarray(im, dtype=np.float32)  # H, W, 3
    mean = np.array(MEAN, dtype=np.float32)
    std = np.array(STD, dtype=np.float32)
    return ((px / np.float32(255.0) - mean) / std).transpose(2, 0, 1)


def photo_batches(data, seed):
    """Two batches of 8 train photos chosen at random (seeded), resized to SIDE x SIDE
    (PIL bilinear) and normalised, for the BatchNorm statistics."""
    files = []
    for ds in sorted(os.listdir(data)):
        train = os.path.join(data, ds, "train")
        for dirpath, dirnames, names in os.walk(train):
            dirnames.sort()
            files += [os.path.join(dirpath, n) for n in sorted(names)
                      if n.lower().endswith((".jpg", ".jpeg", ".png"))]
    if len(files) < 16:
        sys.exit(f"error: fewer than 16 train images under {data} (use --data DIR or --bn-data noise)")
    xs = []
    for path in random.Random(seed).sample(files, 16):
        with Image.open(path) as im:
            xs.append(normalise(im.convert("RGB").resize((SIDE, SIDE), Image.BILINEAR)))
    x = torch.from_numpy(np.ascontiguousarray(np.stack(xs)))
    return [x[:8], x[8:]]


def write_images(picked, out):
    """Resizes to SIDE x SIDE (PIL bilinear), saves PNGs, returns (relative paths, float32 NCHW batch)."""
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    rels = []
    for ds, cls, src in picked:
        stem = os.path.splitext(os.path.basename(src))[0]
        rel = f"images/{ds}-{cls}-{stem}.png"
        with Image.open(src) as im:
            im.convert("RGB").resize((SIDE, SIDE), Image.BILINEAR).save(os.path.join(out, rel))
        rels.append(rel)
    # Read the PNGs back: the reference is computed on exactly the pixels strata reads.
    batch = []
    for rel in rels:
        with Image.open(os.path.join(out, rel)) as im:
            batch.append(normalise(im.convert("RGB")))
    return rels, torch.from_numpy(np.ascontiguousarray(np.stack(batch)))


def onnx_op_types(path):
    """Op-type counts of the main graph, read with a minimal protobuf wire-format walker
    (ModelProto.graph = 7, GraphProto.node = 1, NodeProto.op_type = 4)."""

    def fields(buf):
        i, n = 0, len(buf)
        while i < n:
            key, i = varint(buf, i)
            num, wt = key >> 3, key & 7
            if wt == 0:
                _, i = varint(buf, i)
            elif wt == 1:
                i += 8
            elif wt == 5:
                i += 4
            elif wt == 2:
                ln, i = varint(buf, i)
                yield num, buf[i:i + ln]
                i += ln
            else:
                raise ValueError(f"unsupported wire type {wt}")

    def varint(buf, i):
        v = s = 0
        while True:
            b = buf[i]
            i += 1
            v |= (b & 0x7F) << s
            s += 7
            if b < 0x80:
                return v, i

    with open(path, "rb") as f:
        model = memoryview(f.read())
    counts = {}
    for num, graph in fields(model):
        if num != 7:
            continue
        for gnum, node in fields(graph):
            if gnum != 1:
                continue
            for nnum, val in fields(node):
                if nnum == 4:
                    op = bytes(val).decode()
                    counts[op] = counts.get(op, 0) + 1
    return counts


def gradcam_reference(model, x, n):
    """Grad-CAM of ResNet-18 at layer4[-1]'s output, as pytorch-grad-cam computes it, for the
    first n images at their predicted class: alpha_k = spatial mean of d logit / d A_k,
    cam = ReLU(sum_k alpha_k A_k), upsampled bilinearly to the input (half-pixel centres,
    as cv2.resize), then scaled to [0, 1] by (cam - min) / max. Returns the 7x7 cams, the
    classes and the scaled maps, each image run alone."""
    saved = {}
    layer = model.layer4[-1]
    h1 = layer.register_forward_hook(lambda m, i, o: saved.__setitem__("a", o))
    h2 = layer.register_full_backward_hook(lambda m, gi, go: saved.__setitem__("g", go[0]))
    cams, classes, maps = [], [], []
    for i in range(n):
        xi = x[i:i + 1].clone().requires_grad_(True)
        logits = model(xi)
        c = int(logits[0].argmax())
        model.zero_grad()
        logits[0, c].backward()
        a, g = saved["a"].detach(), saved["g"].detach()
        alpha = g.mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((alpha * a).sum(dim=1, keepdim=True))
        up = torch.nn.functional.interpolate(cam, size=(SIDE, SIDE), mode="bilinear", align_corners=False)
        up = up[0, 0].double()
        up = up - up.min()
        up = up / (1e-7 + up.max())
        cams.append(cam[0, 0].double().tolist())
        classes.append(c)
        maps.append([round(v, 7) for v in up.flatten().tolist()])
    h1.remove()
    h2.remove()
    return cams, classes, maps


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder (keep it outside the repo)")
    ap.add_argument("--arch", default=",".join(ARCHS), help="comma-separated subset of: " + ",".join(ARCHS))
    ap.add_argument("--classes", type=int, default=1000, help="number of output classes K (default 1000)")
    ap.add_argument("--data", default=os.path.join(REPO, "..", "shared", "datasets"),
                    help="demo datasets root, <dataset>/test/<class>/*.jpg (default ../shared/datasets)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bn-data", choices=["photos", "noise"], default="photos",
                    help="what the BatchNorm statistics are estimated on (default photos)")
    args = ap.parse_args()

    archs = [a for a in args.arch.split(",") if a]
    unknown = [a for a in archs if a not in ARCHS]
    if unknown:
        sys.exit(f"error: unknown arch {', '.join(unknown)}; choose from {', '.join(ARCHS)}")
    torch.set_num_threads(2)
    os.makedirs(args.out, exist_ok=True)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {torch.get_num_threads()} threads")

    rels, x16 = write_images(pick_images(args.data), args.out)
    print(f"{len(rels)} reference images written to {os.path.join(args.out, 'images')}")
    bn_batches = photo_batches(args.data, args.seed) if args.bn_data == "photos" else None

    total0 = time.perf_counter()
    for arch in archs:
        t0 = time.perf_counter()
        model = build(arch, args.classes, args.seed, bn_batches)
        t1 = time.perf_counter()
        onnx_path = os.path.join(args.out, f"{arch}.onnx")
        with torch.no_grad():
            torch.onnx.export(model, torch.zeros(1, 3, SIDE, SIDE), onnx_path,
                              opset_version=OPSET, input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                              do_constant_folding=True)
        t2 = time.perf_counter()
        with torch.no_grad():
            logits1 = torch.cat([model(x16[i:i + 1]) for i in range(x16.shape[0])])
            logits16 = model(x16)
        probs1 = torch.softmax(logits1.double(), dim=1)
        probs16 = torch.softmax(logits16.double(), dim=1)
        ref = {
            "arch": arch,
            "onnx": f"{arch}.onnx",
            "input": [SIDE, SIDE],
            "mean": MEAN,
            "std": STD,
            "classes": args.classes,
            "opset": OPSET,
            "seed": args.seed,
            "bn_data": args.bn_data,
            "images": rels,
            "probs_batch1": probs1.tolist(),
            "probs_batch16": probs16.tolist(),
            "logits_batch1": logits1.double().tolist(),
        }
        if arch == "resnet18":
            cams, classes, maps = gradcam_reference(model, x16, 3)
            ref["gradcam"] = {"layer": "layer4[-1]", "classes": classes, "cams": cams, "maps": maps}
        with open(os.path.join(args.out, f"{arch}.reference.json"), "w") as f:
            json.dump(ref, f)
            f.write("\n")
        t3 = time.perf_counter()
        size = os.path.getsize(onnx_path)
        ops = onnx_op_types(onnx_path)
        print(f"{arch}: build+bn {t1 - t0:.1f}s, export {t2 - t1:.1f}s, reference {t3 - t2:.1f}s, "
              f"{size / 1e6:.1f} MB; logits std {logits1.std().item():.3g}, "
              f"max prob {probs1.max().item():.3g}, batch1 vs 16 max |dp| "
              f"{(probs1 - probs16).abs().max().item():.2g}")
        print("  ops: " + ", ".join(f"{k} {v}" for k, v in sorted(ops.items())))
        sys.stdout.flush()
    print(f"total {time.perf_counter() - total0:.1f}s")


if __name__ == "__main__":
    main()
