#!/usr/bin/env python3
"""HOG speed, side by side: hogsvm (`hogsvm bench-hog`), scikit-image `hog` and OpenCV
`HOGDescriptor.compute`, single thread, on the same images in the same run.

Configs: 28x28 Fashion-MNIST images, cells 4x4, blocks 2x2, L2-Hys, 9 bins; and the same images
resized to 64x64 (by this script, with OpenCV's bilinear resize; the resized images are handed to
hogsvm as an IDX file so that all three see identical pixels), cells 8x8, blocks 2x2.
With --scaling, also hogsvm with 1 and 2 threads on every image of --data (the full training set
when --data is the Fashion-MNIST folder).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np
import skimage
from skimage.feature import hog as sk_hog

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idxio import read_idx, write_idx  # noqa: E402


def write_idx_pair(base, arr, labels):
    """`base`-images-idx3-ubyte and `base`-labels-idx1-ubyte."""
    write_idx(base + "-images-idx3-ubyte", arr)
    write_idx(base + "-labels-idx1-ubyte", labels)


def median_us(fn, images, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for x in images:
            fn(x)
        times.append((time.perf_counter() - t) / len(images) * 1e6)
    return statistics.median(times), min(times)


def hogsvm_us(exe, images_file, n, cell, threads, repeat):
    """hogsvm's own timing of batch extraction (excludes process start and loading)."""
    out = subprocess.run(
        [exe, "bench-hog", "--data", images_file, "--cell", str(cell), "--block", "2",
         "--threads", str(threads), "--repeat", str(repeat)] + (["--limit", str(n)] if n else []),
        check=True, capture_output=True, text=True).stdout
    d = json.loads(out.strip().splitlines()[-1])
    return d["us_per_image_median"], d["us_per_image_min"], d["images"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hogsvm", default="target/release/hogsvm")
    ap.add_argument("--data", default="fixtures/fashion-mnist")
    ap.add_argument("--n", type=int, default=2000, help="images for hogsvm and OpenCV (first N)")
    ap.add_argument("--n-skimage", type=int, default=300, help="images for scikit-image (slow)")
    ap.add_argument("--repeat", type=int, default=7, help="interleaved rounds")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--scaling", action="store_true", help="hogsvm 1 vs 2 threads on all of --data")
    a = ap.parse_args()
    cv2.setNumThreads(1)
    train = os.path.join(a.data, "train-images-idx3-ubyte.gz")
    if not os.path.exists(train):
        train = train[:-3]
    x28 = read_idx(train)[: a.n]
    labels = np.zeros(len(x28), np.uint8)
    results = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
               "skimage": skimage.__version__, "opencv": cv2.__version__,
               "numpy": np.__version__, "date": time.strftime("%Y-%m-%d"), "configs": []}
    # This machine may be shared: measurements are interleaved in rounds (hogsvm, OpenCV,
    # scikit-image, then again), so that a slow period hits all three; the figures are medians
    # over rounds, and each ratio is the median of the per-round ratios.
    with tempfile.TemporaryDirectory() as tmp:
        for side, cell in ((28, 4), (64, 8)):
            imgs = x28 if side == 28 else np.stack(
                [cv2.resize(x, (side, side), interpolation=cv2.INTER_LINEAR) for x in x28])
            base = os.path.join(tmp, f"s{side}")
            write_idx_pair(base, imgs, labels)
            desc = cv2.HOGDescriptor((side, side), (2 * cell, 2 * cell), (cell, cell), (cell, cell), 9)
            sk = lambda x: sk_hog(x, orientations=9, pixels_per_cell=(cell, cell),
                                  cells_per_block=(2, 2), block_norm="L2-Hys")
            hs, cv, skt = [], [], []
            for _ in range(a.repeat):
                # Within a round each tool gets its best of a few passes (hogsvm's pass over
                # 2000 images is ~5 ms, so it gets more of them).
                h_min, h_images = hogsvm_us(a.hogsvm, base + "-images-idx3-ubyte", 0, cell, 1, 10)[1:]
                if h_images != len(imgs):
                    sys.exit(f"peer_hog: error: hogsvm bench-hog timed {h_images} images, not {len(imgs)}")
                hs.append(h_min)
                cv.append(median_us(desc.compute, imgs, 3)[1])
                skt.append(median_us(sk, imgs[: a.n_skimage], 1)[0])
            med = statistics.median
            r = {"config": f"{side}x{side} cells {cell}x{cell} blocks 2x2 L2-Hys 9 bins, 1 thread",
                 "images": len(imgs), "rounds": a.repeat,
                 "hogsvm_us": med(hs), "opencv_us": med(cv), "skimage_us": med(skt),
                 "hogsvm_us_all": hs, "opencv_us_all": cv, "skimage_us_all": skt,
                 "speedup_vs_skimage": med([s_ / h for s_, h in zip(skt, hs)]),
                 "speedup_vs_opencv": med([c / h for c, h in zip(cv, hs)]),
                 "speedup_vs_opencv_worst_round": min(c / h for c, h in zip(cv, hs))}
            results["configs"].append(r)
    print(f"HOG, microseconds per image, 1 thread, median of {a.repeat} interleaved rounds (best pass within a round)")
    print(f"{'config':<52} {'hogsvm':>8} {'OpenCV':>8} {'skimage':>9} {'x skimage':>10} {'x OpenCV':>9} {'(worst)':>8}")
    for r in results["configs"]:
        print(f"{r['config']:<52} {r['hogsvm_us']:>8.2f} {r['opencv_us']:>8.2f} {r['skimage_us']:>9.1f}"
              f" {r['speedup_vs_skimage']:>10.1f} {r['speedup_vs_opencv']:>9.2f}"
              f" {r['speedup_vs_opencv_worst_round']:>8.2f}")
    if a.scaling:
        one, two = [], []
        for _ in range(a.repeat):
            one.append(hogsvm_us(a.hogsvm, a.data, 0, 4, 1, 5)[1])
            two.append(hogsvm_us(a.hogsvm, a.data, 0, 4, 2, 5)[1])
        n_all = hogsvm_us(a.hogsvm, a.data, 0, 4, 1, 1)[2]
        sp = statistics.median([o / t for o, t in zip(one, two)])
        results["scaling"] = {"images": n_all, "rounds": a.repeat,
                              "us_1_thread": statistics.median(one),
                              "us_2_threads": statistics.median(two),
                              "us_1_thread_all": one, "us_2_threads_all": two,
                              "speedup_2_threads": sp}
        print(f"hogsvm on {n_all} images (28x28, 4x4, 2x2): 1 thread "
              f"{statistics.median(one):.2f} us/image, 2 threads {statistics.median(two):.2f} "
              f"us/image, speed-up {sp:.2f}x (median of {a.repeat} interleaved rounds)")
    print(f"(scikit-image {skimage.__version__}, OpenCV {cv2.__version__}, {results['cpus']} CPUs)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
