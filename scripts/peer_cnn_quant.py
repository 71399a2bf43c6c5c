#!/usr/bin/env python3
"""PyTorch's int8 quantisation of a hogsvm CNN, next to hogsvm's own figures for the same model:
the float network loaded from a hogsvm model file into PyTorch, then quantised the two ways the
PyTorch guide shows (eager mode, torch.ao.quantization), and every variant measured the same way.

Run through scripts/peer_cnn.sh quant [ARGS] (the PyTorch venv, scripts/.venv-torch).

The model file (hogsvm's safetensors: 8-byte little-endian header length, a JSON header of
name -> {dtype, shape, data_offsets}, and `__metadata__.hogsvm`, a JSON string: the envelope with
`kind`, `config` (channels, se_reduction, hidden, ...), `input` {rows, cols}, `class_names`, and the
CNN's own fields mean / std / best_epoch, flattened into the envelope) is read here with the
standard library and numpy. Models with squeeze-and-excitation (se_reduction set) or of another kind
than "cnn" are refused (exit code 2). The network is scripts/peer_cnn.py's build_net (per block conv
3x3 pad 1, no bias -> BatchNorm2d eps 1e-5 -> ReLU -> MaxPool2d(2); Flatten -> [Dropout -> Linear ->
ReLU] per hidden layer -> Dropout -> Linear), in eval mode; hogsvm pools before its ReLU, the same
function. Input: (pixel/255 - mean)/std with the model's mean and std.

Variants, all on CPU with torch.set_num_threads(--threads), torch.set_num_interop_threads(1):
* torch float32: the loaded network. Its test accuracy must agree with `hogsvm bench-model` on the
  same file (within --float-tolerance images; otherwise exit code 1 after the JSON is written).
* torch static int8: QuantStub -> net -> DeQuantStub; conv+bn+relu fused per block and each
  hidden linear+relu fused (torch.ao.quantization.fuse_modules, eval mode: BN folded into the
  conv); torch.backends.quantized.engine = 'fbgemm', qconfig get_default_qconfig('fbgemm'),
  prepare, calibration on the FIRST --calib-images training images (train-*, in file order, the
  images `hogsvm quantize` calibrates on), convert.
* torch dynamic int8: quantize_dynamic(float model, {nn.Linear}, dtype=torch.qint8): only the
  Linear layers hold int8 weights (activations quantised on the fly); the convolutions stay float.
* hogsvm: `BIN bench-model --model M --data DIR --batch B --passes P --latency-samples S
  --threads T` (RAYON_NUM_THREADS=T too) on --model and on each of --hogsvm-models.

Measured per variant, like bench-model does: accuracy on the whole test split (t10k-*); model
bytes (torch: the length of torch.save(state_dict) into a BytesIO; hogsvm: its serialised model);
throughput, the best of --passes passes over the test set in batches of --batch, each batch from
uint8 pixels to predicted labels (normalisation and argmax timed, as in hogsvm's predict; images/s);
batch-1 latency, median and nearest-rank p90 of --latency-samples single-image predictions of the
test images in turn, after --latency-warmup untimed calls (hogsvm: one untimed call).

Order: the three torch variants first (in-process, one after the other), then the hogsvm runs (one
subprocess each, the torch objects idle in memory meanwhile). Nothing runs concurrently.
"""
import argparse
import copy
import datetime
import io
import json
import os
import platform
import shlex
import statistics
import struct
import subprocess
import sys
import time
import warnings
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_cnn as pc  # noqa: E402  (build_net, load_split, normalize, cpu_model, write_json)

WHO = "peer_cnn_quant"
torch = None  # imported in main(), after the thread variables are set
nn = None


def die(msg, code=2):
    print(f"{WHO}: error: {msg}", file=sys.stderr)
    sys.exit(code)


# --- the hogsvm model file ---------------------------------------------------------------------

