"""Several processes on one or more machines (launched by torchrun): who is who, and combining results.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; `join` turns them into a
process group (NCCL on GPUs, gloo on CPUs) and this process's device. Without torchrun everything
here is the single-process case and costs nothing.
"""

import os
from dataclasses import dataclass
from typing import Any, List, Sequence, Tuple, Union

import numpy as np
import torch
import torch.distributed as dist

from .errors import UnusableOptions
from .inference import resolve_device


@dataclass(frozen=True)
class Ranks:
    """This process's place among `world` processes; rank 0 writes files."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def several(self) -> bool:
        return self.world > 1

    def mine(self, index: int) -> bool:
        """Whether the `index`-th unit of work (e.g. a patient) is this process's."""
        return index % self.world == self.rank


SINGLE = Ranks()


def join(device: str = "auto") -> Tuple[Ranks, torch.device]:
    """Join the process group torchrun started; each process gets its own GPU (by LOCAL_RANK) or the CPU."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise UnusableOptions("{distributed} needs to be launched by torchrun (e.g. torchrun --nproc-per-node 2 -m "
                              "CSFNetLib.cli train ... --distributed)")
    chosen = resolve_device(device)
    if chosen.type == "cuda":
        chosen = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size()), chosen


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(ranks: Ranks) -> None:
    if ranks.several:
        dist.barrier()


def gather(value: Any, ranks: Ranks) -> List[Any]:
    """Every process's `value`, in rank order, on every process."""
    if not ranks.several:
        return [value]
    values: List[Any] = [None] * ranks.world
    dist.all_gather_object(values, value)
    return values


def share_buffers(model: torch.nn.Module, ranks: Ranks) -> None:
    """Rank 0's buffers (batch-norm statistics) on every process, so that all evaluate the same model."""
    if ranks.several:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def mean(value: float, ranks: Ranks) -> float:
    """The mean of `value` over the processes."""
    return float(sum(gather(float(value), ranks)) / ranks.world)


def share(items: Union[Sequence, np.ndarray], ranks: Ranks) -> List:
    """This process's items: every `world`-th, starting at `rank`."""
    return list(items[ranks.rank::ranks.world])
