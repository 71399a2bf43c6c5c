#!/usr/bin/env python3
"""Write HOG golden files computed by scikit-image to FIXTURES/hog-golden/.

Run through scripts/golden.sh (which makes the venv). Never edit the outputs by hand.

NumPy's `arctan2` is not the same function on every CPU: on one with AVX-512 NumPy uses its own
SIMD (SVML) version, which differs from the C library's `atan2` by an ulp on some inputs; for a
gradient whose angle is a bin edge in exact arithmetic (square roots of 183 and 61: 60 degrees) that
ulp decides the bin, and the SIMD version is the one on the wrong side (the exact angle of the
rounded gradient is above the edge). golden.sh therefore runs this script with NumPy's AVX-512 code
turned off (NPY_DISABLE_CPU_FEATURES), so the golden files are the same on every machine and agree
with the correctly rounded angle; docs/BENCHMARKS.md (HOG parity) gives the measurement.

Outputs:
  manifest.json           one entry per case: input kind, HOG parameters, file names
  <case>.input.npy        the images, (n, rows, cols) or (n, rows, cols, 3), uint8, float32 or float64
  <case>.hog.npy          skimage.feature.hog(..., feature_vector=True) per image, (n, d) float64
  <case>.vis.npy          the visualize=True image per image, (n, rows, cols) float64 (some cases)
  bins-<n>.npy.gz         scikit-image's orientation bin for every integer gradient pair
                          (g_row, g_col) in [-255, 255]^2, uint8, value n = no bin; gzip-compressed
"""
import gzip
import io
import json
import os
import sys

import numpy as np
import skimage
from skimage.feature import hog

FIXTURES = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "fixtures")
OUT = os.path.join(FIXTURES, "hog-golden")
NORMS = ["L1", "L1-sqrt", "L2", "L2-Hys"]


def read_idx_images(path, n):
    with gzip.open(path, "rb") as f:
        data = f.read()
    rows, cols = int.from_bytes(data[8:12], "big"), int.from_bytes(data[12:16], "big")
    return np.frombuffer(data, np.uint8, offset=16).reshape(-1, rows, cols)[:n].copy()