def read_hogsvm_model(path):
    """(envelope dict, {name: float32 numpy array}, input mean, input std) of a hogsvm CNN model
    file; exits (code 2) on a file that is not one, or on a model this script does not handle."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        die(f"{path}: cannot read: {e.strerror}")
    if len(data) < 8:
        die(f"{path}: not a safetensors file (shorter than 8 bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        die(f"{path}: not a safetensors file (header length {n} beyond the file's {len(data)} bytes)")
    try:
        header = json.loads(data[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        die(f"{path}: not a safetensors file (header is not JSON: {e})")
    meta = header.pop("__metadata__", None) or {}
    if "hogsvm" not in meta:
        die(f"{path}: not a hogsvm model file (no __metadata__.hogsvm)")
    try:
        env = json.loads(meta["hogsvm"])
    except json.JSONDecodeError as e:
        die(f"{path}: hogsvm metadata is not JSON: {e}")
    kind = env.get("kind")
    if kind != "cnn":
        die(f"{path}: a {kind!r} model; only hogsvm CNN models (kind \"cnn\") can be loaded into PyTorch")
    cfg = env.get("config") or {}
    if cfg.get("se_reduction") is not None:
        die(f"{path}: the CNN has squeeze-and-excitation (se_reduction {cfg['se_reduction']}), "
            "which this script does not build; train one with --se none")
    body = data[8 + n:]
    # hogsvm's checksum, in name order: format version 1, the tensors' bytes; version 2, each
    # tensor's name, dtype, shape and bytes (lengths as u64 LE), then the metadata text up to the
    # checksum's 8 hex digits.
    v2 = int(env.get("format_version", 1)) >= 2
    tensors, crc = {}, 0
    u64 = lambda v: int(v).to_bytes(8, "little")  # noqa: E731
    for name in sorted(header):
        t = header[name]
        if t.get("dtype") != "F32":
            die(f"{path}: tensor {name} is {t.get('dtype')}, expected F32 (a float model)")
        a, b = t["data_offsets"]
        shape = [int(d) for d in t["shape"]]
        if not (0 <= a <= b <= len(body)) or b - a != 4 * int(np.prod(shape, dtype=np.int64)):
            die(f"{path}: tensor {name}: data_offsets {a}..{b} do not fit shape {shape}")
        if v2:
            crc = zlib.crc32(u64(len(name.encode())) + name.encode() + t["dtype"].encode(), crc)
            crc = zlib.crc32(u64(len(shape)) + b"".join(u64(d) for d in shape) + u64(b - a), crc)
        crc = zlib.crc32(body[a:b], crc)
        tensors[name] = np.frombuffer(body, "<f4", count=(b - a) // 4, offset=a).reshape(shape).astype(np.float32)
    if v2:
        crc = zlib.crc32(meta["hogsvm"][:-10].encode(), crc)
    if "crc32" in env and f"{crc:08x}" != env["crc32"]:
        die(f"{path}: checksum {crc:08x} does not match the metadata's {env['crc32']} (damaged file?)")
    extra = env.get("extra") if isinstance(env.get("extra"), dict) else env  # flattened in practice
    for k in ("mean", "std"):
        if not isinstance(extra.get(k), (int, float)):
            die(f"{path}: hogsvm metadata lacks the CNN's input {k}")
    for k in ("channels", "hidden"):
        if not isinstance(cfg.get(k), list):
            die(f"{path}: hogsvm metadata lacks config.{k}")
    return env, tensors, float(extra["mean"]), float(extra["std"])


# --- the network in torch ----------------------------------------------------------------------

def _quant_net_class():
    class QuantNet(nn.Module):
        """QuantStub -> the float network -> DeQuantStub (the stubs are identities until convert)."""

        def __init__(self, net):
            super().__init__()
            self.quant = torch.ao.quantization.QuantStub()
            self.net = net
            self.dequant = torch.ao.quantization.DeQuantStub()

        def forward(self, x):
            return self.dequant(self.net(self.quant(x)))

    return QuantNet


def torch_net(env, tensors):
    """The float network of the model file as QuantNet (eval mode), and the names of the module
    groups to fuse: [conv, bn, relu] per block and [linear, relu] per hidden layer."""
    cfg = env["config"]
    channels, hidden = [int(c) for c in cfg["channels"]], [int(h) for h in cfg["hidden"]]
    rows, cols = int(env["input"]["rows"]), int(env["input"]["cols"])
    classes = len(env["class_names"])
    dropout = float(cfg.get("dropout") or 0.0)
    net, flat = pc.build_net(channels, hidden[0] if hidden else classes, classes, rows, cols, dropout)
    layers = list(net)
    k = 4 * len(channels)  # conv, bn, relu, pool per block; then Flatten, Dropout, Linear, ...
    if len(hidden) != 1:  # build_net's head has one hidden layer: rebuild it for this list
        layers, f_in = layers[:k + 1], flat
        for h in hidden:
            layers += [nn.Dropout(dropout), nn.Linear(f_in, h), nn.ReLU()]
            f_in = h
        layers += [nn.Dropout(dropout), nn.Linear(f_in, classes)]
    net = nn.Sequential(*layers)
    linears = [i for i, m in enumerate(layers) if isinstance(m, nn.Linear)]
    names = {}
    for i in range(len(channels)):
        names[f"conv{i}.weight"] = (layers[4 * i], "weight")
        for p in ("weight", "bias", "running_mean", "running_var"):
            names[f"bn{i}.{p}"] = (layers[4 * i + 1], p)
    for j, li in enumerate(linears[:-1]):
        names[f"fc{j}.weight"], names[f"fc{j}.bias"] = (layers[li], "weight"), (layers[li], "bias")
    names["out.weight"], names["out.bias"] = (layers[linears[-1]], "weight"), (layers[linears[-1]], "bias")
    missing = sorted(set(names) - set(tensors))
    unused = sorted(set(tensors) - set(names))
    if missing or unused:
        die(f"model tensors do not fit channels {channels} hidden {hidden}: "
            f"missing {missing or 'none'}, unexpected {unused or 'none'}")
    with torch.no_grad():
        for name, (mod, attr) in names.items():
            dst = getattr(mod, attr)
            if tuple(dst.shape) != tensors[name].shape:
                die(f"tensor {name} has shape {list(tensors[name].shape)}, the network wants {list(dst.shape)}")
            dst.copy_(torch.from_numpy(tensors[name]))
    model = _quant_net_class()(net).eval()
    fuse = [[f"net.{4 * i}", f"net.{4 * i + 1}", f"net.{4 * i + 2}"] for i in range(len(channels))]
    fuse += [[f"net.{li}", f"net.{li + 1}"] for li in linears[:-1]]
    dims = {"channels": channels, "hidden": hidden, "classes": classes, "input": [rows, cols],
            "flatten": flat, "dropout": dropout}
    return model, fuse, dims


def module_types(m):
    """{name: class} of a QuantNet's layers (after fusion / conversion), e.g. net.0: ConvReLU2d."""
    def cls(x):
        return f"{type(x).__module__.replace('torch.ao.nn.', '')}.{type(x).__name__}"
    return {"quant": cls(m.quant), **{f"net.{n}": cls(x) for n, x in m.net.named_children()},
            "dequant": cls(m.dequant)}


