"""Several processes (torchrun, DistributedDataParallel): the environment and the group
that takes the steps one process would."""
from __future__ import annotations

import os


def dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) as torchrun sets them; (0, 1, 0) in a plain process."""
    env = os.environ
    return (int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)),
            int(env.get("LOCAL_RANK", 0)))


class _Group:
    """This process's place among torchrun's: one process is rank 0 of 1 and needs nothing;
    several join a process group (NCCL on CUDA, each on cuda:LOCAL_RANK; gloo on the CPU)."""

    def __init__(self, device: str):
        import torch
        self.rank, self.world, local = dist_env()
        self.device, self.owned = device, False
        if self.world == 1:
            return
        import torch.distributed as dist
        if not dist.is_available():
            raise RuntimeError("this torch has no torch.distributed: run one process")
        if device.startswith("cuda"):
            self.device = f"cuda:{local}"
            torch.cuda.set_device(self.device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
            self.owned = True

    def broadcast(self, values: list[float]) -> list[float]:
        """Rank 0's ``values`` on every rank (decisions taken on rank 0's clock)."""
        if self.world == 1:
            return values
        import torch
        import torch.distributed as dist
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.broadcast(t, 0)
        return t.tolist()

    def broadcast_object(self, obj):
        if self.world == 1:
            return obj
        import torch.distributed as dist
        box = [obj if self.rank == 0 else None]
        dist.broadcast_object_list(box, 0)
        return box[0]

    def mean_(self, t):
        """``t`` averaged over the ranks, in place."""
        if self.world > 1:
            import torch.distributed as dist
            dist.all_reduce(t)
            t /= self.world
        return t

    def close(self, clean: bool = True) -> None:
        if self.owned:
            import gc
            import torch.distributed as dist
            # the run's DistributedDataParallel wrapper (its reducer holds the group) may live
            # on in reference cycles after the loop returns: free it while the group exists,
            # not at interpreter exit after the group is gone
            gc.collect()
            if clean:
                dist.barrier()          # rank 0's last checkpoint is on disk for everyone
            dist.destroy_process_group()
