"""Model files between Python and the command line: a HogSvmClassifier trained here and saved is
what `hogsvm eval` / `hogsvm predict` read, with the same accuracy and labels; `hogsvm.load` of a
model `hogsvm train` wrote (classical and CNN) gives `hogsvm predict`'s labels and scores."""
import json
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

import hogsvm
from hogsvm.sklearn import HogSvmClassifier

from test_sklearn import data

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def hogsvm_bin(env):
    """The CLI the tests run: $HOGSVM_BIN, else the release build under $CARGO_TARGET_DIR
    (relative to the repository root), else under target/ (as scripts/hogsvm_bin.sh finds it)."""
    if env.get("HOGSVM_BIN"):
        return env["HOGSVM_BIN"]
    target = os.path.join(ROOT, env.get("CARGO_TARGET_DIR") or "target")
    return os.path.join(target, "release", "hogsvm")


BIN = hogsvm_bin(os.environ)


def test_the_cli_is_found_under_cargo_target_dir():
    """Defect class: with CARGO_TARGET_DIR set, the tests looked for the CLI in ./target."""
    assert hogsvm_bin({"HOGSVM_BIN": "/x/hogsvm", "CARGO_TARGET_DIR": "/t"}) == "/x/hogsvm"
    assert hogsvm_bin({"CARGO_TARGET_DIR": "/t"}) == "/t/release/hogsvm"
    assert hogsvm_bin({}) == os.path.join(ROOT, "target", "release", "hogsvm")


def cli(*args):
    p = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


def image_folder(tmp, x, y):
    """root/<label>/<i>.png, so the CLI's class names (sorted folder names) are str(label)."""
    root = tmp / "images"
    for i, (im, label) in enumerate(zip(x, y)):
        d = root / str(label)
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(d / f"{i:04d}.png")
    return root


def cli_predictions(model, root):
    rows = json.loads(cli("predict", "--model", model, root, "--format", "json"))
    idx = [int(os.path.basename(r["file"]).split(".")[0]) for r in rows]
    order = np.argsort(idx)
    return [rows[i]["label"] for i in order], np.array([rows[i]["score"] for i in order])


def test_python_trained_model_is_read_by_the_cli(tmp_path):
    x, y, xt, yt = data(1000, 200)
    clf = HogSvmClassifier(cell=4, block=2, pca=32, c=1.0).fit(x, y)
    acc = clf.score(xt, yt)
    assert acc > 0.6, acc
    path = tmp_path / "m.safetensors"
    clf.save(path)
    root = image_folder(tmp_path, xt, yt)
    report = json.loads(cli("eval", "--model", path, "--data", root, "--json"))
    assert report["accuracy"] == pytest.approx(acc, abs=0)
    labels, scores = cli_predictions(path, root)
    assert labels == [str(v) for v in clf.predict(xt)]
    s = clf.decision_function(xt)
    want = s[np.arange(len(s)), clf.predict(xt)]
    np.testing.assert_allclose(scores, want, rtol=1e-6, atol=1e-6)
    # The settings went through: 32 PCA components, the SVM's input.
    assert hogsvm.load(path).kind == "classical"


@pytest.mark.parametrize("kind", ["classical", "cnn"])
def test_load_gives_the_cli_predictions(tmp_path, kind):
    _, _, xt, yt = data(10, 120)
    model = tmp_path / f"{kind}.safetensors"
    train = ["train", "--data", os.path.join(ROOT, "fixtures", "fashion-mnist"), "--out", model,
             "--threads", "2"]
    if kind == "cnn":
        train += ["--model", "cnn", "--epochs", "1", "--channels", "8", "--hidden", "none"]
    else:
        train += ["--cell", "4", "--block", "2"]
    cli(*train)
    root = image_folder(tmp_path, xt, yt)
    labels, scores = cli_predictions(model, root)
    m = hogsvm.load(model)
    assert m.kind == kind and m.input_shape == (28, 28)
    pred = m.predict(xt)
    assert [m.class_names[i] for i in pred] == labels
    s = m.scores(xt)
    got = s[np.arange(len(s)), pred]
    np.testing.assert_allclose(got, scores, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["classical", "cnn"])
