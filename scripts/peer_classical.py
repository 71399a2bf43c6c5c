#!/usr/bin/env python3
"""The whole classical pipeline, end to end, side by side: scikit-image HOG + scikit-learn
(optional PCA, LinearSVC) against `hogsvm train`, on the same IDX files, with the same
configuration, in the same run.

Both sides start from the IDX files and end with the test accuracy:
  load    read the IDX files (gzip or raw), train and test; with --resize, also the resize
  hog     HOG of the training images (scikit-image: one process, one image at a time)
  map     feature map (hellinger: element-wise square root)
  scaler  (not used: both sides run without standardisation)
  pca     PCA fit + transform of the training features (optional)
  svm     linear SVM training (scikit-learn: LinearSVC, liblinear, dual=True)
  eval    HOG + map + PCA of the test images, prediction, accuracy
'total' is the wall time of each side's process (interpreter start and imports included for
Python; model saving included for hogsvm). Peak memory is each process's own peak RSS: the
scikit-learn pipeline runs in a child process of this script.

hogsvm runs first (scikit-learn second), so that the IDX files are in the page cache for both
after the first read; the first read of small files is not a measurable part either way.

Nothing is parsed from human-readable output. The scikit-learn side is a child process of this
script that prints one JSON line. hogsvm's figures come from `hogsvm train --json FILE`: the test
report's `accuracy` and its `train` object (train_images, test_images, hog_features -> features,
dims, load_s -> load, eval_s -> eval, and stages [{name, seconds}]). Its stage names map to this
script's keys as hog -> hog, feature_map -> map, pca -> pca, svm -> svm (the keys of
docs/peer_classical_*.json, kept so that old and new results compare); a stage hogsvm's model does
not have is not listed there and is 0.0 here (so is `scaler`, which neither side runs). A file
without the `train` object (a hogsvm older than this script), a missing or malformed field, or a
stage the scikit-learn side does not run (rff, nystroem, scaler) is an error. The hogsvm binary is
--hogsvm (scripts/peer_classical.sh passes target/release/hogsvm, or $HOGSVM_BIN).
"""
import argparse
import glob
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idxio import read_idx, write_idx  # noqa: E402

STAGES = ["load", "hog", "map", "scaler", "pca", "svm", "eval"]


def find_idx(folder, prefix):
    hits = sorted(glob.glob(os.path.join(folder, prefix + "-*")))
    if not hits:
        sys.exit(f"{folder}: no {prefix}-* IDX file")
    return hits[0]


def parse_pca(s):
    if s is None or s.lower() == "none":
        return None
    return float(s) if "." in s else int(s)


def parse_size(s):
    w, h = s.lower().split("x")
    return int(w), int(h)


# ---------------------------------------------------------------- scikit-learn side (child)

