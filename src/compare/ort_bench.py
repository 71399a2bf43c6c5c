# onnxruntime's side of `hogsvm compare` (src/compare/ort.rs runs it with the Python that
# --ort-python names, embedded in the binary): load the exported graph, feed the test set's
# graph input in batches (throughput, after one untimed warm-up batch) and one image at a time
# (latency, after one untimed warm-up call), as compare times hogsvm, on the same thread count.
# usage: python -c "$SCRIPT" MODEL.onnx INPUT.npy SCORES_OUT.npy BATCH SAMPLES THREADS
# prints one JSON line.
import json
import sys
import time

import numpy as np
import onnxruntime as ort

model, inp, out, batch, samples, threads = sys.argv[1:7]
batch, samples, threads = int(batch), int(samples), int(threads)
so = ort.SessionOptions()
so.intra_op_num_threads = threads
so.inter_op_num_threads = 1
so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
graph_in = sess.get_inputs()[0]
names = [o.name for o in sess.get_outputs()]
score_name = "scores" if "scores" in names else "probabilities"
x = np.load(inp).astype(np.float32, copy=False)
shape = [x.shape[0]] + [int(d) for d in graph_in.shape[1:]]
x = np.ascontiguousarray(x.reshape(shape))
n = x.shape[0]
chunks = [x[s : s + batch] for s in range(0, n, batch)]
sess.run([score_name], {graph_in.name: chunks[0]})
t = time.perf_counter()
scores = [sess.run([score_name], {graph_in.name: c})[0] for c in chunks]
batch_seconds = time.perf_counter() - t
np.save(out, np.concatenate(scores).astype(np.float32))
singles = [x[i % n : i % n + 1] for i in range(samples)]
sess.run([score_name], {graph_in.name: singles[0]})
lat = []
for s in singles:
    t = time.perf_counter()
    sess.run([score_name], {graph_in.name: s})
    lat.append((time.perf_counter() - t) * 1e3)
print(
    json.dumps(
        {
            "version": ort.__version__,
            "threads": threads,
            "batch_seconds": batch_seconds,
            "latency_ms": lat,
        }
    )
)
