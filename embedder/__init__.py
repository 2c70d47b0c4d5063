"""embedder: fine-tune sentence-embedding models with the results of sentence-transformers, in plain PyTorch.

    import embedder
    model = embedder.load("all-mpnet-base-v2")      # a folder, a packaged base model, or a hub name
    vectors = model.encode(["What rights do people have?"])   # float32 numpy, (n, dim)
    model.save("out/my-model")                      # a folder sentence-transformers loads

    result = embedder.fit(base="all-MiniLM-L6-v2", train=[("a question", "its passage"), ...], eval="val.json",
                          output="out/finetuned", epochs=1, batch_size=16)   # TrainConfig's fields as keywords
    result.model, result.metrics
"""

__version__ = "0.1.0"

from .errors import UserError  # noqa: E402
from .pipeline import Embedder, load  # noqa: E402

_TRAINING = {"fit": "recipe", "TrainingResult": "training_end", "TrainConfig": "train_config"}


def __getattr__(name: str):
    """The training API, imported on first use (so `python -m embedder.data` and friends run without it)."""
    if name in _TRAINING:
        import importlib
        return getattr(importlib.import_module(f".{_TRAINING[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Embedder", "TrainConfig", "TrainingResult", "UserError", "fit", "load", "__version__"]
