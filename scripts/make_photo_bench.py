"""Photo-sized benchmark images from Fashion-MNIST: no real colour-photo data set reaches this
machine, so these measure cost (decoding, resizing, colour HOG, memory), not photo accuracy.

Each of the first N training images is upscaled to SIZE x SIZE (bicubic), tinted with a random
per-image colour (gray * colour, seeded), and written as JPEG (quality 90) or PNG into
OUT/<class name>/<index>.<ext>, so that `hogsvm extract --data OUT` reads it as an image folder.

usage: python make_photo_bench.py --data fixtures/fashion-mnist --out /tmp/photos
         [--n 5000] [--size 224] [--format jpeg|png] [--gray] [--seed 0]
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idxio import idx_file, read_idx  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="folder with train-*-ubyte[.gz] IDX files")
    ap.add_argument("--out", required=True, help="output image folder (created)")
    ap.add_argument("--n", type=int, default=5000, help="images (the first N of the split)")
    ap.add_argument("--size", type=int, default=224, help="side in pixels")
    ap.add_argument("--format", choices=["jpeg", "png"], default="jpeg")
    ap.add_argument("--gray", action="store_true", help="no tint: 8-bit grayscale images")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    images = read_idx(idx_file(a.data, "train", "images-idx3", "make_photo_bench"))
    labels = read_idx(idx_file(a.data, "train", "labels-idx1", "make_photo_bench"))
    names_file = os.path.join(a.data, "classes.txt")
    if os.path.exists(names_file):
        with open(names_file) as f:
            names = [line.strip() for line in f if line.strip()]
    else:
        names = [str(i) for i in range(int(labels.max()) + 1)]
    # Class names become folder names: no path separators.
    names = [n.replace("/", "-") for n in names]
    n = min(a.n, len(images))
    if n < a.n:
        print(f"make_photo_bench: only {n} images in {a.data}", file=sys.stderr)
    rng = np.random.default_rng(a.seed)
    ext = "jpg" if a.format == "jpeg" else "png"
    for name in names:
        os.makedirs(os.path.join(a.out, name), exist_ok=True)
    for i in range(n):
        img = Image.fromarray(images[i]).resize((a.size, a.size), Image.BICUBIC)
        if not a.gray:
            tint = rng.uniform(0.35, 1.0, size=3)
            g = np.asarray(img, dtype=np.float32)[:, :, None]
            img = Image.fromarray(np.clip(g * tint, 0, 255).round().astype(np.uint8), "RGB")
        path = os.path.join(a.out, names[int(labels[i])], f"{i:06d}.{ext}")
        if a.format == "jpeg":
            img.save(path, quality=90)
        else:
            img.save(path)
    print(f"wrote {n} {a.size}x{a.size} {'gray' if a.gray else 'colour'} {a.format} images to {a.out}")


if __name__ == "__main__":
    main()
