"""onnxruntime against hogsvm on the same trained models, same test images, same thread count,
same process, same timing loop (scripts/peer_onnx.sh).

For each model file: export it (`hogsvm export`), then per round, alternating the runtimes:
  * throughput: the whole test set in batches of --batch images, after one untimed warm-up batch;
  * latency: --latency single-image calls, after one untimed warm-up call; median and p90.
hogsvm runs through its Python package (`hogsvm.load(M).predict`, the library with the GIL
released); onnxruntime through `InferenceSession.run` (CPU provider, intra-op threads = --threads,
inter-op 1, sequential). For a classical model the graph starts after HOG, so onnxruntime is timed
twice: the graph alone on precomputed features, and end to end with hogsvm computing its input
(`Model.onnx_input`, the HOG features) inside the timed loop. For the CNN the input is the pixels
as float32 (the conversion is inside the timed loop too). Accuracy of both on the test set, and
the number of images whose labels agree; and the graph once more with onnxruntime's graph
optimisations off, to show what they are worth. Medians over --rounds rounds; one JSON line per
model.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("--hogsvm", required=True)
ap.add_argument("--data", required=True)
ap.add_argument("--model", action="append", required=True)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--batch", type=int, default=256)
ap.add_argument("--latency", type=int, default=201)
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--limit", type=int, default=None, help="first N test images only")
ap.add_argument("--json", default=None)
args = ap.parse_args()

# hogsvm's thread pool (rayon) reads this when it starts: before the package is imported.
os.environ["RAYON_NUM_THREADS"] = str(args.threads)
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

import hogsvm  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from idxio import idx_file, read_idx  # noqa: E402


def test_set(root):
    x = read_idx(idx_file(root, "t10k", "images-idx3", "peer_onnx"))
    y = read_idx(idx_file(root, "t10k", "labels-idx1", "peer_onnx")).astype(np.int64)
    if args.limit:
        x, y = x[: args.limit], y[: args.limit]
    return np.ascontiguousarray(x), y


def timed_batches(fn, x):
    chunks = [x[s : s + args.batch] for s in range(0, len(x), args.batch)]
    fn(chunks[0])
    t = time.perf_counter()
    out = [fn(c) for c in chunks]
    return time.perf_counter() - t, np.concatenate(out)


def latency(fn, x):
    singles = [x[i % len(x) : i % len(x) + 1] for i in range(args.latency)]
    fn(singles[0])
    lat = []
    for s in singles:
        t = time.perf_counter()
        fn(s)
        lat.append((time.perf_counter() - t) * 1e3)
    lat.sort()
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(np.ceil(0.9 * len(lat))) - 1)]


def labels_of(scores):
    if scores.shape[1] == 1:
        return (scores[:, 0] > 0).astype(np.int64)
    return scores.argmax(1)


x, y = test_set(args.data)
results = []
with tempfile.TemporaryDirectory() as tmp:
    for path in args.model:
        onnx = os.path.join(tmp, "model.onnx")
        subprocess.run([args.hogsvm, "export", "--model", path, "--out", onnx], check=True,
                       stdout=subprocess.DEVNULL)
        m = hogsvm.load(path)
        def session(optimize):
            so = ort.SessionOptions()
            so.intra_op_num_threads = args.threads
            so.inter_op_num_threads = 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            if not optimize:
                so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            return ort.InferenceSession(onnx, so, providers=["CPUExecutionProvider"])

        sess = session(True)
        # The same graph with onnxruntime's graph rewrites off (no Conv+BatchNorm folding, no
        # operator fusion, no blocked NCHWc layout): how much of its speed they are.
        plain = session(False)
        score_name = "scores" if m.kind == "classical" else "probabilities"
        (in_name, feats), = m.onnx_input(x).items()

        def ort_graph(f):
            return sess.run([score_name], {in_name: f})[0]

        def ort_graph_unoptimized(f):
            return plain.run([score_name], {in_name: f})[0]

        def ort_end_to_end(imgs):
            return sess.run([score_name], m.onnx_input(imgs))[0]

        runs = {"hogsvm": [], "ort_graph": [], "ort_end_to_end": [], "ort_graph_unoptimized": []}
        for _ in range(args.rounds):
            for name, fn, data in [("hogsvm", m.predict, x), ("ort_graph", ort_graph, feats),
                                   ("ort_end_to_end", ort_end_to_end, x),
                                   ("ort_graph_unoptimized", ort_graph_unoptimized, feats)]:
                secs, out = timed_batches(fn, data)
                med, p90 = latency(fn, data)
                runs[name].append((secs, med, p90, out))
        pred_h = runs["hogsvm"][0][3]
        scores_o = runs["ort_end_to_end"][0][3]
        pred_o = labels_of(scores_o)
        want = m.scores(x)
        row = {
            "model": os.path.basename(path),
            "kind": m.kind,
            "onnx_bytes": os.path.getsize(onnx),
            "model_bytes": os.path.getsize(path),
            "onnxruntime": ort.__version__,
            "threads": args.threads,
            "batch": args.batch,
            "test_images": len(x),
            "rounds": args.rounds,
            "accuracy_hogsvm": float((pred_h == y).mean()),
            "accuracy_onnxruntime": float((pred_o == y).mean()),
            "labels_agree": int((pred_h == pred_o).sum()),
            "max_score_diff": float(np.abs(scores_o - want).max()),
        }
        for name, r in runs.items():
            row[f"{name}_images_per_s"] = float(np.median([len(x) / s for s, _, _, _ in r]))
            row[f"{name}_latency_ms_median"] = float(np.median([m_ for _, m_, _, _ in r]))
            row[f"{name}_latency_ms_p90"] = float(np.median([p for _, _, p, _ in r]))
        print(json.dumps(row), flush=True)
        results.append(row)
if args.json:
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1)
