"""Where a CPU training step's time goes: torch.profiler over steps 2-3 of a real run (the first step warms up).

    python benchmarks/profile_step_cpu.py --base all-mpnet-base-v2 --precision auto --batch-size 20

Trains on the embedded default data (the main job's data), no evaluation, and prints the profiler's
table of operators by self CPU time. Never run as a test.
"""

import sys
import tempfile
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@click.command()
@click.option("--base", default="all-mpnet-base-v2")
@click.option("--precision", default="auto")
@click.option("--batch-size", default=20, type=int)
@click.option("--rows", default=15, type=int, help="operators to print")
@click.option("--train", "train_data", default="stdlib:train", help="training data (default: the main job's)")
@click.option("--dims", default="auto", help="Matryoshka dims: auto, none or a comma list")
@click.option("--shapes", is_flag=True, help="group the table by input shapes")
def main(base, precision, batch_size, rows, train_data, dims, shapes):
    import torch
    from torch.profiler import ProfilerActivity, profile

    import embedder
    import embedder.train.run
    from embedder.cli import parse_dims
    profiler = profile(activities=[ProfilerActivity.CPU], record_shapes=shapes)

    def hook(step):
        if step == 1:
            profiler.start()
        elif step == 3:
            profiler.stop()

    with tempfile.TemporaryDirectory() as tmp:
        config = embedder.TrainConfig(base=base, train=(train_data,), eval=(), output=f"{tmp}/m", max_steps=3,
                                      batch_size=batch_size, precision=precision,
                                      matryoshka_dims=parse_dims(dims))
        result = embedder.train.run.train(config, echo=lambda *a, **k: None, step_hook=hook)
    print(f"{base}, batch {batch_size}, precision {result.config.precision} ({result.config.precision_reason}), "
          f"{torch.get_num_threads()} threads; steps 2-3 of {train_data}\n")
    print(profiler.key_averages(group_by_input_shape=shapes).table(sort_by="self_cpu_time_total", row_limit=rows,
                                                                   max_name_column_width=30, max_shapes_column_width=90))


if __name__ == "__main__":
    main()
