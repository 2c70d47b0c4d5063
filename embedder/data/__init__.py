"""Training and evaluation data: the file formats, the data-set specs, the embedded default data set, the
validation set held out by passage, the batches, hard-negative mining. Imports model/ and nothing above."""