def test_onnx_export_runs_in_onnxruntime_with_the_models_scores(tmp_path, kind):
    ort = pytest.importorskip("onnxruntime")  # scripts/python_tests.sh installs it
    x, y, xt, _ = data(600, 100)
    if kind == "classical":
        m = HogSvmClassifier(cell=4, block=2, pca=32, c=1.0).fit(x, y).model_
    else:
        path = tmp_path / "cnn.safetensors"
        cli("train", "--data", os.path.join(ROOT, "fixtures", "fashion-mnist"), "--out", path,
            "--threads", "2", "--model", "cnn", "--epochs", "1", "--channels", "8",
            "--hidden", "none")
        m = hogsvm.load(path)
    onnx = tmp_path / "m.onnx"
    m.export_onnx(onnx)
    feed = m.onnx_input(xt)
    assert list(feed) == (["hog"] if kind == "classical" else ["pixels"])
    x_in = next(iter(feed.values()))
    assert x_in.dtype == np.float32 and x_in.shape[0] == len(xt)
    sess = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))
    scores = out["scores"] if kind == "classical" else out["probabilities"]
    np.testing.assert_allclose(scores, m.scores(xt), atol=1e-4, rtol=0)
    assert (scores.argmax(1) == m.predict(xt)).all()
    if kind == "classical":
        assert (out["label"] == m.predict(xt)).all()
    # A fixed batch size is written as asked.
    m.export_onnx(onnx, batch=len(xt))
    sess = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[0] == len(xt)


def test_bad_inputs_are_value_errors(tmp_path):
    x, y, _, _ = data(50, 1)
    with pytest.raises(ValueError, match="uint8"):
        HogSvmClassifier().fit(x.astype(np.float32), y)
    with pytest.raises(ValueError, match="pca"):
        HogSvmClassifier(pca="lots").fit(x, y)
    with pytest.raises(ValueError):
        hogsvm.load(tmp_path / "missing.safetensors")


def tinted(x, seed):
    """Gray images as RGB, each tinted by a random colour: (n, H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    tint = rng.uniform(0.3, 1.0, (len(x), 1, 1, 3))
    return np.ascontiguousarray((x[..., None] * tint).astype(np.uint8))


@pytest.mark.parametrize("trained_by", ["python", "cli"])
def test_colour_model_predict_equals_the_cli_on_the_same_files(tmp_path, trained_by):
    x, y, xt, yt = data(400, 60)
    x, xt = tinted(x, 1), tinted(xt, 2)
    path = tmp_path / "rgb.safetensors"
    if trained_by == "python":
        HogSvmClassifier(cell=4, block=2, pca=16).fit(x, y).save(path)
    else:
        cli("train", "--data", image_folder(tmp_path / "train", x, y), "--test-split", "0.2",
            "--out", path, "--cell", "4", "--block", "2", "--threads", "2")
    root = image_folder(tmp_path, xt, yt)  # RGB PNGs: lossless, the pixels Python holds
    labels, scores = cli_predictions(path, root)
    m = hogsvm.load(path)
    assert m.channels == 3 and m.input_shape == (28, 28)
    pred = m.predict(xt)
    assert [m.class_names[i] for i in pred] == labels
    s = m.scores(xt)
    np.testing.assert_allclose(s[np.arange(len(s)), pred], scores, rtol=1e-6, atol=1e-6)
    # The one rule for the other kind: gray images are repeated into RGB, in Python as in the CLI.
    gray = xt.mean(axis=3).astype(np.uint8)
    g = m.predict(gray)
    np.testing.assert_array_equal(g, m.predict(np.repeat(gray[..., None], 3, axis=3)))


def test_default_hog_follows_the_image_size():
    x, y, _, _ = data(60, 10)
    big = np.repeat(np.repeat(x, 4, axis=1), 4, axis=2)  # 112x112
    m = HogSvmClassifier(pca="none").fit(big, y).model_
    # As `train`'s: cell = max(3, round(112 * 3 / 28)) = 12, so 9 cells across and 7x7 blocks of
    # 3x3 cells of 9 orientations (3,969 values), not the 28x28 default's 3-pixel cells.
    assert m.onnx_input(big[:2])["hog"].shape == (2, 3969)
    small = HogSvmClassifier(pca="none").fit(x, y).model_
    assert small.onnx_input(x[:2])["hog"].shape == (2, 3969)  # 3-pixel cells at 28x28
