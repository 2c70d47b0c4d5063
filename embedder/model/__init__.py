"""The inference path: text → tokens → Transformer → Pooling → Normalize → a vector, the classic ST folder
format, and where base models are found. Imports nothing from data/, eval/ or train/."""