def sklearn_child(a):
    """Run the scikit-image + scikit-learn pipeline; print one JSON line with the results."""
    t_start = time.perf_counter()
    import warnings

    import skimage
    import sklearn
    from skimage.feature import hog
    from skimage.transform import resize
    from sklearn.decomposition import PCA
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    t_imports = time.perf_counter() - t_start
    times = {}
    size = parse_size(a.resize) if a.resize else None

    def prep(images):
        if size is None:
            return images
        w, h = size
        out = np.empty((len(images), h, w), np.uint8)
        for i, im in enumerate(images):
            r = resize(im, (h, w), anti_aliasing=True, preserve_range=True)
            out[i] = np.clip(np.rint(r), 0, 255).astype(np.uint8)
        return out

    def feats(images):
        return np.stack([hog(im, orientations=a.orientations, pixels_per_cell=(a.cell, a.cell),
                             cells_per_block=(a.block, a.block), block_norm="L2-Hys",
                             transform_sqrt=a.transform_sqrt, feature_vector=True)
                         for im in images])

    def fmap(x):
        return np.sqrt(x) if a.feature_map == "hellinger" else x

    t = time.perf_counter()
    xtr = read_idx(find_idx(a.data, "train-images"))
    ytr = read_idx(find_idx(a.data, "train-labels"))
    xte = read_idx(find_idx(a.data, "t10k-images"))
    yte = read_idx(find_idx(a.data, "t10k-labels"))
    t_resize = time.perf_counter()
    xtr, xte = prep(xtr), prep(xte)
    times["load"] = time.perf_counter() - t
    t_resize = time.perf_counter() - t_resize

    t = time.perf_counter()
    ftr = feats(xtr)
    times["hog"] = time.perf_counter() - t
    n_features = ftr.shape[1]

    t = time.perf_counter()
    ftr = fmap(ftr)
    times["map"] = time.perf_counter() - t
    times["scaler"] = 0.0

    t = time.perf_counter()
    pca = None
    if parse_pca(a.pca) is not None:
        pca = PCA(n_components=parse_pca(a.pca), svd_solver="auto", random_state=0)
        ftr = pca.fit_transform(ftr)
    times["pca"] = time.perf_counter() - t

    t = time.perf_counter()
    clf = LinearSVC(C=a.c, loss=a.loss.replace("-", "_"), tol=a.tol, max_iter=a.max_iter,
                    dual=True, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf.fit(ftr, ytr)
    times["svm"] = time.perf_counter() - t
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)

    t = time.perf_counter()
    fte = fmap(feats(xte))
    if pca is not None:
        fte = pca.transform(fte)
    acc = float(np.mean(clf.predict(fte) == yte))
    times["eval"] = time.perf_counter() - t

    print(json.dumps({
        "accuracy": acc, "test_images": int(len(xte)), "train_images": int(len(xtr)),
        "features": int(n_features), "dims": int(ftr.shape[1]), "stages_s": times,
        "imports_s": t_imports, "resize_s": t_resize if size else None,
        "svm_n_iter": int(np.max(clf.n_iter_)), "svm_converged": converged,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "versions": {"sklearn": sklearn.__version__, "skimage": skimage.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
    }))


def run_sklearn(a, data):
    cmd = [sys.executable, os.path.abspath(__file__), "--sklearn-child", "--data", data,
           "--cell", str(a.cell), "--block", str(a.block), "--orientations", str(a.orientations),
           "--pca", a.pca, "--c", repr(a.c), "--loss", a.loss, "--tol", repr(a.tol),
           "--max-iter", str(a.max_iter), "--feature-map", a.feature_map]
    if a.transform_sqrt:
        cmd += ["--transform-sqrt"]
    if a.resize:
        cmd += ["--resize", a.resize]
    # BLAS (used by PCA) gets as many threads as hogsvm; HOG and liblinear are single-threaded.
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads),
               MKL_NUM_THREADS=str(a.threads))
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        sys.exit(f"scikit-learn side failed (exit {p.returncode})")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r["total_s"] = wall
    return r


# ---------------------------------------------------------------- hogsvm side

# `hogsvm train --json PATH` writes the test report (accuracy, confusion, per-class rows, ...) with
# a `train` object: model, train_images, test_images, load_s, eval_s, stages [{name, seconds}]
# (only the stages the model has), hog_features, dims, params, model_file. Its stage names, and the
# keys of this script's stages_s (which predate the JSON: docs/peer_classical_*.json use them):
HOGSVM_STAGES = {"hog": "hog", "feature_map": "map", "pca": "pca", "svm": "svm"}
# Stages the scikit-learn side does not run: this script turns them off on hogsvm's side too
# (--rff none, --nystroem none, no --standardize; stages_s keeps `scaler`, at 0.0, for the old
# files' sake), so finding one means that the two sides did not run the same pipeline.
NOT_COMPARED = {"rff": "--rff none", "nystroem": "--nystroem none", "scaler": "no --standardize"}


def _fail(path, msg):
    sys.exit(f"peer_classical: error: {path}: {msg}")


def _number(path, obj, key, where, kind=float):
    name = f"{where}{key}"
    if not isinstance(obj, dict) or key not in obj:
        _fail(path, f"`{name}` is missing")
    v = obj[key]
    ok = (isinstance(v, int) if kind is int else isinstance(v, (int, float))) and not isinstance(v, bool)
    if not ok or v < 0 or v != v or v == float("inf"):
        _fail(path, f"`{name}` is {v!r}, expected a non-negative "
                    f"{'integer' if kind is int else 'number'}")
    return kind(v)


