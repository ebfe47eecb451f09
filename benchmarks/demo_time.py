"""Wall time of the main job (`nmcompile demo`) per stage, and its accuracies, as JSON.

    .venv/bin/python benchmarks/demo_time.py
"""

import json
import os
import tempfile
import time

import torch

from nmcompile.demo import run_demo

if __name__ == "__main__":
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        summary = run_demo(out, log=lambda _: None)
    print(json.dumps({
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "seconds_total": round(time.perf_counter() - start, 2),
        "seconds_per_stage": summary["seconds"],
        "test_accuracy": summary["test_accuracy"],
    }))
