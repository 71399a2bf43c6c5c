"""Decode + resize + colour HOG on a folder of photo-sized JPEGs (scripts/make_photo_bench.py),
three ways in the same run, at the same thread count:

  hogsvm:  `hogsvm extract --data DIR --resize WxH --color rgb` (its own decode, resize, HOG;
           the time includes writing the .npy), --threads T;
  OpenCV:  cv2.imread (colour) + cv2.resize (INTER_LINEAR) + HOGDescriptor.compute, in T worker
           processes (a pool over the files; cv2.setNumThreads(1) in each);
  PIL + scikit-image: Image.open().convert("RGB") + resize (BILINEAR) + skimage.feature.hog(...,
           channel_axis=-1), in T worker processes.

Every pipeline describes each image at WxH with 8x8-pixel cells, 2x2-cell blocks sliding by one
cell, 9 orientations (OpenCV's HOGDescriptor layout, which scikit-image's cells_per_block=(2, 2)
matches), on colour (the channel with the largest gradient per pixel, in all three). Images per
second, the median of --rounds runs, and the ratios. This measures cost, not accuracy: the images
are upscaled, tinted Fashion-MNIST.

usage: python peer_photos.py --data DIR --bin HOGSVM [--size 128] [--threads 2] [--rounds 3]
         [--limit N] [--json OUT]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor


def files_of(root, limit):
    out = []
    for dirpath, _, names in sorted(os.walk(root)):
        for n in sorted(names):
            if n.lower().endswith((".jpg", ".jpeg", ".png")):
                out.append(os.path.join(dirpath, n))
    return out[:limit] if limit else out


_STATE = {}


def _cv_init(size):
    import cv2
    cv2.setNumThreads(1)
    _STATE["cv2"] = cv2
    _STATE["size"] = size
    _STATE["hog"] = cv2.HOGDescriptor((size, size), (16, 16), (8, 8), (8, 8), 9)


def _cv_chunk(paths):
    cv2, size, hog = _STATE["cv2"], _STATE["size"], _STATE["hog"]
    n = 0
    for p in paths:
        img = cv2.imread(p, cv2.IMREAD_COLOR)
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
        n += hog.compute(img).size
    return n


def _sk_init(size):
    from PIL import Image
    from skimage.feature import hog
    _STATE["Image"] = Image
    _STATE["hog"] = hog
    _STATE["size"] = size


def _sk_chunk(paths):
    Image, hog, size = _STATE["Image"], _STATE["hog"], _STATE["size"]
    import numpy as np
    n = 0
    for p in paths:
        with Image.open(p) as im:
            a = np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR))
        n += hog(a, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2),
                 block_norm="L2-Hys", channel_axis=-1).size
    return n


def pooled(files, threads, init, chunk_fn, size):
    chunks = [files[i::threads * 8] for i in range(threads * 8)]
    with ProcessPoolExecutor(threads, initializer=init, initargs=(size,)) as ex:
        # Warm the workers (imports) outside the timing.
        list(ex.map(chunk_fn, [files[:1]] * threads))
        t = time.perf_counter()
        total = sum(ex.map(chunk_fn, chunks))
        return time.perf_counter() - t, total


def hogsvm_run(binary, data, size, threads):
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        subprocess.run([binary, "extract", "--data", data, "--out", os.path.join(d, "f.npy"),
                        "--resize", f"{size}x{size}", "--color", "rgb", "--cell", "8",
                        "--block", "2", "--threads", str(threads)],
                       check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--limit", type=int, default=0, help="images for the PIL + scikit-image row "
                    "(0: all); the others always take every image")
    ap.add_argument("--json")
    a = ap.parse_args()
    files = files_of(a.data, 0)
    sk_files = files_of(a.data, a.limit)
    rows = {"hogsvm": [], "opencv": [], "pil_skimage": []}
    for _ in range(a.rounds):
        rows["hogsvm"].append(len(files) / hogsvm_run(a.bin, a.data, a.size, a.threads))
        s, _ = pooled(files, a.threads, _cv_init, _cv_chunk, a.size)
        rows["opencv"].append(len(files) / s)
        s, _ = pooled(sk_files, a.threads, _sk_init, _sk_chunk, a.size)
        rows["pil_skimage"].append(len(sk_files) / s)
    med = {k: statistics.median(v) for k, v in rows.items()}
    out = {
        "images": len(files), "images_pil_skimage": len(sk_files), "size": a.size,
        "threads": a.threads, "rounds": a.rounds, "images_per_s": rows,
        "median_images_per_s": med,
        "hogsvm_vs_opencv": med["hogsvm"] / med["opencv"],
        "hogsvm_vs_pil_skimage": med["hogsvm"] / med["pil_skimage"],
    }
    print(json.dumps(out, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
