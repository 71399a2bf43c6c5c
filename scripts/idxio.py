"""IDX files (MNIST / Fashion-MNIST layout) for the scripts: read raw or gzip, write raw."""
import gzip
import os

import numpy as np


def idx_file(folder, split, kind, who="idxio"):
    """The `split`-`kind` IDX file in `folder`, gzipped or raw, e.g. ("t10k", "images-idx3");
    exits with an error line naming the script `who` when neither is there."""
    base = os.path.join(folder, f"{split}-{kind}-ubyte")
    for p in (base + ".gz", base):
        if os.path.exists(p):
            return p
    raise SystemExit(f"{who}: error: {base}[.gz] not found")


def read_idx(path):
    """The array stored in an IDX file (unsigned bytes), gzip detected from the name."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def write_idx(path, arr):
    """Write `arr` (cast to uint8) as a raw IDX file."""
    arr = np.ascontiguousarray(arr, np.uint8)
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape))
        f.write(arr.tobytes())
