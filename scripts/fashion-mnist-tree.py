#!/usr/bin/env python3
"""Converts Debian's dataset-fashion-mnist (IDX files) into an ImageFolder-style tree, one PNG
per sample: OUT/{train,test}/<label>-<class>/<index>.png (class directories sort in label
order). Usage: fashion-mnist-tree.py OUT [--limit N] [--src /usr/share/datasets/fashion-mnist]
Skips a split whose tree is already complete."""
import argparse
import gzip
import os
import struct

import numpy as np
from PIL import Image

CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
           "bag", "boot"]


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", data[8:16])
        return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, rows, cols)
    if magic == 2049:
        return np.frombuffer(data, dtype=np.uint8, offset=8)
    raise ValueError(f"{path}: not an IDX file (magic {magic})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--src", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--limit", type=int, default=0, help="first N samples of each split")
    a = ap.parse_args()
    for split, prefix in [("train", "train"), ("test", "t10k")]:
        images = idx(os.path.join(a.src, f"{prefix}-images-idx3-ubyte.gz"))
        labels = idx(os.path.join(a.src, f"{prefix}-labels-idx1-ubyte.gz"))
        n = min(a.limit, len(images)) if a.limit else len(images)
        root = os.path.join(a.out, split)
        done = os.path.join(root, ".complete")
        if os.path.exists(done) and open(done).read() == str(n):
            continue
        for k, c in enumerate(CLASSES):
            os.makedirs(os.path.join(root, f"{k}-{c}"), exist_ok=True)
        for i in range(n):
            k = int(labels[i])
            Image.fromarray(images[i]).save(os.path.join(root, f"{k}-{CLASSES[k]}", f"{i:05}.png"))
        with open(done, "w") as f:
            f.write(str(n))
        print(f"{split}: {n} images in {root}")


if __name__ == "__main__":
    main()
