#!/usr/bin/env python3
"""The small CNN's speed on CPU, side by side: PyTorch against hogsvm (`hogsvm bench-cnn`, candle),
the same network on the same images with the same thread count, in interleaved rounds of one run.

The network (identical in both): input 1 x H x W, (pixel/255 - mean)/std with mean and std over the
training pixels; for each c_out in --channels: Conv2d(c_in, c_out, 3, padding=1, bias=False) ->
BatchNorm2d(eps=1e-5, momentum=0.1) -> ReLU -> MaxPool2d(2); Flatten -> Dropout(0.3) ->
Linear(., --hidden) -> ReLU -> Dropout(0.3) -> Linear(--hidden, classes). Kaiming normal init
(fan_in, relu) for conv / linear weights, zero biases, BN weight 1 and bias 0. Cross-entropy,
AdamW(lr=--lr 1e-3, weight_decay=--weight-decay 1e-4), no gradient clipping. hogsvm is asked for the
same (`bench-cnn --dropout 0.3 --lr --weight-decay --clip-norm none`: its own defaults differ); it
pools before the ReLU (the same function: max-pooling and ReLU commute) and, unlike
torch.optim.AdamW, applies no weight decay to biases and batch-norm parameters (the same work).

Measured, per round and side:
* train step: forward (train mode) + loss + backward + optimizer step (zero_grad included) at
  batch --batch, --steps timed steps after --warmup untimed ones, on batches taken in order
  (wrapping) from the training images, already normalized and in memory (data loading is not
  timed). Reported: median step time, and images/s = batch x steps / total step time.
* inference: forward in eval mode under torch.inference_mode() at batch --infer-batch
  (images/s, from the median of --infer-repeat passes) and at batch 1 (latency, median ms per
  image over --latency-iters calls).
Threads: torch.set_num_threads(T), torch.set_num_interop_threads(1) (and OMP/MKL_NUM_THREADS=T);
hogsvm gets RAYON_NUM_THREADS=T.

The machine may be shared and noisy, so the sides alternate (torch, hogsvm, torch, hogsvm, ...) for
--rounds rounds; each figure is the median over rounds and each ratio the median of per-round
ratios. Ratios are "torch time / hogsvm time" (> 1: hogsvm faster), for the train step (median
step ms), inference (time per image at --infer-batch) and batch-1 latency.

--torch-only runs the PyTorch half alone. --accuracy-epochs N also trains the PyTorch network for N
epochs on the training split of --data and reports test accuracy on its t10k split (seeded).
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idxio import idx_file, read_idx  # noqa: E402

torch = None  # imported in main(), after the thread variables are set
nn = None


def load_split(folder, split):
    x = read_idx(idx_file(folder, split, "images-idx3", "peer_cnn"))
    y = read_idx(idx_file(folder, split, "labels-idx1", "peer_cnn")).astype(np.int64)
    if x.ndim != 3 or len(x) != len(y):
        raise SystemExit(f"peer_cnn: error: {folder}: {split} images {x.shape} and labels {y.shape} do not match")
    return x, y


def normalize(x_u8, mean, std):
    """uint8 N x H x W -> float32 tensor N x 1 x H x W, (x/255 - mean)/std."""
    x = (x_u8.astype(np.float32) / 255.0 - mean) / std
    return torch.from_numpy(np.ascontiguousarray(x[:, None, :, :]))


DROPOUT = 0.3


def build_net(channels, hidden, classes, rows, cols, dropout=DROPOUT):
    layers, c_in, h, w = [], 1, rows, cols
    for c_out in channels:
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                   nn.BatchNorm2d(c_out, eps=1e-5, momentum=0.1), nn.ReLU(), nn.MaxPool2d(2)]
        c_in, h, w = c_out, h // 2, w // 2
    if h < 1 or w < 1:
        raise SystemExit(f"peer_cnn: error: {len(channels)} pooling stages leave nothing of {rows}x{cols} images")
    layers += [nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in * h * w, hidden), nn.ReLU(),
               nn.Dropout(dropout), nn.Linear(hidden, classes)]
    net = nn.Sequential(*layers)
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return net, c_in * h * w


def new_model(a, classes, rows, cols):
    torch.manual_seed(a.seed)
    net, _ = build_net(a.channels, a.hidden, classes, rows, cols)
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    return net, opt


def torch_round(a, x, y, classes):
    """One round of PyTorch measurements; fresh model each round, like a fresh hogsvm process."""
    rows, cols = x.shape[2], x.shape[3]
    net, opt = new_model(a, classes, rows, cols)
    loss_fn = nn.CrossEntropyLoss()
    n = len(x)
    batches = []
    for i in range(min(a.warmup + a.steps, -(-n // a.batch) if n >= a.batch else 1)):
        idx = (np.arange(a.batch) + i * a.batch) % n
        batches.append((x[idx].contiguous(), y[idx].contiguous()))

    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(xb), yb)
        loss.backward()
        opt.step()
        return loss

    net.train()
    for i in range(a.warmup):
        step(*batches[i % len(batches)])
    times = []
    for i in range(a.warmup, a.warmup + a.steps):
        xb, yb = batches[i % len(batches)]
        t = time.perf_counter()
        step(xb, yb)
        times.append(time.perf_counter() - t)

    net.eval()
    idx = np.arange(a.infer_batch) % n
    xi = x[idx].contiguous()
    x1 = [x[i:i + 1].contiguous() for i in range(min(n, 64))]
    with torch.inference_mode():
        for _ in range(2):
            net(xi)
        inf = []
        for _ in range(a.infer_repeat):
            t = time.perf_counter()
            net(xi)
            inf.append(time.perf_counter() - t)
        for i in range(20):
            net(x1[i % len(x1)])
        lat = []
        for i in range(a.latency_iters):
            t = time.perf_counter()
            net(x1[i % len(x1)])
            lat.append(time.perf_counter() - t)
    step_ms = [s * 1e3 for s in times]
    return {"train_images_per_s": a.batch * len(times) / sum(times),
            "train_step_ms_median": statistics.median(step_ms),
            "train_step_ms": step_ms,
            "infer_images_per_s": a.infer_batch / statistics.median(inf),
            "infer_pass_ms": [s * 1e3 for s in inf],
            "latency_ms": statistics.median(lat) * 1e3}


def rust_cmd(a):
    return [a.hogsvm, "bench-cnn", "--data", a.data, "--batch", str(a.batch), "--steps", str(a.steps),
            "--warmup-steps", str(a.warmup), "--infer-batch", str(a.infer_batch),
            "--channels", ",".join(map(str, a.channels)), "--hidden", str(a.hidden),
            "--dropout", repr(DROPOUT), "--lr", repr(a.lr), "--weight-decay", repr(a.weight_decay),
            "--clip-norm", "none", "--json"]


def rust_round(a):
    cmd = rust_cmd(a)
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=a.rust_timeout)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"peer_cnn: error: `{' '.join(cmd)}` did not finish in {a.rust_timeout} s")
    lines = [l for l in p.stdout.strip().splitlines() if l.strip().startswith("{")]
    if p.returncode != 0 or not lines:
        tail = "\n".join((p.stderr.strip() or p.stdout.strip()).splitlines()[-8:])
        raise SystemExit(f"peer_cnn: error: `{' '.join(cmd)}` failed (exit code {p.returncode}, "
                         f"no JSON on stdout)" + (f":\n{tail}" if tail else "") +
                         "\n(does this hogsvm have `bench-cnn`? --torch-only runs the PyTorch half alone)")
    try:
        d = json.loads(lines[-1])
    except json.JSONDecodeError as e:
        raise SystemExit(f"peer_cnn: error: hogsvm bench-cnn printed invalid JSON ({e}): {lines[-1][:200]}")
    missing = [k for k in ("params", "train_images_per_s", "train_step_ms_median", "infer_images_per_s",
                           "latency_ms") if k not in d]
    if missing:
        raise SystemExit(f"peer_cnn: error: hogsvm bench-cnn JSON lacks {', '.join(missing)}: {lines[-1][:300]}")
    return d


def accuracy_run(a, train, test, mean, std, classes):
    """Train the PyTorch network for a.accuracy_epochs epochs (seeded) and report test accuracy."""
    (xtr, ytr), (xte, yte) = train, test
    xtr, xte = normalize(xtr, mean, std), normalize(xte, mean, std)
    ytr, yte = torch.from_numpy(ytr), torch.from_numpy(yte)
    net, opt = new_model(a, classes, xtr.shape[2], xtr.shape[3])
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(a.seed)
    epochs = []
    t0 = time.perf_counter()
    for ep in range(a.accuracy_epochs):
        net.train()
        perm = torch.randperm(len(xtr), generator=g)
        total, t = 0.0, time.perf_counter()
        for i in range(0, len(perm), a.batch):
            b = perm[i:i + a.batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(xtr[b]), ytr[b])
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
        net.eval()
        correct = 0
        with torch.inference_mode():
            for i in range(0, len(xte), a.infer_batch):
                correct += (net(xte[i:i + a.infer_batch]).argmax(1) == yte[i:i + a.infer_batch]).sum().item()
        acc = correct / len(xte)
        epochs.append({"epoch": ep + 1, "train_loss": total / len(xtr), "test_accuracy": acc,
                       "seconds": time.perf_counter() - t})
        print(f"  epoch {ep + 1}: train loss {total / len(xtr):.4f}, test accuracy {acc:.4f} "
              f"({time.perf_counter() - t:.1f} s)", flush=True)
    return {"epochs": a.accuracy_epochs, "train_images": len(xtr), "test_images": len(xte),
            "test_accuracy": epochs[-1]["test_accuracy"] if epochs else None,
            "seconds": time.perf_counter() - t0, "per_epoch": epochs}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_json(path, obj):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hogsvm", default="target/release/hogsvm", help="the hogsvm binary")
    ap.add_argument("--data", default="fixtures/fashion-mnist", help="folder of IDX files (train-*, t10k-*)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20, help="timed train steps per round")
    ap.add_argument("--warmup", type=int, default=3, help="untimed train steps before them")
    ap.add_argument("--infer-batch", type=int, default=1000)
    ap.add_argument("--infer-repeat", type=int, default=5, help="timed passes at --infer-batch per round (torch)")
    ap.add_argument("--latency-iters", type=int, default=200, help="timed batch-1 calls per round (torch)")
    ap.add_argument("--channels", default="32,64,128")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (torch, hogsvm, torch, ...)")
    ap.add_argument("--torch-only", action="store_true", help="PyTorch half only (no hogsvm)")
    ap.add_argument("--rust-timeout", type=int, default=900, help="seconds allowed for one hogsvm run")
    ap.add_argument("--accuracy-epochs", type=int, default=0,
                    help="also train the PyTorch net N epochs on --data's train split, test on t10k")
    ap.add_argument("--out", default="docs/peer_cnn.json", help="write all results here (JSON)")
    a = ap.parse_args()
    try:
        a.channels = [int(c) for c in a.channels.split(",") if c.strip()]
    except ValueError:
        ap.error(f"--channels: expected comma-separated integers, got {a.channels!r}")
    for name in ("threads", "batch", "steps", "infer_batch", "infer_repeat", "latency_iters", "hidden", "rounds"):
        if getattr(a, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if not a.channels or min(a.channels) < 1:
        ap.error("--channels: expected positive integers")
    if not a.torch_only and not (os.path.isfile(a.hogsvm) and os.access(a.hogsvm, os.X_OK)):
        raise SystemExit(f"peer_cnn: error: hogsvm binary {a.hogsvm} not found (build it with "
                         "`cargo build --release`), or pass --torch-only to time PyTorch alone")

    for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[v] = str(a.threads)
    global torch, nn
    import torch as _torch
    torch, nn = _torch, _torch.nn
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)

    xtr_u8, ytr = load_split(a.data, "train")
    # mean and std over every training pixel, in float64, of pixel/255
    px = xtr_u8.astype(np.float64) / 255.0
    mean, std = float(px.mean()), float(px.std())
    del px
    classes = int(ytr.max()) + 1
    rows, cols = xtr_u8.shape[1], xtr_u8.shape[2]
    x = normalize(xtr_u8, mean, std)
    y = torch.from_numpy(ytr)
    net, flat = build_net(a.channels, a.hidden, classes, rows, cols)
    params = sum(p.numel() for p in net.parameters())
    del net
    print(f"network: {rows}x{cols}x1 -> conv {a.channels} -> {flat} -> {a.hidden} -> {classes}; "
          f"{params} parameters; data {a.data}: {len(x)} training images, mean {mean:.6f} std {std:.6f}")
    print(f"PyTorch {torch.__version__}, {a.threads} threads (interop 1), batch {a.batch}, "
          f"{a.warmup}+{a.steps} steps, inference batch {a.infer_batch}, {a.rounds} rounds", flush=True)

    rounds = []
    for r in range(a.rounds):
        t = torch_round(a, x, y, classes)
        t["round"], t["side"] = r + 1, "torch"
        rounds.append(t)
        print(f"  round {r + 1} torch : train {t['train_images_per_s']:8.1f} img/s, step "
              f"{t['train_step_ms_median']:7.2f} ms, infer {t['infer_images_per_s']:8.1f} img/s, "
              f"latency {t['latency_ms']:.3f} ms", flush=True)
        if not a.torch_only:
            d = rust_round(a)
            d["round"], d["side"] = r + 1, "hogsvm"
            rounds.append(d)
            print(f"  round {r + 1} hogsvm: train {d['train_images_per_s']:8.1f} img/s, step "
                  f"{d['train_step_ms_median']:7.2f} ms, infer {d['infer_images_per_s']:8.1f} img/s, "
                  f"latency {d['latency_ms']:.3f} ms", flush=True)
            if r == 0 and int(d["params"]) != params:
                print(f"peer_cnn: warning: parameter counts differ: PyTorch {params}, hogsvm {d['params']} "
                      "- the two networks are not the same", file=sys.stderr)

    med = statistics.median
    keys = ("train_images_per_s", "train_step_ms_median", "infer_images_per_s", "latency_ms")
    tr = [r for r in rounds if r["side"] == "torch"]
    rs = [r for r in rounds if r["side"] == "hogsvm"]
    summary = {"torch": {k: med([r[k] for r in tr]) for k in keys}}
    summary["torch"]["train_step_ms_all_steps_median"] = med([s for r in tr for s in r["train_step_ms"]])
    if rs:
        summary["hogsvm"] = {k: med([float(r[k]) for r in rs]) for k in keys}
        # each ratio: torch time / hogsvm time, per round, median over rounds (> 1: hogsvm faster)
        summary["ratio_torch_over_hogsvm"] = {
            "train_step": med([t["train_step_ms_median"] / r["train_step_ms_median"] for t, r in zip(tr, rs)]),
            "inference": med([r["infer_images_per_s"] / t["infer_images_per_s"] for t, r in zip(tr, rs)]),
            "latency": med([t["latency_ms"] / r["latency_ms"] for t, r in zip(tr, rs)]),
        }

    print()
    print(f"CNN on CPU, {a.threads} threads, median of {a.rounds} "
          f"{'' if a.torch_only else 'interleaved '}round{'s' if a.rounds > 1 else ''}")
    print(f"{'side':<8} {'train img/s':>12} {'step ms':>9} {'infer img/s':>12} {'latency ms':>11}   "
          f"(train batch {a.batch}, inference batch {a.infer_batch}, latency batch 1)")
    for side in ("torch", "hogsvm"):
        if side in summary:
            s = summary[side]
            print(f"{side:<8} {s['train_images_per_s']:>12.1f} {s['train_step_ms_median']:>9.2f} "
                  f"{s['infer_images_per_s']:>12.1f} {s['latency_ms']:>11.3f}")
    if "ratio_torch_over_hogsvm" in summary:
        q = summary["ratio_torch_over_hogsvm"]
        print(f"torch time / hogsvm time (> 1: hogsvm faster): train step {q['train_step']:.2f}, "
              f"inference {q['inference']:.2f}, latency {q['latency']:.2f} (median of per-round ratios)")

    accuracy = None
    if a.accuracy_epochs > 0:
        print(f"\naccuracy: PyTorch, {a.accuracy_epochs} epochs, batch {a.batch}, seed {a.seed}", flush=True)
        accuracy = accuracy_run(a, (xtr_u8, ytr), load_split(a.data, "t10k"), mean, std, classes)
        print(f"PyTorch test accuracy after {a.accuracy_epochs} epochs: {accuracy['test_accuracy']:.4f}")

    results = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "numpy": np.__version__,
                     "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
                     "mkldnn": torch.backends.mkldnn.is_available()},
        "config": {"data": a.data, "train_images": len(x), "image": [rows, cols], "classes": classes,
                   "pixel_mean": mean, "pixel_std": std, "channels": a.channels, "hidden": a.hidden,
                   "flatten": flat, "dropout": DROPOUT, "optimizer": "AdamW", "lr": a.lr,
                   "weight_decay": a.weight_decay, "threads": a.threads, "interop_threads": 1,
                   "batch": a.batch, "steps": a.steps, "warmup": a.warmup, "infer_batch": a.infer_batch,
                   "infer_repeat": a.infer_repeat, "latency_iters": a.latency_iters, "rounds": a.rounds,
                   "seed": a.seed, "torch_only": a.torch_only,
                   "hogsvm_command": None if a.torch_only else rust_cmd(a)},
        "params": {"torch": params, "hogsvm": int(rs[0]["params"]) if rs else None},
        "summary": summary,
        "rounds": rounds,
        "accuracy": accuracy,
    }
    write_json(a.out, results)
    print(f"(PyTorch {torch.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
          f"{cpu_model()}, {os.cpu_count()} CPUs; all figures in {a.out})")


if __name__ == "__main__":
    sys.exit(main())
