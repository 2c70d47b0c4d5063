"""Run in the clients' venv (tests/clients/setup.sh): load an exported folder as each client does and print, as
JSON, the largest difference from the reference embeddings and whether ST exported anything itself.

    python load_exported.py FOLDER REFERENCE.json INT8_FILE DIM
"""

import json
import logging
import sys

import numpy as np

folder, reference, int8_file, dim = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
texts = json.load(open(reference))["texts"]
want = np.array(json.load(open(reference))["embeddings"], dtype=np.float32)
records = []


class Keep(logging.Handler):
    def emit(self, record):
        records.append(record.getMessage())


logging.getLogger().addHandler(Keep())
from fastembed import TextEmbedding  # noqa: E402
from fastembed.common.model_description import ModelSource, PoolingType  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

out = {}
out["st_torch"] = float(np.abs(SentenceTransformer(folder, device="cpu").encode(texts) - want).max())
out["st_onnx"] = float(np.abs(SentenceTransformer(folder, backend="onnx", device="cpu").encode(texts) - want).max())
int8 = SentenceTransformer(folder, backend="onnx", device="cpu", model_kwargs={"file_name": int8_file}).encode(texts)
out["st_int8_min_cosine"] = float(((int8 * want).sum(1) / np.linalg.norm(int8, axis=1)).min())
out["st_exported"] = [m for m in records if "Exporting" in m or "No 'model.onnx' found" in m]
TextEmbedding.add_custom_model(model="local/exported", pooling=PoolingType.MEAN, normalization=True,
                               sources=ModelSource(hf="local/exported"), dim=dim, model_file="onnx/model.onnx")
got = np.array(list(TextEmbedding(model_name="local/exported", specific_model_path=folder).embed(texts)))
out["fastembed"] = float(np.abs(got - want).max())
print(json.dumps(out))
