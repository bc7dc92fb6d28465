"""The processes one training run trains with, and the stop check they agree on."""

from __future__ import annotations

from typing import Any

from trainer_kit.control import StopFlag, TrainingCancelled


class Distributed:
    """The processes this one trains with; ``world_size`` 1 means no process group."""

    def __init__(self, device: Any, rank: int = 0, world_size: int = 1) -> None:
        self.device = device
        self.rank = rank
        self.world_size = world_size

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_sum(self, values: list[float]) -> list[float]:
        if self.world_size == 1:
            return values
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return [float(v) for v in tensor.tolist()]

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any of them."""
        if self.world_size == 1:
            return flag
        import torch
        import torch.distributed as dist

        tensor = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item())


def check_stop(stop: StopFlag, dist: Distributed) -> None:
    """The batch-boundary check, agreed between the ranks."""
    if dist.any(stop.stop_requested):
        stop.check()
        raise TrainingCancelled("another training process stopped")
