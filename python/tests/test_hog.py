"""hogsvm.hog against skimage.feature.hog: same numbers (1e-5), shapes, dtypes and errors.

Run by scripts/python_tests.sh (part of the README's test command). scikit-image's arctan2 is
NumPy's: that script turns NumPy's AVX-512 code off, whose arctan2 is an ulp off the C library's
on gradients that lie exactly on a bin edge (docs/BENCHMARKS.md, "Bin edges and NumPy's arctan2").
"""
import itertools
import zlib

import numpy as np
import pytest
from skimage.feature import hog as sk_hog

import hogsvm

NORMS = ["L1", "L1-sqrt", "L2", "L2-Hys"]
TOL = 1e-5


def random_image(rng, shape, dtype):
    if dtype == np.uint8:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if dtype == np.uint16:
        return rng.integers(0, 65536, shape, dtype=np.uint16)
    if dtype == np.int32:
        return rng.integers(0, 1000, shape).astype(np.int32)
    if dtype == bool:
        return rng.random(shape) > 0.5
    return rng.random(shape).astype(dtype)


def assert_same(image, **kw):
    want = sk_hog(image, **kw)
    got = hogsvm.hog(image, **kw)
    if kw.get("visualize"):
        (want, want_vis), (got, got_vis) = want, got
        assert got_vis.shape == want_vis.shape
        np.testing.assert_allclose(got_vis, want_vis, atol=1e-4, rtol=0)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    if want.size:
        assert np.abs(got.astype(np.float64) - want).max() <= TOL


CASES = list(itertools.product(
    [np.uint8, np.uint16, np.int32, bool, np.float32, np.float64],
    NORMS,
    [False, True],
))


@pytest.mark.parametrize("dtype,norm,sqrt", CASES)
def test_random_images_match_skimage(dtype, norm, sqrt):
    rng = np.random.default_rng(zlib.crc32(f"{np.dtype(dtype).name} {norm} {sqrt}".encode()))
    for _ in range(6):
        rows, cols = rng.integers(12, 60, 2)
        ppc = tuple(int(v) for v in rng.integers(2, 9, 2))
        cpb = tuple(int(v) for v in rng.integers(1, 4, 2))
        orientations = int(rng.integers(1, 19))
        rgb = bool(rng.integers(0, 2))
        shape = (rows, cols, 3) if rgb else (rows, cols)
        image = random_image(rng, shape, dtype)
        kw = dict(orientations=orientations, pixels_per_cell=ppc, cells_per_block=cpb,
                  block_norm=norm, transform_sqrt=sqrt, channel_axis=-1 if rgb else None)
        if rows // ppc[0] < cpb[0] or cols // ppc[1] < cpb[1]:
            with pytest.raises(ValueError):
                sk_hog(image, **kw)
            with pytest.raises(ValueError):
                hogsvm.hog(image, **kw)
            continue
        assert_same(image, **kw)
        assert_same(image, feature_vector=False, **kw)


def test_defaults_visualize_and_channel_axis_first():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (48, 40), dtype=np.uint8)
    assert_same(img)
    assert_same(img, visualize=True, pixels_per_cell=(6, 5), cells_per_block=(2, 2))
    rgb = rng.integers(0, 256, (3, 30, 33), dtype=np.uint8)
    assert_same(rgb, channel_axis=0, pixels_per_cell=(5, 5), cells_per_block=(2, 2))


def test_edge_gradients_match_skimage():
    """Pixel pairs whose square roots have the ratio sqrt(3) put gradients exactly on bin edges."""
    rng = np.random.default_rng(2)
    vals = np.array([0, 1, 3, 9, 27, 61, 183, 255, 4, 12], np.uint8)
    for n in (6, 9, 12, 18):
        img = rng.choice(vals, size=(30, 27))
        for dtype in (np.uint8, np.float64):
            assert_same(img.astype(dtype), orientations=n, pixels_per_cell=(3, 3),
                        cells_per_block=(2, 2), block_norm="L1", transform_sqrt=True)


def test_non_contiguous_and_negative_strides():
    rng = np.random.default_rng(3)
    big = rng.integers(0, 256, (64, 80), dtype=np.uint8)
    for view in (big[::2, ::3], big[::-1, ::-1], big.T, np.asfortranarray(big)):
        assert_same(view, pixels_per_cell=(4, 4), cells_per_block=(2, 2))


def test_errors_like_skimage_and_nan_refused():
    img = np.zeros((16, 16), np.uint8)
    for kw in (dict(pixels_per_cell=(16, 16), cells_per_block=(3, 3)),  # too small
               dict(channel_axis=None, image=np.zeros((16, 16, 3), np.uint8))):  # 3-D, no axis
        image = kw.pop("image", img)
        with pytest.raises(ValueError):
            sk_hog(image, **kw)
        with pytest.raises(ValueError):
            hogsvm.hog(image, **kw)
    with pytest.raises(ValueError, match="block_norm"):
        hogsvm.hog(img, block_norm="L3")
    bad = np.zeros((32, 32), np.float64)
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        hogsvm.hog(bad)


