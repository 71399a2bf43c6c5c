"""The JSON golden files of make_stats_golden.py and make_svm_golden.py: one layout (sorted keys,
indent 1, a final newline), so that a regenerated file diffs cleanly against the committed one."""
import json
import os


def write_golden(folder, name, obj):
    """Write `obj` to `folder`/`name` in the golden layout; returns the path written."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")
    return os.path.normpath(path)
