"""What the cost benchmarks share: bytes saved for backward, timed training steps, peak memory, fresh processes.

`maml_cost.py` and `blackbox_cost.py` run each configuration in a fresh process (so that its peak resident
memory is its own) from a code string that imports this module.
"""

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parent


class SavedBytes:
    """A pack hook for `torch.autograd.graph.saved_tensors_hooks` that adds up the bytes of each saved tensor once."""

    def __init__(self):
        self.seen, self.total = set(), 0

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        try:
            key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        except (RuntimeError, NotImplementedError):  # a functorch wrapper without storage: count it each time
            key = object()
        if key not in self.seen:
            self.seen.add(key)
            self.total += t.numel() * t.element_size()
        return t

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)


def adam_step(parameters, loss_of):
    """`step(batch)`: one training step with Adam (learning rate 1e-3) on the tensor `loss_of(batch)`."""
    optimizer = torch.optim.Adam(parameters, lr=1e-3)

    def step(batch):
        loss = loss_of(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def timed_steps(step, batches: list, n_steps: int, device: torch.device) -> tuple[float, float]:
    """Mean milliseconds of `step(batch)` over `n_steps` steps, and the peak memory in MB during them
    (on a GPU: allocated memory; on a CPU: the process's peak resident memory, data included)."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(n_steps):
        step(batches[i % len(batches)])
    if cuda:
        torch.cuda.synchronize()
    ms = 1000 * (time.perf_counter() - start) / n_steps
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return ms, peak


def in_fresh_process(code: str, *args) -> dict:
    """Run `code` in a new Python process that can import this module; its last output line is a JSON object."""
    out = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(BENCHMARKS)!r})\n{code}",
                          *map(str, args)], check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(result, flush=True)
    return result
