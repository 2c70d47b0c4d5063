"""embedder: fine-tune sentence-embedding models with the results of sentence-transformers, in plain PyTorch.

    import embedder
    model = embedder.load("all-mpnet-base-v2")      # a folder, a packaged base model, or a hub name
    vectors = model.encode(["What rights do people have?"])   # float32 numpy, (n, dim)
    model.save("out/my-model")                      # a folder sentence-transformers loads

    result = embedder.fit(base="all-MiniLM-L6-v2", train=[("a question", "its passage"), ...], eval="val.json",
                          output="out/finetuned", epochs=1, batch_size=16)   # TrainConfig's fields as keywords
    result.model, result.metrics
"""

import importlib

from . import runtime

runtime.configure_openmp()  # before torch loads (embedder/runtime.py)

from .errors import UserError  # noqa: E402
from .model.embedder import Embedder, load  # noqa: E402
from .version import __version__  # noqa: E402

_TRAINING = {"fit": "train.run", "TrainingResult": "train.run", "TrainConfig": "train.config"}


def __getattr__(name: str):
    """The training API, imported on first use: the one lazy import of the package, so that `embedder.load` and
    encoding never import embedder/train/."""
    if name in _TRAINING:
        return getattr(importlib.import_module(f".{_TRAINING[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Embedder", "TrainConfig", "TrainingResult", "UserError", "fit", "load", "__version__"]