def read_hogsvm_json(path):
    """The figures of one `hogsvm train --json` file, in this script's keys (see STAGES).

    Strict: a missing or malformed field is an error, not a zero. Stages the model does not have
    (hogsvm lists only those it ran) are 0.0 here, as the old summary line printed 0.00 for them."""
    try:
        with open(path) as f:
            d = json.load(f)
    except FileNotFoundError:
        _fail(path, "hogsvm train exited 0 but wrote no --json file")
    except json.JSONDecodeError as e:
        _fail(path, f"hogsvm train --json wrote invalid JSON ({e})")
    if not isinstance(d, dict):
        _fail(path, "hogsvm train --json wrote no JSON object")
    t = d.get("train")
    if not isinstance(t, dict):
        _fail(path, "hogsvm train --json gave no `train` object: is the binary older than this "
                    "script? (rebuild it, or point HOGSVM_BIN at a newer one)")
    if t.get("model") != "classical":
        _fail(path, f"train.model is {t.get('model')!r}, expected 'classical'")
    accuracy = _number(path, d, "accuracy", "")
    if accuracy > 1:
        _fail(path, f"`accuracy` is {accuracy}, not a fraction")
    out = {"accuracy": accuracy,
           "test_images": _number(path, t, "test_images", "train.", int),
           "train_images": _number(path, t, "train_images", "train.", int),
           "features": _number(path, t, "hog_features", "train.", int),
           "dims": _number(path, t, "dims", "train.", int),
           "params": _number(path, t, "params", "train.", int)}
    if "samples" in d and d["samples"] != out["test_images"]:
        _fail(path, f"the report has {d['samples']!r} samples but train.test_images is "
                    f"{out['test_images']}")
    stages = {s: 0.0 for s in STAGES}
    stages["load"] = _number(path, t, "load_s", "train.")
    stages["eval"] = _number(path, t, "eval_s", "train.")
    listed = t.get("stages")
    if not isinstance(listed, list) or not listed:
        _fail(path, f"train.stages is {listed!r}, expected a non-empty list of {{name, seconds}}")
    seen = set()
    for i, st in enumerate(listed):
        name = st.get("name") if isinstance(st, dict) else None
        if name in NOT_COMPARED:
            _fail(path, f"hogsvm ran a `{name}` stage, which the scikit-learn side does not have "
                        f"(this script asks for {NOT_COMPARED[name]})")
        if name not in HOGSVM_STAGES:
            _fail(path, f"train.stages[{i}]: unknown stage {name!r} (known: "
                        f"{', '.join(HOGSVM_STAGES)})")
        if name in seen:
            _fail(path, f"train.stages: `{name}` listed twice")
        seen.add(name)
        stages[HOGSVM_STAGES[name]] = _number(path, st, "seconds", f"train.stages[{i}].")
    for need in ("hog", "svm"):
        if need not in seen:
            _fail(path, f"train.stages has no `{need}` stage")
    out["stages_s"] = stages
    out["train"] = t
    return out