def observer_info(factory):
    """What an observer factory (a qconfig's activation or weight) makes."""
    o = factory()
    d = {"observer": type(o).__name__}
    for k in ("dtype", "qscheme", "reduce_range", "quant_min", "quant_max", "ch_axis", "bins",
              "is_dynamic"):
        if hasattr(o, k):
            v = getattr(o, k)
            d[k] = v if isinstance(v, (bool, int, float)) or v is None else str(v)
    return d


def static_int8(float_model, fuse, calib_u8, mean, std, batch):
    m = copy.deepcopy(float_model).eval()
    torch.ao.quantization.fuse_modules(m, fuse, inplace=True)
    torch.backends.quantized.engine = "fbgemm"
    qconfig = torch.ao.quantization.get_default_qconfig("fbgemm")
    m.qconfig = qconfig
    torch.ao.quantization.prepare(m, inplace=True)
    with torch.inference_mode():
        for i in range(0, len(calib_u8), batch):
            m(pc.normalize(calib_u8[i:i + batch], mean, std))
    torch.ao.quantization.convert(m, inplace=True)
    info = {"qconfig": str(qconfig), "activation": observer_info(qconfig.activation),
            "weight": observer_info(qconfig.weight), "engine": torch.backends.quantized.engine,
            "fused": fuse, "calibration_images": len(calib_u8),
            "modules": module_types(m)}
    try:
        info["input_scale"] = float(m.quant.scale)
        info["input_zero_point"] = int(m.quant.zero_point)
    except (AttributeError, TypeError, RuntimeError):
        pass
    return m, info


