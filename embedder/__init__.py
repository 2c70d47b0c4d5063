"""embedder: fine-tune sentence-embedding models with the results of sentence-transformers, in plain PyTorch.

    import embedder
    model = embedder.load("all-mpnet-base-v2")      # a folder, a packaged base model, or a hub name
    vectors = model.encode(["What rights do people have?"])   # float32 numpy, (n, dim)
    model.save("out/my-model")                      # a folder sentence-transformers loads
"""

__version__ = "0.1.0"

from .errors import UserError  # noqa: E402
from .pipeline import Embedder, load  # noqa: E402

__all__ = ["Embedder", "UserError", "load", "__version__"]