def run_hogsvm(a, data, tmp):
    report = os.path.join(tmp, "train.json")
    cmd = [a.hogsvm, "train", "--data", data, "--out", os.path.join(tmp, "model.safetensors"),
           "--cell", str(a.cell), "--block", str(a.block), "--orientations", str(a.orientations),
           "--feature-map", a.feature_map, "--pca", a.pca, "--c", repr(a.c), "--loss", a.loss,
           "--tol", repr(a.tol), "--max-iter", str(a.max_iter), "--threads", str(a.threads),
           "--json", report]
    # Spell out every choice: `hogsvm train`'s defaults are its best configuration, not these.
    cmd += ["--transform-sqrt"] if a.transform_sqrt else ["--no-transform-sqrt"]
    cmd += ["--extra-cell", "none", "--rff", "none", "--nystroem", "none"]
    if a.resize:
        cmd += ["--resize", a.resize]
    timefile = os.path.join(tmp, "time.txt")
    gnu_time = shutil.which("time", path="/usr/bin:/bin")
    if gnu_time:
        cmd = [gnu_time, "-f", "%e %M", "-o", timefile] + cmd
    # This is the first child process of this script, so RUSAGE_CHILDREN's peak RSS is hogsvm's.
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if p.returncode != 0:
        sys.stderr.write(p.stdout + p.stderr)
        sys.exit(f"hogsvm failed (exit {p.returncode}): {' '.join(cmd)}")
    if gnu_time:
        with open(timefile) as f:
            peak_kb = int(f.read().split()[-1])
    r = read_hogsvm_json(report)
    ran = {st["name"] for st in r["train"]["stages"]}
    for asked, stage in ((a.feature_map != "none", "feature_map"), (parse_pca(a.pca) is not None, "pca")):
        if asked and stage not in ran:
            sys.exit(f"peer_classical: error: hogsvm train lists no `{stage}` stage, though this "
                     f"script asked for one: {' '.join(cmd)}")
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    # The human summary line, kept for the record only: nothing is parsed from it.
    r.update({"total_s": wall, "peak_rss_mb": peak_kb / 1024.0, "command": cmd,
              "summary": lines[-1] if lines else ""})
    return r


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hogsvm", default="target/release/hogsvm")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                    help="folder with train-* and t10k-* IDX files")
    ap.add_argument("--limit", type=int, help="use only the first N training images")
    ap.add_argument("--cell", type=int, default=4)
    ap.add_argument("--block", type=int, default=2)
    ap.add_argument("--orientations", type=int, default=9)
    ap.add_argument("--resize", help="WxH")
    ap.add_argument("--pca", default="none", help="components (128), variance fraction (0.95) or none")
    ap.add_argument("--c", type=float, default=1.0)
    ap.add_argument("--loss", default="squared-hinge", choices=["squared-hinge", "hinge"])
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--max-iter", type=int, default=1000)
    ap.add_argument("--feature-map", default="none", choices=["none", "hellinger"])
    ap.add_argument("--transform-sqrt", action="store_true", help="HOG on the square root of the image")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--sklearn-child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.resize:
        parse_size(a.resize)
    if a.sklearn_child:
        return sklearn_child(a)

    with tempfile.TemporaryDirectory(prefix="peer_classical_") as tmp:
        data = a.data
        if a.limit:
            # The first N training images and the whole test set, as raw IDX, for both sides.
            data = os.path.join(tmp, "data")
            os.makedirs(data)
            write_idx(os.path.join(data, "train-images-idx3-ubyte"),
                      read_idx(find_idx(a.data, "train-images"))[: a.limit])
            write_idx(os.path.join(data, "train-labels-idx1-ubyte"),
                      read_idx(find_idx(a.data, "train-labels"))[: a.limit])
            write_idx(os.path.join(data, "t10k-images-idx3-ubyte"), read_idx(find_idx(a.data, "t10k-images")))
            write_idx(os.path.join(data, "t10k-labels-idx1-ubyte"), read_idx(find_idx(a.data, "t10k-labels")))
        hs = run_hogsvm(a, data, tmp)
        sk = run_sklearn(a, data)
    hv = subprocess.run([a.hogsvm, "--version"], capture_output=True, text=True).stdout.strip()

    cfg = (f"{hs['train_images']} train / {hs['test_images']} test images"
           f"{', resized to ' + a.resize if a.resize else ''}, HOG {a.orientations} bins, cells "
           f"{a.cell}x{a.cell}, blocks {a.block}x{a.block}, L2-Hys, map {a.feature_map}, PCA {a.pca}, "
           f"{a.loss} C={a.c:g} tol={a.tol:g} max-iter={a.max_iter}, {a.threads} threads for hogsvm")
    print(f"Classical pipeline end to end: {cfg}")
    if a.resize:
        print("note: --resize: scikit-image resizes with skimage.transform.resize (anti_aliasing, "
              "rounded to uint8) and hogsvm with its own bilinear filter, so pixels (and features) "
              "differ slightly between the two sides")
    w = 13
    print(f"{'':<20} {'sklearn':>{w}} {'hogsvm':>{w}} {'speed-up':>{w}}")

    def ratio(x, y):
        # hogsvm's seconds come unrounded from its JSON; 0 only for a stage its model lacks.
        return f"{x / y:.1f}x" if y > 0 else ""

    for s in STAGES:
        x, y = sk["stages_s"][s], hs["stages_s"][s]
        print(f"{s + ' (s)':<20} {x:>{w}.2f} {y:>{w}.2f} {ratio(x, y) if x > 0.005 else '':>{w}}")
    sx, sy = sum(sk["stages_s"].values()), sum(hs["stages_s"].values())
    print(f"{'stages sum (s)':<20} {sx:>{w}.2f} {sy:>{w}.2f} {ratio(sx, sy):>{w}}")
    print(f"{'total (s)':<20} {sk['total_s']:>{w}.2f} {hs['total_s']:>{w}.2f} "
          f"{ratio(sk['total_s'], hs['total_s']):>{w}}")
    print(f"{'accuracy':<20} {sk['accuracy']:>{w}.4f} {hs['accuracy']:>{w}.4f}")
    print(f"{'peak RSS (MB)':<20} {sk['peak_rss_mb']:>{w}.1f} {hs['peak_rss_mb']:>{w}.1f}")
    print(f"{'features -> dims':<20} {str(sk['features']) + ' -> ' + str(sk['dims']):>{w}} "
          f"{str(hs['features']) + ' -> ' + str(hs['dims']):>{w}}")
    speedup = sk["total_s"] / hs["total_s"]
    print(f"speed-up (sklearn total / hogsvm total): {speedup:.1f}x")
    print(f"(total = process wall time; sklearn's includes {sk['imports_s']:.2f} s of imports. "
          f"LinearSVC: {sk['svm_n_iter']} iterations, "
          f"{'converged' if sk['svm_converged'] else 'NOT converged (ConvergenceWarning)'}. "
          f"scikit-learn {sk['versions']['sklearn']}, scikit-image {sk['versions']['skimage']}, "
          f"{hv}, {os.cpu_count()} CPUs)")
    if a.json:
        out = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(),
               "machine": platform.processor() or platform.machine(), "hogsvm_version": hv,
               "config": {k: v for k, v in vars(a).items() if k not in ("sklearn_child", "json")},
               "versions": sk["versions"], "speedup_total": speedup,
               "speedup_stages_sum": sx / sy if sy > 0 else None,
               "sklearn": sk, "hogsvm": hs}
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
