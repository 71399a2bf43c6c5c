#!/usr/bin/env python3
"""HOG speed from Python, side by side in one run: the `hogsvm` package (`hog_batch` on every
image, and `hog` per call) against a `skimage.feature.hog` loop and a `cv2.HOGDescriptor.compute`
loop, single thread, on the same uint8 images; then `hog_batch` with 2 threads against 1.

Config: 28x28 Fashion-MNIST training images, cells 4x4, blocks 2x2, L2-Hys, 9 bins (the 28x28
config of peer_hog.py). scikit-image is timed on the first --n-skimage images (it is ~1000x
slower); its per-image time is what the ratio uses. Rounds are interleaved (hogsvm, OpenCV,
scikit-image, then again) so that a slow period of a shared machine hits all three; figures are
medians over rounds. Run through `scripts/peer_hog.sh --python`, which installs the package.

Output memory is matched in two pairs, because a fresh 60,000 x 1,296 float32 array (311 MB)
costs its page faults whoever fills it: `hog_batch` returning a new array against an OpenCV loop
that keeps its rows in a new array, and `hog_batch(out=buf)` into a reused buffer against an
OpenCV loop that drops each result (its small buffer is reused by malloc). The ratio of the
new-array `hog_batch` to the dropping loop is reported too.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import cv2
import numpy as np
import skimage
from skimage.feature import hog as sk_hog

import hogsvm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idxio import read_idx  # noqa: E402

KW = dict(orientations=9, pixels_per_cell=(4, 4), cells_per_block=(2, 2), block_norm="L2-Hys")


def per_image_us(fn, images):
    t = time.perf_counter()
    for x in images:
        fn(x)
    return (time.perf_counter() - t) / len(images) * 1e6


def keep_loop_us(fn, images, dim):
    """A loop that keeps every result, as code that goes on to use the features must: rows of a
    new (n, dim) float32 array."""
    t = time.perf_counter()
    out = np.empty((len(images), dim), np.float32)
    for i, x in enumerate(images):
        out[i] = fn(x).ravel()
    return (time.perf_counter() - t) / len(images) * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images (0: all)")
    ap.add_argument("--n-skimage", type=int, default=2000, help="images for the scikit-image loop")
    ap.add_argument("--n-calls", type=int, default=2000, help="single-image calls for the per-call times")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    cv2.setNumThreads(1)
    path = os.path.join(a.data, "train-images-idx3-ubyte.gz")
    x = read_idx(path if os.path.exists(path) else path[:-3])
    if a.limit:
        x = x[: a.limit]
    desc = cv2.HOGDescriptor((28, 28), (8, 8), (4, 4), (4, 4), 9)
    sk = lambda im: sk_hog(im, **KW)
    # Same numbers first (the parity suite checks this thoroughly; this is a guard).
    ref = np.stack([sk(im) for im in x[:20]])
    got = hogsvm.hog_batch(x[:20], n_jobs=1, **KW)
    if np.abs(got - ref).max() > 1e-5:
        sys.exit("peer_hog_python: hogsvm and scikit-image disagree; run scripts/python_tests.sh")
    one = x[0]
    # Warm-up, untimed: the bin table is built on first use, pools and caches start cold.
    for n_jobs in (1, 2):
        hogsvm.hog_batch(x[:2000], n_jobs=n_jobs, **KW)
    desc.compute(one)
    dim = got.shape[1]
    buf = np.zeros((len(x), dim), np.float32)
    rows = {k: [] for k in ("batch1", "batch1_out", "batch2", "opencv", "opencv_keep", "skimage",
                            "call_hogsvm", "call_opencv", "call_skimage")}
    for _ in range(a.rounds):
        t = time.perf_counter()
        res = hogsvm.hog_batch(x, n_jobs=1, **KW)
        rows["batch1"].append((time.perf_counter() - t) / len(x) * 1e6)
        del res
        t = time.perf_counter()
        hogsvm.hog_batch(x, n_jobs=1, out=buf, **KW)
        rows["batch1_out"].append((time.perf_counter() - t) / len(x) * 1e6)
        rows["opencv"].append(per_image_us(desc.compute, x))
        rows["opencv_keep"].append(keep_loop_us(desc.compute, x, dim))
        rows["skimage"].append(per_image_us(sk, x[: a.n_skimage]))
        t = time.perf_counter()
        hogsvm.hog_batch(x, n_jobs=2, **KW)
        rows["batch2"].append((time.perf_counter() - t) / len(x) * 1e6)
        calls = [one] * a.n_calls
        rows["call_hogsvm"].append(per_image_us(lambda im: hogsvm.hog(im, **KW), calls))
        rows["call_opencv"].append(per_image_us(desc.compute, calls))
        rows["call_skimage"].append(per_image_us(sk, calls[: max(1, a.n_calls // 10)]))
    med = {k: statistics.median(v) for k, v in rows.items()}
    out = {"date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
           "cpus": os.cpu_count(), "images": len(x), "rounds": a.rounds, "config": KW,
           "skimage": skimage.__version__, "opencv": cv2.__version__, "numpy": np.__version__,
           "us_per_image": med,
           "speedup": {"batch_vs_skimage_loop": med["skimage"] / med["batch1"],
                       "batch_out_vs_skimage_loop": med["skimage"] / med["batch1_out"],
                       "batch_vs_opencv_loop": med["opencv"] / med["batch1"],
                       "batch_vs_opencv_keep_loop": med["opencv_keep"] / med["batch1"],
                       "batch_out_vs_opencv_loop": med["opencv"] / med["batch1_out"],
                       "call_vs_skimage_call": med["call_skimage"] / med["call_hogsvm"],
                       "call_vs_opencv_call": med["call_opencv"] / med["call_hogsvm"],
                       "two_threads_vs_one": med["batch1"] / med["batch2"]}}
    print(f"{len(x)} images 28x28, cells 4x4, blocks 2x2, L2-Hys, 9 bins; medians of {a.rounds} rounds (us/image)")
    sp = out["speedup"]
    print(f"  hogsvm.hog_batch, 1 thread  {med['batch1']:9.2f}   (a new array)")
    print(f"  hog_batch(out=buf), 1 thread {med['batch1_out']:8.2f}   (a reused buffer)")
    print(f"  hogsvm.hog_batch, 2 threads {med['batch2']:9.2f}   ({out['speedup']['two_threads_vs_one']:.2f}x)")
    print(f"  cv2 loop, rows kept         {med['opencv_keep']:9.2f}   (hog_batch {sp['batch_vs_opencv_keep_loop']:.1f}x faster)")
    print(f"  cv2 loop, rows dropped      {med['opencv']:9.2f}   (hog_batch(out=) {sp['batch_out_vs_opencv_loop']:.1f}x,"
          f" hog_batch {sp['batch_vs_opencv_loop']:.1f}x faster)")
    print(f"  skimage.feature.hog loop    {med['skimage']:9.2f}   (hog_batch {sp['batch_vs_skimage_loop']:.0f}x,"
          f" hog_batch(out=) {sp['batch_out_vs_skimage_loop']:.0f}x faster)")
    print(f"  one image per call: hogsvm.hog {med['call_hogsvm']:.2f}, cv2 {med['call_opencv']:.2f}, "
          f"skimage {med['call_skimage']:.2f}  (hogsvm {out['speedup']['call_vs_opencv_call']:.1f}x cv2, "
          f"{out['speedup']['call_vs_skimage_call']:.0f}x skimage)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
