#!/usr/bin/python3
"""Exports an untrained torchvision architecture to ONNX, for `strata train --from`.

Usage (Debian's interpreter, which has python3-torch 1.13 and python3-torchvision 0.14):

    /usr/bin/python3 scripts/onnx/export_untrained.py --arch mobilenet_v2 --size 96 \
        --out /tmp/mobilenet_v2-96.onnx [--classes 1000] [--seed 0]

The weights are torchvision's own initialisation (torch.manual_seed(seed) first):
what a network starts from before any training. The model is in eval mode, as
every exporter writes a model for inference, but exported with
training=TrainingMode.PRESERVE: in its default mode (EVAL) PyTorch folds each
BatchNorm into the convolution before it, which is right for inference and
leaves nothing to train with batch statistics; PRESERVE keeps the
BatchNormalization nodes (their stored statistics), which strata trains with the
batch's. Opset 13, the batch axis dynamic, input "input" [B, 3, size, size],
output "logits" [B, classes].
"""
import argparse

import torch
import torchvision


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", required=True, help="a torchvision.models constructor, e.g. mobilenet_v2")
    ap.add_argument("--size", type=int, default=224, help="input height and width")
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="the .onnx file to write")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    model = getattr(torchvision.models, a.arch)(weights=None, num_classes=a.classes).eval()
    x = torch.zeros(1, 3, a.size, a.size)
    torch.onnx.export(model, x, a.out, opset_version=13, training=torch.onnx.TrainingMode.PRESERVE,
                      input_names=["input"],
                      output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    print(f"wrote {a.out}: {a.arch}, {a.size}x{a.size}, {a.classes} classes, "
          f"{sum(p.numel() for p in model.parameters())} parameters, {n_bn} BatchNorm layers kept")


if __name__ == "__main__":
    main()
