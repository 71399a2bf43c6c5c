#!/usr/bin/env python3
"""Write the golden files of the CLI's colour path to FIXTURES/photo-golden/.

Run through scripts/golden.sh (which makes the venv). Never edit the outputs by hand.

A small image folder as a user holds it, and what scikit-image computes on it:
  images/<class>/<name>   RGB PNGs, an RGBA PNG, a gray PNG (in a colour folder: RGB by
                          `--color auto`, gray repeated), RGB JPEGs (4:4:4 and 4:2:0), 40x48
  expected-<case>.npy     per image, in the CLI's order (classes, then names, sorted), the HOG of
                          skimage.feature.hog(np.asarray(Image.open(f).convert("RGB")),
                          channel_axis=-1, ...), (n, d) float64
  manifest.json           the files (path, kind), the cases' HOG parameters, the versions

PNG is lossless, so the CLI (`hogsvm extract --data images`) must agree within 1e-5. JPEG
decoding is not specified to the bit: hogsvm decodes with zune-jpeg, Pillow with libjpeg-turbo,
and their pixels differ by up to a few levels (chroma upsampling most), so JPEG rows carry the
bound `jpeg_tolerance` of the manifest instead (docs/BENCHMARKS.md "Photos").
"""
import json
import os
import shutil
import sys

import numpy as np
import PIL
import skimage
from PIL import Image
from skimage.feature import hog

FIXTURES = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "fixtures")
OUT = os.path.join(FIXTURES, "photo-golden")
CASES = [
    # The u8 integer path (no square root) and the float path (square root), two layouts.
    {"name": "c8b2", "cell": 8, "block": 2, "orientations": 9, "block_norm": "L2-Hys", "sqrt": False},
    {"name": "c6b3_sqrt_l1", "cell": 6, "block": 3, "orientations": 12, "block_norm": "L1", "sqrt": True},
]
JPEG_TOLERANCE = 0.15


def picture(i, rows=40, cols=48):
    """Smooth colour ramps with seeded noise: every channel wins somewhere."""
    rng = np.random.default_rng(20261208 + i)
    y, x = np.mgrid[0:rows, 0:cols]
    img = np.stack([(x * 5 + i * 17) % 256, (y * 6 + x * 2 + i * 9) % 256, ((x - y) * 3 + 100) % 256], -1)
    return np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    files = []

    def save(cls, name, kind, img, **kw):
        path = os.path.join("images", cls, name)
        os.makedirs(os.path.join(OUT, "images", cls), exist_ok=True)
        img.save(os.path.join(OUT, path), **kw)
        files.append({"path": path, "kind": kind})

    save("cat", "0.png", "png", Image.fromarray(picture(0)))
    save("cat", "1.png", "png", Image.fromarray(picture(1)))
    rgba = np.concatenate([picture(2), np.full((40, 48, 1), 77, np.uint8)], -1)
    save("cat", "2-rgba.png", "png", Image.fromarray(rgba, "RGBA"))
    save("cat", "3.jpg", "jpeg", Image.fromarray(picture(3)), quality=90, subsampling=0)
    save("dog", "0.png", "png", Image.fromarray(picture(4)))
    save("dog", "1-gray.png", "png", Image.fromarray(picture(5)[:, :, 1], "L"))
    save("dog", "2.jpg", "jpeg", Image.fromarray(picture(6)), quality=90, subsampling=0)
    save("dog", "3.jpg", "jpeg", Image.fromarray(picture(7)), quality=90, subsampling=2)
    files.sort(key=lambda f: f["path"])
    for c in CASES:
        rows = []
        for f in files:
            with Image.open(os.path.join(OUT, f["path"])) as im:
                a = np.asarray(im.convert("RGB"))
            rows.append(hog(a, orientations=c["orientations"], pixels_per_cell=(c["cell"], c["cell"]),
                            cells_per_block=(c["block"], c["block"]), block_norm=c["block_norm"],
                            transform_sqrt=c["sqrt"], channel_axis=-1))
        np.save(os.path.join(OUT, f"expected-{c['name']}.npy"), np.stack(rows))
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump({"skimage_version": skimage.__version__, "pillow_version": PIL.__version__,
                   "files": files, "cases": CASES, "png_tolerance": 1e-5,
                   "jpeg_tolerance": JPEG_TOLERANCE}, f, indent=1)
    print(f"wrote {len(files)} images and {len(CASES)} cases to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