def dynamic_int8(float_model):
    m = torch.ao.quantization.quantize_dynamic(copy.deepcopy(float_model).eval(), {nn.Linear}, dtype=torch.qint8)
    q = torch.ao.quantization.default_dynamic_qconfig  # what quantize_dynamic uses for {nn.Linear} + qint8
    return m, {"call": "torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)",
               "quantized": "nn.Linear layers only (int8 weights, activations quantised per batch at run "
                            "time); the convolutions and batch norms stay float32",
               "qconfig": str(q), "activation": observer_info(q.activation), "weight": observer_info(q.weight),
               "modules": module_types(m)}


# --- measurements ------------------------------------------------------------------------------

def model_bytes(m):
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    return len(buf.getvalue())


def nearest_rank(sorted_vals, q):
    """hogsvm's percentile: nearest rank, ceil(q n), clamped to 1..n."""
    if not sorted_vals:
        return 0.0
    r = min(max(int(np.ceil(q * len(sorted_vals))), 1), len(sorted_vals))
    return sorted_vals[r - 1]


def measure_torch(m, x_u8, y, mean, std, a):
    """Accuracy, bytes, throughput and latency of one torch variant (see the module docstring)."""
    n = len(x_u8)
    with torch.inference_mode():
        best, pred = float("inf"), None
        for _ in range(a.passes):
            t = time.perf_counter()
            p = [m(pc.normalize(x_u8[i:i + a.batch], mean, std)).argmax(1) for i in range(0, n, a.batch)]
            secs = time.perf_counter() - t
            best, pred = min(best, secs), torch.cat(p).numpy()
        singles = [x_u8[i % n:i % n + 1] for i in range(a.latency_samples)]
        for i in range(a.latency_warmup):
            m(pc.normalize(singles[i % len(singles)], mean, std)).argmax(1)
        lat = []
        for s in singles:
            t = time.perf_counter()
            m(pc.normalize(s, mean, std)).argmax(1)
            lat.append((time.perf_counter() - t) * 1e3)
    lat.sort()
    return {"accuracy": float((pred == y).mean()), "test_images": n, "model_bytes": model_bytes(m),
            "batch": a.batch, "batch_seconds_best": best, "images_per_s": n / max(best, 1e-12),
            "latency_samples": len(lat), "latency_ms_median": statistics.median(lat),
            "latency_ms_p90": nearest_rank(lat, 0.9)}, pred


def hogsvm_cmd(a, model):
    return [a.hogsvm, "bench-model", "--model", model, "--data", a.data, "--batch", str(a.batch),
            "--passes", str(a.passes), "--latency-samples", str(a.latency_samples), "--threads", str(a.threads)]


def run_hogsvm(a, model):
    cmd = hogsvm_cmd(a, model)
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=a.hogsvm_timeout)
    except subprocess.TimeoutExpired:
        die(f"`{shlex.join(cmd)}` did not finish in {a.hogsvm_timeout} s", 1)
    out = p.stdout.strip()
    try:
        d = json.loads(out[out.index("{"):]) if p.returncode == 0 and "{" in out else None
    except json.JSONDecodeError:
        d = None
    if d is None:
        tail = "\n".join((p.stderr.strip() or out).splitlines()[-8:])
        die(f"`{shlex.join(cmd)}` failed (exit code {p.returncode}, no JSON on stdout)"
            + (f":\n{tail}" if tail else "") + "\n(does this hogsvm have `bench-model`?)", 1)
    missing = [k for k in ("accuracy", "model_bytes", "images_per_s", "latency_ms_median", "latency_ms_p90")
               if k not in d]
    if missing:
        die(f"hogsvm bench-model JSON lacks {', '.join(missing)}: {out[:300]}", 1)
    d["command"] = cmd
    return d