def test_batch_is_bit_identical_to_single_calls_for_any_n_jobs():
    rng = np.random.default_rng(4)
    for dtype, shape in ((np.uint8, (13, 28, 28)), (np.float32, (9, 31, 29, 3)), (np.float64, (7, 20, 24))):
        imgs = random_image(rng, shape, dtype)
        kw = dict(pixels_per_cell=(4, 4), cells_per_block=(2, 2), transform_sqrt=True)
        singles = np.stack([hogsvm.hog(im, channel_axis=-1 if len(shape) == 4 else None, **kw)
                            for im in imgs])
        for n_jobs in (None, 1, 2, 3):
            batch = hogsvm.hog_batch(imgs, n_jobs=n_jobs, **kw)
            assert batch.dtype == np.float32
            assert np.array_equal(batch.astype(singles.dtype), singles), n_jobs
            same = hogsvm.hog_batch(imgs, n_jobs=n_jobs, dtype=None, **kw)
            assert same.dtype == singles.dtype and np.array_equal(same, singles), n_jobs
    with pytest.raises(ValueError):
        hogsvm.hog_batch(np.zeros((2, 28, 28), np.uint8), n_jobs=0)


def test_batch_into_out_gives_the_same_rows_and_checks_the_buffer(tmp_path):
    rng = np.random.default_rng(5)
    imgs = random_image(rng, (11, 28, 28), np.uint8)
    kw = dict(pixels_per_cell=(4, 4), cells_per_block=(2, 2))
    want = hogsvm.hog_batch(imgs, **kw)
    out = np.full(want.shape, np.nan, np.float32)
    for n_jobs in (1, 2):
        got = hogsvm.hog_batch(imgs, n_jobs=n_jobs, out=out, **kw)
        assert got is out and np.array_equal(out, want), n_jobs
    # A memory-mapped file filled in chunks holds the same rows.
    mm = np.lib.format.open_memmap(tmp_path / "f.npy", mode="w+", dtype=np.float32, shape=want.shape)
    for lo in range(0, len(imgs), 4):
        hogsvm.hog_batch(imgs[lo:lo + 4], out=mm[lo:lo + 4], **kw)
    mm.flush()
    assert np.array_equal(np.load(tmp_path / "f.npy"), want)
    bad = {
        "float32": np.zeros(want.shape, np.float64),
        "shape": np.zeros((10, want.shape[1]), np.float32),
        "features": np.zeros((11, want.shape[1] + 1), np.float32),
        "C-contiguous": np.zeros((want.shape[1], 11), np.float32).T,
    }
    for what, buf in bad.items():
        with pytest.raises(ValueError, match=what):
            hogsvm.hog_batch(imgs, out=buf, **kw)
    frozen = np.zeros(want.shape, np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        hogsvm.hog_batch(imgs, out=frozen, **kw)
    with pytest.raises(ValueError, match="float32"):
        hogsvm.hog_batch(imgs, out=out, dtype=np.float64, **kw)


def test_calls_with_changing_parameters_reuse_nothing_stale():
    # The extension keeps the last call's extractor and the wrapper its checked arguments; a
    # loop that changes parameters (or passes unhashable lists) must still get each call's own.
    rng = np.random.default_rng(6)
    imgs = random_image(rng, (4, 24, 32), np.uint8)
    kws = [dict(pixels_per_cell=(4, 4), cells_per_block=(2, 2)),
           dict(pixels_per_cell=[8, 4], cells_per_block=[1, 2], orientations=7),
           dict(pixels_per_cell=(4, 4), cells_per_block=(2, 2), block_norm="L1", transform_sqrt=True),
           dict(pixels_per_cell=(4, 4), cells_per_block=(2, 2))]
    for kw in kws * 2:
        for im in imgs:
            got = hogsvm.hog(im, **kw)
            want = sk_hog(im, **kw)
            assert got.dtype == want.dtype == np.float64 and got.shape == want.shape
            assert np.abs(got - want).max() <= 1e-5, kw
            # The general path (a float copy of the same pixels) gives the same numbers.
            same = hogsvm.hog(im.astype(np.float64), **kw)
            assert np.abs(same - got).max() <= 1e-6, kw
    with pytest.raises(ValueError, match="pixels_per_cell"):
        hogsvm.hog(imgs[0], pixels_per_cell=(4,))
    assert hogsvm.hog(imgs[0], pixels_per_cell=(4, 4), cells_per_block=(2, 2)).shape == want.shape


def test_hostile_dtypes_and_thread_counts():
    """Defect classes: a big-endian float32 image gave float64 features; an integer output
    dtype truncated every feature to 0; n_jobs=20000 started 20000 threads."""
    rng = np.random.default_rng(3)
    im = rng.random((32, 32), dtype=np.float32)
    native = hogsvm.hog(im)
    big = hogsvm.hog(im.astype(">f4"))
    assert big.dtype == np.float32 and np.array_equal(big, native)
    batch = np.stack([im, im])
    assert np.array_equal(hogsvm.hog_batch(batch.astype(">f4"), dtype=None)[0], native)
    for bad in (np.int8, np.uint8, np.int64, bool):
        with pytest.raises(ValueError, match="floating-point"):
            hogsvm.hog_batch(batch, dtype=bad)
    with pytest.warns(RuntimeWarning, match="n_jobs"):
        rows = hogsvm.hog_batch(batch, n_jobs=20000)
    assert np.array_equal(rows, hogsvm.hog_batch(batch, n_jobs=1))
