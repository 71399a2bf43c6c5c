"""Compare two hogsvm model files: every tensor byte for byte and the metadata key by key.

Model files of format version 1 and 2 differ only in the version and the checksum's scope (and
so its value); this prints what else differs, if anything, and exits 1 when something does.
With --ignore-envelope, `format_version`, `crc32` and `hogsvm_version` are not compared.

usage: python model_diff.py OLD.safetensors NEW.safetensors [--ignore-envelope]
"""
import json
import struct
import sys


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = json.loads(header.pop("__metadata__")["hogsvm"])
    body = data[8 + n:]
    tensors = {k: (v["dtype"], v["shape"], body[v["data_offsets"][0]:v["data_offsets"][1]])
               for k, v in header.items()}
    return meta, tensors


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    ignore = "--ignore-envelope" in sys.argv
    (m1, t1), (m2, t2) = read(args[0]), read(args[1])
    diffs = []
    if ignore:
        for m in (m1, m2):
            for k in ("format_version", "crc32", "hogsvm_version"):
                m.pop(k, None)
    for k in sorted(set(m1) | set(m2)):
        if m1.get(k) != m2.get(k):
            diffs.append(f"metadata `{k}`: {m1.get(k)!r} != {m2.get(k)!r}")
    for k in sorted(set(t1) | set(t2)):
        if t1.get(k) != t2.get(k):
            diffs.append(f"tensor `{k}` differs")
    for d in diffs:
        print(d)
    print(f"{args[0]} vs {args[1]}: {len(t1)} tensors, {len(diffs)} differences")
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
