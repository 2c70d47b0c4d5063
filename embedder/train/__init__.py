"""A fine-tuning run: its configuration, the loop, the losses, checkpoints, the forgetting check and merge,
the model card, the console. Imports every layer below it."""
