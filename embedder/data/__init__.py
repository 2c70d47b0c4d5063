"""Training and evaluation data: the file formats, the data-set specs, the embedded default data set, the
batches, hard-negative mining. Imports model/ and nothing above."""
