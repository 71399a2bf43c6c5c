#!/usr/bin/env python3
"""Write the bundled Fashion-MNIST subset to fixtures/fashion-mnist/ (standard library only).

Usage: python3 scripts/make_fixtures.py [SOURCE_DIR]   (default /usr/share/datasets/fashion-mnist)

Takes the first N_TRAIN training and the first N_TEST test images (Fashion-MNIST's order is
already shuffled and close to balanced), in the same IDX layout, gzip-compressed.
"""
import gzip
import os
import struct
import sys

N_TRAIN, N_TEST = 2000, 500
SRC = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
DST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "fashion-mnist")


def subset(name, n):
    with gzip.open(os.path.join(SRC, name + ".gz"), "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = list(struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim]))
    per = 1
    for d in dims[1:]:
        per *= d
    body = data[4 + 4 * ndim:4 + 4 * ndim + n * per]
    dims[0] = n
    out = data[:4] + struct.pack(">" + "I" * ndim, *dims) + body
    os.makedirs(DST, exist_ok=True)
    # mtime=0 so that the bytes do not depend on the day the script ran
    with open(os.path.join(DST, name + ".gz"), "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as g:
            g.write(out)


for split, n in (("train", N_TRAIN), ("t10k", N_TEST)):
    subset(f"{split}-images-idx3-ubyte", n)
    subset(f"{split}-labels-idx1-ubyte", n)
print("wrote", os.path.normpath(DST))