def synthetic(rows, cols, seed):
    """Structured images that hit exact ties: flat areas, ramps, diagonals, a checkerboard."""
    rng = np.random.default_rng(seed)
    r, c = np.mgrid[0:rows, 0:cols]
    imgs = [
        (r * 7 + c * 7) % 256,  # 45-degree ramp: g_row == g_col everywhere
        (r * 5 - c * 5) % 256,  # 135 degrees
        np.where((r // 3 + c // 3) % 2 == 0, 200, 30),  # checkerboard: pure row/col gradients
        (c * 9) % 256,  # pure column gradient (0 degrees)
        (r * 11) % 256,  # pure row gradient (90 degrees)
        rng.integers(0, 256, (rows, cols)),  # noise
        np.zeros((rows, cols)),  # flat
        np.full((rows, cols), 255),
    ]
    return np.stack(imgs).astype(np.uint8)


def edge_images(rows, cols, seed, count=10):
    """Images whose gradients often lie on a bin edge in exact arithmetic.

    With the square-root transform, pixel values whose square roots have the ratio sqrt(3) (183 and
    61, 27 and 9, ... : tan 60 and 1 / tan 30 degrees) or 1 (45 degrees) put gradients on the edges
    of 4, 6, 8, 9, 12 and 18 orientations. The images are small-integer and saturated noise over
    those values, and a lattice of 3x3 tiles whose centre pixel sees exactly such a pair above /
    below and left / right (the other two neighbours 0), in every sign combination.
    """
    rng = np.random.default_rng(seed)
    pairs = [(183, 61), (27, 9), (12, 4), (3, 1), (243, 81), (48, 16), (75, 25), (147, 49), (192, 64),
             (61, 183), (9, 27), (100, 100), (255, 255)]
    vals = np.array(sorted({v for p in pairs for v in p} | {0}), np.uint8)
    imgs = [rng.choice(vals, size=(rows, cols)) for _ in range(count - 3)]
    imgs.append(rng.choice(np.array([0, 255], np.uint8), size=(rows, cols)))
    imgs.append(rng.choice(np.array([0, 1, 2, 3, 4, 255], np.uint8), size=(rows, cols)))
    lattice = np.zeros((rows, cols), np.uint8)
    for r0 in range(0, rows - 2, 3):
        for c0 in range(0, cols - 2, 3):
            a, b = pairs[rng.integers(len(pairs))]
            dr, dc = rng.choice([-1, 1]), rng.choice([-1, 1])
            lattice[r0 + 1 + dr, c0 + 1] = a  # above or below the centre
            lattice[r0 + 1, c0 + 1 + dc] = b  # left or right of it
    imgs.append(lattice)
    return np.stack(imgs).astype(np.uint8)


def run_case(manifest, name, images, kind, orientations=9, ppc=(8, 8), cpb=(3, 3), norm="L2-Hys",
             sqrt=False, vis=False):
    multichannel = kind.startswith("rgb")
    feats, viss = [], []
    for im in images:
        out = hog(im, orientations=orientations, pixels_per_cell=ppc, cells_per_block=cpb,
                  block_norm=norm, transform_sqrt=sqrt, visualize=vis, feature_vector=True,
                  channel_axis=-1 if multichannel else None)
        if vis:
            f, v = out
            viss.append(np.asarray(v, np.float64))
        else:
            f = out
        feats.append(np.asarray(f, np.float64))
    entry = {
        "name": name,
        "kind": kind,
        "orientations": orientations,
        "cell_rows": ppc[0],
        "cell_cols": ppc[1],
        "block_rows": cpb[0],
        "block_cols": cpb[1],
        "block_norm": norm,
        "transform_sqrt": sqrt,
        "input": f"{name}.input.npy",
        "hog": f"{name}.hog.npy",
    }
    np.save(os.path.join(OUT, entry["input"]), images)
    np.save(os.path.join(OUT, entry["hog"]), np.stack(feats))
    if vis:
        entry["vis"] = f"{name}.vis.npy"
        np.save(os.path.join(OUT, entry["vis"]), np.stack(viss))
    manifest.append(entry)


def edge(n, i):
    """Bin edge i of n as scikit-image 0.26 compares with it: 180. / n * i in float64."""
    return 180.0 / n * i


def between_edges(n, rows=27, cols=30, seed=0):
    """Images whose gradients point at, or just beside, a bin edge: the edge itself (float64), the
    next float64 either side, its float32 rounding (what a float32 port would compare with) and
    the midpoint of the two. Each 3x3 tile's centre sees a value below it and one to its right
    (zeros above and left), so its gradient is (a, b) exactly."""
    rng = np.random.default_rng(seed)
    angles = []
    for i in range(1, n):
        a, b = edge(n, i), float(np.float32(edge(n, i)))
        angles += [(a + b) / 2, a, b, np.nextafter(a, 0), np.nextafter(a, 180)]
    img = np.zeros((rows, cols))
    k = 0
    for r0 in range(0, rows - 2, 3):
        for c0 in range(0, cols - 2, 3):
            t = np.deg2rad(angles[k % len(angles)])
            scale = rng.uniform(10, 200)
            img[r0 + 2, c0 + 1] = scale * np.sin(t)  # below the centre: g_row
            img[r0 + 1, c0 + 2] = scale * np.cos(t)  # right of it: g_col
            k += 1
    return np.stack([img, img[::-1, ::-1].copy(), np.roll(img, 1, axis=1)])


def bin_table(n):
    """Bins exactly as skimage/feature/_hoghistogram.pyx assigns them."""
    g = np.arange(-255, 256, dtype=np.float64)
    gr, gc = np.meshgrid(g, g, indexing="ij")
    theta = np.arctan2(gr, gc) * (180 / np.pi) % 180
    out = np.full(theta.shape, n, np.uint8)
    for i in range(n):
        start, end = edge(n, i + 1), edge(n, i)
        out[(theta < start) & (theta >= end)] = i
    return out


def check_arctan2():
    """Refuse to write golden files with NumPy's AVX-512 arctan2 (see the module docstring)."""
    import math
    gr, gc = -math.sqrt(183.0), -math.sqrt(61.0)
    if float(np.arctan2(np.full(16, gr), np.full(16, gc))[0]) != math.atan2(gr, gc):
        sys.exit("make_golden.py: NumPy's arctan2 is not the C library's here (AVX-512 code?); "
                 "run it through scripts/golden.sh, which sets NPY_DISABLE_CPU_FEATURES")


def main():
    check_arctan2()
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    fm = read_idx_images(os.path.join(FIXTURES, "fashion-mnist", "t10k-images-idx3-ubyte.gz"), 24)
    rng = np.random.default_rng(20261128)
    m = []
    # Real Fashion-MNIST images.
    run_case(m, "fmnist_c4b2_l2hys", fm, "gray_u8", ppc=(4, 4), cpb=(2, 2), vis=True)
    run_case(m, "fmnist_default", fm, "gray_u8")
    run_case(m, "fmnist_c7b2", fm[:8], "gray_u8", ppc=(7, 7), cpb=(2, 2))
    run_case(m, "fmnist_c4b3_o12_l1", fm[:8], "gray_u8", orientations=12, ppc=(4, 4), cpb=(3, 3), norm="L1")
    for norm in NORMS:
        tag = norm.lower().replace("-", "")
        run_case(m, f"fmnist_c4b2_{tag}", fm[:8], "gray_u8", ppc=(4, 4), cpb=(2, 2), norm=norm)
        run_case(m, f"fmnist_c4b2_{tag}_sqrt", fm[:8], "gray_u8", ppc=(4, 4), cpb=(2, 2), norm=norm, sqrt=True)
    # Hard cases: non-square, sizes not divisible by the cell, rectangular cells, odd orientation
    # counts (float32 edges differ from float64 ones), ties.
    syn = synthetic(37, 53, 1)
    run_case(m, "syn_37x53_c5x7_b2x3_o7_l1", syn, "gray_u8", orientations=7, ppc=(5, 7), cpb=(2, 3), norm="L1", vis=True)
    run_case(m, "syn_37x53_c6x4_b3x3_o4_l2", syn, "gray_u8", orientations=4, ppc=(6, 4), cpb=(3, 3), norm="L2", vis=True)
    run_case(m, "syn_37x53_c3x3_b1x1_o8_l1sqrt", syn, "gray_u8", orientations=8, ppc=(3, 3), cpb=(1, 1), norm="L1-sqrt")
    run_case(m, "syn_37x53_c8x8_b3x3_o6_sqrt", syn, "gray_u8", orientations=6, sqrt=True)
    run_case(m, "syn_37x53_c4x4_b2x2_o18", syn, "gray_u8", orientations=18, ppc=(4, 4), cpb=(2, 2))
    run_case(m, "syn_37x53_c5x5_b2x2_o1", syn, "gray_u8", orientations=1, ppc=(5, 5), cpb=(2, 2))
    # float32 input (stays float32 in scikit-image)
    f32 = np.concatenate([syn.astype(np.float32) / 255.0,
                          rng.random((4, 37, 53), dtype=np.float32)]).astype(np.float32)
    run_case(m, "f32_37x53_c6x4_b2x2_o9", f32, "gray_f32", ppc=(6, 4), cpb=(2, 2))
    run_case(m, "f32_37x53_c5x5_b3x2_o8_sqrt_l1", f32, "gray_f32", orientations=8, ppc=(5, 5), cpb=(3, 2), norm="L1", sqrt=True)
    # RGB: the channel with the largest gradient per pixel; gray replicated gives exact ties.
    rgb = np.stack([rng.integers(0, 256, (30, 41, 3)) for _ in range(4)]
                   + [np.repeat(syn[k][:30, :41, None], 3, axis=2) for k in range(4)]).astype(np.uint8)
    run_case(m, "rgb_u8_30x41_c5x5_b2x2", rgb, "rgb_u8", ppc=(5, 5), cpb=(2, 2))
    run_case(m, "rgb_u8_30x41_c4x6_b2x2_sqrt_l2", rgb, "rgb_u8", ppc=(4, 6), cpb=(2, 2), norm="L2", sqrt=True)
    run_case(m, "rgb_f32_30x41_c5x5_b2x2_o7", (rgb.astype(np.float32) / 255.0).astype(np.float32), "rgb_f32",
             orientations=7, ppc=(5, 5), cpb=(2, 2))
    # Gradients exactly on bin edges (see edge_images), for every orientation count above, with
    # and without the square root, uint8 and float32.
    edge = edge_images(24, 27, 7)
    for n in (1, 4, 6, 7, 8, 9, 12, 18):
        run_case(m, f"edge_u8_sqrt_o{n}", edge, "gray_u8", orientations=n, ppc=(3, 3), cpb=(2, 2), norm="L1", sqrt=True)
    run_case(m, "edge_u8_o8", edge, "gray_u8", orientations=8, ppc=(3, 3), cpb=(2, 2), norm="L1")
    edge32 = (edge.astype(np.float32) / np.float32(255.0)).astype(np.float32)
    for n in (6, 9, 12):
        run_case(m, f"edge_f32_sqrt_o{n}", edge32, "gray_f32", orientations=n, ppc=(3, 3), cpb=(2, 2), norm="L1", sqrt=True)
    run_case(m, "edge_f32_o9", edge.astype(np.float32), "gray_f32", orientations=9, ppc=(3, 3), cpb=(2, 2), norm="L1")
    # Gradients at and beside bin edges (see between_edges), float64 and float32.
    for n in (7, 11, 13, 17):
        img = between_edges(n, seed=n)
        run_case(m, f"between_edges_f64_o{n}", img, "gray_f64", orientations=n, ppc=(3, 3), cpb=(1, 1), norm="L1")
        run_case(m, f"between_edges_f32_o{n}", img.astype(np.float32), "gray_f32", orientations=n, ppc=(3, 3), cpb=(1, 1), norm="L1")
    # float64 input (NumPy's default): square root, gradients and angles in float64.
    f64 = np.concatenate([syn.astype(np.float64) / 255.0, rng.random((4, 37, 53))])
    run_case(m, "f64_37x53_c6x4_b2x2_o9", f64, "gray_f64", ppc=(6, 4), cpb=(2, 2))
    run_case(m, "f64_37x53_c5x5_b3x2_o8_sqrt_l1", f64, "gray_f64", orientations=8, ppc=(5, 5), cpb=(3, 2), norm="L1", sqrt=True)
    for n in (9, 12):
        run_case(m, f"edge_f64_sqrt_o{n}", edge.astype(np.float64), "gray_f64", orientations=n, ppc=(3, 3), cpb=(2, 2), norm="L1", sqrt=True)
    run_case(m, "edge_f64_scaled_sqrt_o6", edge.astype(np.float64) / 255.0, "gray_f64", orientations=6, ppc=(3, 3), cpb=(2, 2), norm="L1", sqrt=True)
    run_case(m, "rgb_f64_30x41_c5x5_b2x2_o7", rgb.astype(np.float64) / 255.0, "rgb_f64",
             orientations=7, ppc=(5, 5), cpb=(2, 2), sqrt=True)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump({"skimage_version": skimage.__version__, "numpy_version": np.__version__,
                   "cases": m}, f, indent=1)
    for n in (1, 4, 6, 7, 8, 9, 11, 12, 13, 17, 18):
        buf = io.BytesIO()
        np.save(buf, bin_table(n))
        with open(os.path.join(OUT, f"bins-{n}.npy.gz"), "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as g:
                g.write(buf.getvalue())
    print(f"wrote {len(m)} cases to {os.path.normpath(OUT)} (scikit-image {skimage.__version__})")


if __name__ == "__main__":
    main()