# --- main --------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="hogsvm float CNN model file (safetensors)")
    ap.add_argument("--data", default="fixtures/fashion-mnist", help="folder of IDX files (train-*, t10k-*)")
    ap.add_argument("--calib-images", type=int, default=1000,
                    help="static int8: calibrate on the first N training images (file order)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256, help="images per call for the throughput")
    ap.add_argument("--passes", type=int, default=3, help="passes over the test set (the best is reported)")
    ap.add_argument("--latency-samples", type=int, default=101, help="single-image predictions timed")
    ap.add_argument("--latency-warmup", type=int, default=5, help="untimed single-image calls first (torch)")
    ap.add_argument("--hogsvm", default="target/release/hogsvm", help="the hogsvm binary (with bench-model)")
    ap.add_argument("--hogsvm-models", default="", help="comma-separated extra hogsvm model files to bench")
    ap.add_argument("--hogsvm-timeout", type=int, default=900, help="seconds allowed for one hogsvm run")
    ap.add_argument("--float-tolerance", type=int, default=2,
                    help="test images by which torch float's and hogsvm's float accuracies may differ")
    ap.add_argument("--out", default="docs/peer_cnn_quant.json", help="write all results here (JSON)")
    a = ap.parse_args()
    for name in ("calib_images", "threads", "batch", "passes", "latency_samples"):
        if getattr(a, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if a.latency_warmup < 0 or a.float_tolerance < 0:
        ap.error("--latency-warmup and --float-tolerance must not be negative")
    extra_models = [m for m in (s.strip() for s in a.hogsvm_models.split(",")) if m]
    for m in [a.model] + extra_models:
        if not os.path.isfile(m):
            die(f"model file {m} not found")
    if not (os.path.isfile(a.hogsvm) and os.access(a.hogsvm, os.X_OK)):
        die(f"hogsvm binary {a.hogsvm} not found (build it with `cargo build --release`, or pass --hogsvm BIN)")
    command = shlex.join([sys.executable] + sys.argv)

    env, tensors, mean, std = read_hogsvm_model(a.model)

    for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[v] = str(a.threads)
    global torch, nn
    import torch as _torch
    torch, nn = _torch, _torch.nn
    pc.torch, pc.nn = torch, nn  # peer_cnn's helpers use its module globals
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    if "fbgemm" not in torch.backends.quantized.supported_engines:
        die(f"this PyTorch has no fbgemm quantized engine (supported: {torch.backends.quantized.supported_engines})", 1)

    xte, yte = pc.load_split(a.data, "t10k")
    xtr, _ = pc.load_split(a.data, "train")
    rows, cols = int(env["input"]["rows"]), int(env["input"]["cols"])
    if xte.shape[1:] != (rows, cols) or xtr.shape[1:] != (rows, cols):
        die(f"{a.data}: images are {xte.shape[1]}x{xte.shape[2]}, the model takes {rows}x{cols}")
    if int(yte.max()) >= len(env["class_names"]):
        die(f"{a.data}: label {int(yte.max())} is beyond the model's {len(env['class_names'])} classes")
    calib = xtr[:a.calib_images]
    del xtr

    float_model, fuse, dims = torch_net(env, tensors)
    params = sum(p.numel() for p in float_model.parameters())
    print(f"{a.model}: {dims['input'][0]}x{dims['input'][1]} -> conv {dims['channels']} -> {dims['flatten']} "
          f"-> {dims['hidden']} -> {dims['classes']}, {params} parameters, mean {mean:.6f} std {std:.6f}")
    print(f"PyTorch {torch.__version__}, {a.threads} threads (interop 1), engine fbgemm; test {len(xte)} "
          f"images of {a.data}, calibration on the first {len(calib)} training images", flush=True)

    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        # torch.ao.quantization warns that it is deprecated (in favour of torchao) on each call:
        # recorded in the JSON and said once below, instead of pages of stderr.
        warnings.simplefilter("always")
        static_model, static_info = static_int8(float_model, fuse, calib, mean, std, a.batch)
        static_info["seconds"] = time.perf_counter() - t
        dynamic_model, dynamic_info = dynamic_int8(float_model)
    torch_warnings = list(dict.fromkeys(f"{w.category.__name__}: {' '.join(str(w.message).split())}"
                                        for w in caught))
    if torch_warnings:
        print(f"(PyTorch warned {len(torch_warnings)} distinct warnings while quantising, e.g. "
              f"{torch_warnings[0][:120]}...; all in the JSON's torch_warnings)", flush=True)
    print(f"static int8 qconfig ({static_info['seconds']:.1f} s to prepare, calibrate, convert): "
          f"{static_info['qconfig']}", flush=True)
    print(f"dynamic int8: {dynamic_info['call']}; qconfig {dynamic_info['qconfig']}", flush=True)

    rows_out, preds = [], {}
    for variant, m in (("float32", float_model), ("static int8", static_model), ("dynamic int8", dynamic_model)):
        r, preds[variant] = measure_torch(m, xte, yte, mean, std, a)
        r.update(tool="torch", variant=variant)
        rows_out.append(r)
        print(f"  torch {variant:<12}: accuracy {r['accuracy']:.4f}, {r['model_bytes']} bytes, "
              f"{r['images_per_s']:.0f} img/s, latency {r['latency_ms_median']:.3f} ms", flush=True)
    for variant in ("static int8", "dynamic int8"):
        rows_out[[r["variant"] for r in rows_out].index(variant)]["agreement_with_torch_float32"] = \
            float((preds[variant] == preds["float32"]).mean())

    for i, m in enumerate([a.model] + extra_models):
        d = run_hogsvm(a, m)
        d.update(tool="hogsvm", variant=("float32 (--model)" if i == 0 else "--hogsvm-models") + f": {os.path.basename(m)}")
        rows_out.append(d)
        print(f"  hogsvm {os.path.basename(m)}: accuracy {d['accuracy']:.4f}, {d['model_bytes']} bytes, "
              f"{d['images_per_s']:.0f} img/s, latency {d['latency_ms_median']:.3f} ms", flush=True)

    tf, hf = rows_out[0], rows_out[3]
    diff_images = round(abs(tf["accuracy"] - hf["accuracy"]) * len(xte))
    float_check = {"torch_float32_accuracy": tf["accuracy"], "hogsvm_float_accuracy": hf["accuracy"],
                   "difference_images": diff_images, "tolerance_images": a.float_tolerance,
                   "match": diff_images <= a.float_tolerance}

    results = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command,
        "machine": {"cpu": pc.cpu_model(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
                     "quantized_engines": list(torch.backends.quantized.supported_engines)},
        "config": {"model": a.model, "data": a.data, "test_images": len(xte), "calib_images": len(calib),
                   "threads": a.threads, "interop_threads": 1, "batch": a.batch, "passes": a.passes,
                   "latency_samples": a.latency_samples, "latency_warmup_torch": a.latency_warmup,
                   "hogsvm": a.hogsvm, "hogsvm_models": extra_models, "network": dims, "params": params,
                   "pixel_mean": mean, "pixel_std": std,
                   "order": "torch float32, static int8, dynamic int8 (in-process), then each hogsvm "
                            "bench-model run (subprocesses), one at a time",
                   "timing": "throughput: best of --passes passes over the test set, each batch from uint8 "
                             "pixels to labels (normalisation and argmax included); latency: batch 1, "
                             "test images in turn, median and nearest-rank p90"},
        "float_check": float_check,
        "static_int8": static_info,
        "dynamic_int8": dynamic_info,
        "results": rows_out,
        "torch_warnings": torch_warnings,
    }
    write_out = a.out
    pc.write_json(write_out, results)

    print()
    print(f"CNN int8 on CPU, {a.threads} threads; batch {a.batch} (best of {a.passes} passes over {len(xte)} "
          f"test images), latency batch 1 over {a.latency_samples} images")
    print()
    print("| tool | variant | accuracy | model bytes | images/s | latency median ms | latency p90 ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows_out:
        print(f"| {r['tool']} | {r['variant']} | {r['accuracy']:.4f} | {r['model_bytes']:,} | "
              f"{r['images_per_s']:,.0f} | {r['latency_ms_median']:.3f} | {r['latency_ms_p90']:.3f} |")
    print()
    print(f"static int8 observers: activation {static_info['activation']['observer']}"
          f" ({static_info['activation'].get('dtype')}, {static_info['activation'].get('qscheme')}, "
          f"reduce_range {static_info['activation'].get('reduce_range')}), weight "
          f"{static_info['weight']['observer']} ({static_info['weight'].get('dtype')}, "
          f"{static_info['weight'].get('qscheme')})")
    print(f"(PyTorch {torch.__version__}, {pc.cpu_model()}, {os.cpu_count()} CPUs; all figures in {write_out})")
    if not float_check["match"]:
        print(f"{WHO}: error: torch float32 accuracy {tf['accuracy']:.4f} and hogsvm's {hf['accuracy']:.4f} "
              f"differ by {diff_images} test images (tolerance {a.float_tolerance}): the networks are not "
              "the same", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
