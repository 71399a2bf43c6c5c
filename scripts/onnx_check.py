#!/usr/bin/env python3
"""hogsvm's ONNX export against onnxruntime, on a dataset's test split (scripts/onnx_check.sh).

Trains every model kind and stage combination with `hogsvm train` (the classical pipeline's
stages one by one and combined, the CNN with and without squeeze-and-excitation and hidden
layers, small and for one epoch; a two-class subset of the data for the one-column SVM), exports
each with `hogsvm export` (opset 17 and a dynamic batch, plus a few other opsets and a fixed batch),
and for every ONNX file:

* `onnx.checker.check_model(onnx.load(path), full_check=True)`;
* the graph's inputs and outputs are the contract's: classical `hog` float32 (batch, D) ->
  `label` int64 (batch,) and `scores` float32 (batch, classes, one column for two classes); CNN
  `pixels` float32 (batch, 1, H, W) -> `logits` and `probabilities` float32 (batch, classes); the
  batch dimension named (dynamic) or the fixed count asked for;
* the metadata: hogsvm.kind, hogsvm.class_names (equal to the class names of hogsvm's own eval
  report), hogsvm.version (equal to `hogsvm --version`'s), hogsvm.hog (classical: params,
  image_rows, image_cols, image_channels, resize, feature_len = D) or hogsvm.input (CNN: image_rows, image_cols,
  mean, std);
* onnxruntime (CPUExecutionProvider) on the whole test split in one call, and on its first image
  alone when the batch is dynamic: the input is what `hogsvm extract --model` writes (classical)
  or the raw uint8 grey levels as float32 (CNN, read from the IDX file); compared with the
  per-image scores of `hogsvm eval --scores` (SVM decision values / softmax probabilities):
  max |onnx - hogsvm| <= --tolerance (1e-4), and labels identical: hogsvm's labels are derived
  from its scores with its rule (argmax, first index on ties; score > 0 for a one-column SVM),
  the graph's labels are its `label` output and the same rule on its `scores` (classical) or on
  its `probabilities` (CNN). hogsvm's labels must also reproduce the confusion matrix of its eval
  report (`eval --json`).

int8 CNNs (kind `cnn-int8`: `hogsvm quantize` of a trained float CNN, static, calibrated on the
training images) are exported as QDQ graphs; onnxruntime computes their convolutions in float on
the dequantised values (or, when it fuses the QDQ pattern, with its own integer kernels and
requantisation), so a code can round the other way: for them the checks are max |onnx - hogsvm|
<= --int8-tolerance (0.05) and at most --int8-label-diff (0.5%) of the labels differing, with
onnxruntime's default graph optimisations and with them off (on a CPU without VNNI, with them
off only: onnxruntime's fused u8s8 kernels then use AVX2's saturating vpmaddubsw, exact only for
the 7-bit weights of its reduce_range; the summary's "notes" says so).

Only hogsvm's machine output is read: the .npy files and the JSON report, never its human lines.
Prints one JSON line per ONNX file and a final summary line ({"summary": ...}); exits 1 when any
check fails (the failing checks are named in the model's "errors"), 2 on a usage error.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idxio import idx_file, read_idx, write_idx  # noqa: E402

# (name, train flags). The classical ones: the default configuration, then each stage.
CLASSICAL = [
    ("default", []),
    ("pca64", ["--pca", "64"]),
    ("pca64_rff512", ["--pca", "64", "--rff", "512"]),
    ("pca64_nystroem256", ["--pca", "64", "--nystroem", "256"]),
    ("hellinger", ["--feature-map", "hellinger"]),
    ("chi2_pca64", ["--feature-map", "chi2", "--pca", "64"]),
    ("standardize_pca64", ["--standardize", "--pca", "64"]),
    ("normalize_l2", ["--normalize", "l2"]),
]


def cnn_variants(epochs):
    small = ["--model", "cnn", "--channels", "8,16", "--epochs", str(epochs)]
    return [
        ("cnn", small + ["--hidden", "none"]),
        ("cnn_hidden32", small + ["--hidden", "32"]),
        ("cnn_se4", small + ["--hidden", "none", "--se", "4"]),
        ("cnn_se4_hidden32", small + ["--hidden", "32", "--se", "4"]),
    ]


# int8 models: (name, the float CNN above it quantises, quantize flags).
INT8 = [
    ("cnn_hidden32_int8", "cnn_hidden32", ["--calib-images", "200"]),
    ("cnn_int8", "cnn", ["--calib-images", "200"]),
]


# Further exports of models trained above: (model, opset, batch). The reductions take their axes
# as an input from opset 18 (normalize, Nystroem); 13 and 21 are the ends of the range.
EXTRA_EXPORTS = [
    ("normalize_l2", 18, "dynamic"),
    ("pca64_nystroem256", 18, "dynamic"),
    ("cnn_se4_hidden32", 18, "dynamic"),
    ("normalize_l2", 13, "dynamic"),
    ("chi2_pca64", 21, "dynamic"),
    ("cnn_se4_hidden32", 21, "dynamic"),
    ("pca64_rff512", 17, "500"),
    ("cnn", 17, "500"),
]

# The two-class subset (the one-column SVM): the two classes of the data hardest to tell apart
# in Fashion-MNIST, so that many scores lie near 0.
TWO_CLASS = (0, 6)


def prefix_of(name):
    """The data prefix of a model name (the two-class subset's models start with it)."""
    return "two_class_" if name.startswith("two_class_") else ""


def log(msg):
    print(f"onnx_check: {msg}", file=sys.stderr, flush=True)


class CommandError(Exception):
    pass


def run(cmd):
    """Run hogsvm; its stdout. A failure raises CommandError with the tail of its output."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-15:])
        raise CommandError(f"{' '.join(cmd)} exited with {p.returncode}:\n{tail}")
    return p.stdout


def two_class_subset(data, out):
    """The images of TWO_CLASS from both splits of `data`, labels 0 and 1, raw IDX in `out`."""
    os.makedirs(out, exist_ok=True)
    names = None
    cls = os.path.join(data, "classes.txt")
    if os.path.exists(cls):
        with open(cls, encoding="utf-8") as f:
            names = [line.rstrip("\n") for line in f if line.strip()]
    for split in ("train", "t10k"):
        x = read_idx(idx_file(data, split, "images-idx3", "onnx_check"))
        y = read_idx(idx_file(data, split, "labels-idx1", "onnx_check"))
        keep = np.isin(y, TWO_CLASS)
        write_idx(os.path.join(out, f"{split}-images-idx3-ubyte"), x[keep])
        write_idx(os.path.join(out, f"{split}-labels-idx1-ubyte"), (y[keep] == TWO_CLASS[1]).astype(np.uint8))
    names = [names[c] if names else str(c) for c in TWO_CLASS]
    with open(os.path.join(out, "classes.txt"), "w", encoding="utf-8") as f:
        f.write("".join(n + "\n" for n in names))
    return out


def hogsvm_labels(scores):
    """hogsvm's rule: argmax (first index on ties), or score > 0 for a one-column SVM."""
    if scores.shape[1] == 1:
        return (scores[:, 0] > 0).astype(np.int64)
    return np.argmax(scores, axis=1).astype(np.int64)


def confusion(truth, pred, k):
    c = np.zeros((k, k), np.int64)
    np.add.at(c, (truth, pred), 1)
    return c


def dims(value_info):
    """A graph input's or output's dimensions: ints, or the name of a symbolic one."""
    out = []
    for d in value_info.type.tensor_type.shape.dim:
        out.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?"))
    return out


def check_file(ctx, name, kind, onnx_path, opset, batch, ref, errors):
    """Checks one ONNX file against the reference (hogsvm's outputs); appends to `errors`."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(onnx_path)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # noqa: BLE001 - the checker raises several types
        errors.append(f"check_model: {type(e).__name__}: {e}")
    default_domain = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if default_domain != [opset]:
        errors.append(f"opset_import {[(o.domain, o.version) for o in model.opset_import]}, asked for {opset}")

    props = {p.key: p.value for p in model.metadata_props}
    expected_kind = kind
    if props.get("hogsvm.kind") != expected_kind:
        errors.append(f"metadata hogsvm.kind: {props.get('hogsvm.kind')!r}, expected {expected_kind!r}")
    try:
        class_names = json.loads(props["hogsvm.class_names"])
        if class_names != ref["class_names"]:
            errors.append(f"metadata hogsvm.class_names {class_names} != eval report's {ref['class_names']}")
    except (KeyError, ValueError) as e:
        errors.append(f"metadata hogsvm.class_names: {type(e).__name__}: {e}")
    if props.get("hogsvm.version") != ctx["version"]:
        errors.append(f"metadata hogsvm.version: {props.get('hogsvm.version')!r}, hogsvm --version says {ctx['version']!r}")
    n = ref["scores"].shape[0]
    rows, cols = ctx["image_shape"]
    fixed = int(batch) if batch != "dynamic" else None

    def batch_ok(d):
        """The batch dimension: a named one when dynamic, else the fixed count."""
        return bool(d) and (isinstance(d[0], str) if fixed is None else d[0] == fixed)

    if kind == "classical":
        key, want = "hogsvm.hog", {"params", "image_rows", "image_cols", "image_channels", "resize", "feature_len"}
        in_name, outs = "hog", [("label", onnx.TensorProto.INT64), ("scores", onnx.TensorProto.FLOAT)]
    else:
        key, want = "hogsvm.input", {"image_rows", "image_cols", "mean", "std"}
        in_name, outs = "pixels", [("logits", onnx.TensorProto.FLOAT), ("probabilities", onnx.TensorProto.FLOAT)]
    try:
        meta = json.loads(props[key])
        missing = sorted(want - set(meta))
        if missing:
            errors.append(f"metadata {key}: no {missing}")
        if (meta.get("image_rows"), meta.get("image_cols")) != (rows, cols):
            errors.append(f"metadata {key}: image {meta.get('image_rows')}x{meta.get('image_cols')}, data {rows}x{cols}")
        if kind == "classical" and meta.get("feature_len") != ref["input"].shape[1]:
            errors.append(f"metadata {key}: feature_len {meta.get('feature_len')}, extract wrote {ref['input'].shape[1]}")
    except (KeyError, ValueError) as e:
        errors.append(f"metadata {key}: {type(e).__name__}: {e}")

    # Inputs and outputs: names, types, shapes.
    g = model.graph
    if [i.name for i in g.input] != [in_name]:
        errors.append(f"graph inputs {[i.name for i in g.input]}, expected [{in_name!r}]")
    else:
        d = dims(g.input[0])
        want_tail = list(ref["input"].shape[1:])
        if g.input[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT or d[1:] != want_tail:
            errors.append(f"input {in_name}: type {g.input[0].type.tensor_type.elem_type} dims {d}, expected type 1 (float) dims {[batch] + want_tail}")
        if not batch_ok(d):
            errors.append(f"input {in_name}: batch dimension {d[0]!r}, expected {batch}")
    if [o.name for o in g.output] != [o for o, _ in outs]:
        errors.append(f"graph outputs {[o.name for o in g.output]}, expected {[o for o, _ in outs]}")
    else:
        k = ref["scores"].shape[1] if kind == "classical" else len(ref["class_names"])
        for o, (oname, otype) in zip(g.output, outs):
            d = dims(o)
            want_tail = [] if oname == "label" else [k]
            if o.type.tensor_type.elem_type != otype or not batch_ok(d) or d[1:] != want_tail:
                errors.append(f"output {oname}: type {o.type.tensor_type.elem_type} dims {d}, expected type {otype} dims {[batch] + want_tail}")

    # onnxruntime.
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sessions = [("", ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"]))]
    int8 = kind == "cnn-int8"
    tolerance = ctx["int8_tolerance"] if int8 else ctx["tolerance"]
    if int8:
        off = ort.SessionOptions()
        off.log_severity_level = 3
        off.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sessions.append(("no graph optimisation: ", ort.InferenceSession(onnx_path, off, providers=["CPUExecutionProvider"])))
        if not cpu_has_vnni():
            # onnxruntime fuses the QDQ pattern into its own u8 x s8 kernels; without VNNI they
            # use AVX2's vpmaddubsw, whose i16 pair sums saturate for full 8-bit weights
            # (onnxruntime assumes 7-bit weights there: its reduce_range), so that path differs
            # from any exact int8 arithmetic on such a CPU. Only the unfused graph is compared.
            sessions = sessions[1:]
            ctx["notes"].add("int8: this CPU has no VNNI, so onnxruntime's fused u8s8 kernels "
                             "(AVX2 vpmaddubsw, saturating for 8-bit weights) were not compared; "
                             "the graph with optimisation off was")
    x = ref["input"]
    runs = [("all", slice(0, n))]
    if fixed is None:
        runs.append(("first", slice(0, 1)))
    elif fixed != n:
        errors.append(f"fixed batch {fixed} but the test split has {n} images")
        runs = []
    score_out = "scores" if kind == "classical" else "probabilities"
    max_diff = 0.0
    labels_equal = bool(runs)
    runs = [(prefix + what, rows_sel, sess) for prefix, sess in sessions for what, rows_sel in runs]
    for what, rows_sel, sess in runs:
        try:
            res = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {in_name: x[rows_sel]})))
        except Exception as e:  # noqa: BLE001 - onnxruntime's errors are results
            errors.append(f"{what}: onnxruntime: {type(e).__name__}: {e}")
            labels_equal = False
            continue
        got = res.get(score_out)
        want = ref["scores"][rows_sel]
        if got is None or got.shape != want.shape or got.dtype != np.float32:
            errors.append(f"{what}: {score_out} {None if got is None else (got.dtype, got.shape)}, hogsvm's {want.shape} float32")
            labels_equal = False
            continue
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        if not np.all(np.isfinite(got)):
            errors.append(f"{what}: {score_out} has non-finite values")
        worst = int(np.argmax(diff.max(axis=1)))
        d = float(diff.max())
        max_diff = max(max_diff, d)
        if not d <= tolerance:
            col = int(np.argmax(diff[worst]))
            errors.append(
                f"{what}: {score_out} max abs diff {d:.3g} > {tolerance:g} "
                f"(image {worst + rows_sel.start}, column {col}: onnx {float(got[worst, col])!r}, hogsvm {float(want[worst, col])!r})"
            )
        want_labels = ref["labels"][rows_sel]
        label_sets = [(f"labels from {score_out}", hogsvm_labels(got))]
        if kind == "classical":
            label_sets.insert(0, ("label output", res.get("label")))
        else:
            # The logits' argmax too (hogsvm predicts from its logits): same labels.
            label_sets.append(("argmax of logits", np.argmax(res["logits"], axis=1)))
        for lname, lab in label_sets:
            if lab is None or lab.shape != want_labels.shape:
                errors.append(f"{what}: {lname}: shape {None if lab is None else lab.shape}, expected {want_labels.shape}")
                labels_equal = False
                continue
            if kind == "classical" and lname == "label output" and lab.dtype != np.int64:
                errors.append(f"{what}: label output dtype {lab.dtype}, expected int64")
            bad = np.flatnonzero(lab != want_labels)
            if int8:
                ctx["int8_label_diffs"].append(int(bad.size))
            if int8 and bad.size <= ctx["int8_label_diff"] * lab.size:
                continue
            if bad.size:
                labels_equal = False
                i = int(bad[0])
                errors.append(
                    f"{what}: {lname}: {bad.size} of {lab.size} differ from hogsvm's "
                    f"(first: image {i + rows_sel.start}, onnx {int(lab[i])}, hogsvm {int(want_labels[i])}; "
                    f"scores onnx {got[i].tolist()}, hogsvm {want[i].tolist()})"
                )
    return max_diff, labels_equal


def reference(ctx, kind, model_path, data, work, name):
    """hogsvm's side: eval --scores --json (and extract --model for a classical model)."""
    scores_path = os.path.join(work, f"{name}.scores.npy")
    report = json.loads(run([ctx["hogsvm"], "eval", "--model", model_path, "--data", data, "--split", "test",
                             "--scores", scores_path, "--json"]))
    scores = np.load(scores_path)
    truth = ctx["truth"][data]
    if scores.dtype != np.float32 or scores.ndim != 2 or scores.shape[0] != len(truth):
        raise CommandError(f"eval --scores wrote {scores.dtype} {scores.shape}, expected float32 ({len(truth)}, classes)")
    class_names = [c["name"] for c in report["per_class"]]
    if kind == "classical":
        feats = os.path.join(work, f"{name}.hog.npy")
        run([ctx["hogsvm"], "extract", "--data", data, "--split", "test", "--model", model_path, "--out", feats])
        x = np.load(feats)
        fl = np.load(os.path.join(work, f"{name}.hog_labels.npy"))
        if x.dtype != np.float32 or x.ndim != 2 or x.shape[0] != len(truth):
            raise CommandError(f"extract wrote {x.dtype} {x.shape}, expected float32 ({len(truth)}, D)")
        if not np.array_equal(fl.astype(np.int64), truth):
            raise CommandError("extract's labels are not the IDX test labels, in order")
    else:
        x = ctx["pixels"][data]
    labels = hogsvm_labels(scores)
    errors = []
    rc = np.array(report["confusion"], np.int64)
    k = len(class_names)
    if rc.shape != (k, k) or not np.array_equal(rc, confusion(truth, labels, k)):
        errors.append("hogsvm's labels from its --scores do not reproduce its eval report's confusion matrix")
    return {"scores": scores, "labels": labels, "class_names": class_names, "input": x,
            "accuracy": report["accuracy"]}, errors


def cpu_has_vnni():
    """Whether this CPU has an int8 dot-product instruction (AVX512-VNNI or AVX-VNNI), where
    onnxruntime's fused int8 kernels do not saturate."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return True
    return "avx512_vnni" in flags or "avx_vnni" in flags


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hogsvm", required=True, help="the hogsvm binary")
    ap.add_argument("--work", required=True, help="folder for the models, ONNX files and arrays")
    ap.add_argument("--data", default="fixtures/fashion-mnist", help="IDX folder with train and t10k files")
    ap.add_argument("--cnn-epochs", type=int, default=1)
    ap.add_argument("--tolerance", type=float, default=1e-4, help="max abs difference of the scores")
    ap.add_argument("--int8-tolerance", type=float, default=0.05, help="int8 models: max abs difference of the probabilities")
    ap.add_argument("--int8-label-diff", type=float, default=0.005, help="int8 models: largest fraction of labels that may differ")
    ap.add_argument("--only", help="comma-separated model names (default: all)")
    ap.add_argument("--no-two-class", action="store_true", help="skip the two-class subset's models")
    ap.add_argument("--json", help="also write the per-file results and the summary to this file")
    a = ap.parse_args()
    t0 = time.perf_counter()
    import onnx
    import onnxruntime as ort

    version_line = run([a.hogsvm, "--version"]).strip()
    ctx = {"hogsvm": a.hogsvm, "tolerance": a.tolerance, "version": version_line.split()[-1],
           "truth": {}, "pixels": {}, "int8_tolerance": a.int8_tolerance,
           "int8_label_diff": a.int8_label_diff, "int8_label_diffs": [], "notes": set()}
    datasets = {"": a.data}
    if not a.no_two_class:
        datasets["two_class_"] = two_class_subset(a.data, os.path.join(a.work, "two-class"))
    shapes = set()
    for d in datasets.values():
        px = read_idx(idx_file(d, "t10k", "images-idx3", "onnx_check"))
        ctx["truth"][d] = read_idx(idx_file(d, "t10k", "labels-idx1", "onnx_check")).astype(np.int64)
        ctx["pixels"][d] = np.ascontiguousarray(px[:, None, :, :].astype(np.float32))
        shapes.add(px.shape[1:])
    ctx["image_shape"] = shapes.pop()

    plan = []  # (name, kind, data, train flags)
    for prefix, data in datasets.items():
        variants = [(n, "classical", f) for n, f in CLASSICAL] + [(n, "cnn", f) for n, f in cnn_variants(a.cnn_epochs)]
        if prefix:  # the two-class subset: the one-column SVM and a two-output CNN
            variants = [v for v in variants if v[0] in ("default", "cnn")]
        else:
            variants += [(n, "cnn-int8", (base, f)) for n, base, f in INT8]
        plan += [(prefix + n, k, data, f) for n, k, f in variants]
    exports = [(n, 17, "dynamic") for n, _, _, _ in plan] + EXTRA_EXPORTS
    if a.only:
        keep = set(a.only.split(","))
        unknown = keep - {n for n, _, _, _ in plan}
        if unknown:
            ap.error(f"--only: no model {sorted(unknown)}")
        plan = [p for p in plan if p[0] in keep]
        exports = [e for e in exports if e[0] in keep]

    results = []
    trained = {}
    for name, kind, data, flags in plan:
        model_path = os.path.join(a.work, f"{name}.safetensors")
        t = time.perf_counter()
        try:
            if kind == "cnn-int8":
                base, qflags = flags
                flags = ["quantize", base] + qflags
                run([a.hogsvm, "quantize", "--model", trained[prefix_of(name) + base][1], "--calib", data,
                     "--out", model_path] + qflags)
            else:
                run([a.hogsvm, "train", "--data", data, "--out", model_path] + flags)
            ref, ref_errors = reference(ctx, kind, model_path, data, a.work, name)
            trained[name] = (kind, model_path, ref, ref_errors, flags, time.perf_counter() - t)
        except CommandError as e:
            trained[name] = (kind, None, None, [str(e)], flags, time.perf_counter() - t)
        log(f"trained {name} ({time.perf_counter() - t:.1f} s)")

    for name, opset, batch in exports:
        kind, model_path, ref, ref_errors, flags, train_s = trained[name]
        label = name + ("" if (opset, batch) == (17, "dynamic") else f"@opset{opset}" + ("" if batch == "dynamic" else f"/batch{batch}"))
        errors = list(ref_errors)
        row = {"name": label, "kind": kind, "train_flags": " ".join(flags), "opset": opset, "batch": batch}
        max_diff, labels_equal, size = None, False, None
        if model_path is not None:
            onnx_path = os.path.join(a.work, label.replace("@", "_").replace("/", "_") + ".onnx")
            try:
                run([a.hogsvm, "export", "--model", model_path, "--out", onnx_path, "--opset", str(opset), "--batch", batch])
                size = os.path.getsize(onnx_path)
                max_diff, labels_equal = check_file(ctx, name, kind, onnx_path, opset, batch, ref, errors)
            except CommandError as e:
                errors.append(str(e))
            except Exception as e:  # noqa: BLE001 - onnx / onnxruntime failures are results
                errors.append(f"{type(e).__name__}: {e}")
        row.update({
            "max_abs_diff": max_diff,
            "labels_equal": labels_equal,
            "onnx_bytes": size,
            "test_images": None if ref is None else int(ref["scores"].shape[0]),
            "score_columns": None if ref is None else int(ref["scores"].shape[1]),
            "hogsvm_accuracy": None if ref is None else ref["accuracy"],
            "ok": not errors and labels_equal,
            "errors": errors,
        })
        results.append(row)
        print(json.dumps(row), flush=True)

    failed = [r["name"] for r in results if not r["ok"]]
    summary = {
        "summary": True,
        "ok": not failed and bool(results),
        "onnx_files": len(results),
        "models_trained": len(trained),
        "failed": failed,
        "max_abs_diff": max((r["max_abs_diff"] for r in results if r["max_abs_diff"] is not None and r["kind"] != "cnn-int8"), default=None),
        "int8_max_abs_diff": max((r["max_abs_diff"] for r in results if r["max_abs_diff"] is not None and r["kind"] == "cnn-int8"), default=None),
        "int8_labels_differing_max": max(ctx["int8_label_diffs"], default=None),
        "tolerance": a.tolerance,
        "data": a.data,
        "hogsvm": version_line,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "notes": sorted(ctx["notes"]),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    print(json.dumps(summary), flush=True)
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump({"results": results, "summary": summary}, f, indent=2)
            f.write("\n")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
