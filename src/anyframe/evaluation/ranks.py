"""One evaluation on several processes: under ``torchrun`` / ``accelerate launch --multi_gpu`` (``RANK`` and
``WORLD_SIZE`` set), process r of n generates and scores cases r, r + n, r + 2n, ... of the suite (round robin by
case index, as ``generate --batch`` shares its lines); rank 0 gathers every case's entry, puts them back in case
order and aggregates, so the report is the one a single process writes (a case's seed is the run's seed plus the
case's, whatever the number of processes). Only rank 0 writes.

How the ranks exchange their cases: over ``torch.distributed`` on gloo, not through part files in the output
folder. Both would work on one machine; gloo is the more robust of the two because

- it needs no file system shared by the ranks (the ranks of a several-machine launch often have none);
- nothing can be mistaken for this run's results: part files left by a killed or earlier run in the same folder
  would have to be told apart from this run's (a run id the ranks agree on needs a channel between them anyway);
- nobody polls: a rank blocks in the collective until the others arrive, and a rank that dies takes the launch
  down (torchrun stops the other ranks), where rank 0 would wait forever for a part file that never comes.

Its one trap is the collective's timeout (gloo's default, 30 minutes, is shorter than the time a rank may wait for
a slower one over a long suite): the group is made with :data:`TIMEOUT`. The launchers set ``MASTER_ADDR`` and
``MASTER_PORT`` for the group's rendezvous.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from anyframe.errors import AnyframeInputError
from anyframe.pipelines.batch import shard

T = TypeVar("T")

# How long a rank waits for the others at a gather (each model's share of the suite): a rank that finished its share
# waits for the slowest, possibly hours on a big model and suite. A dead rank does not make the others wait this
# long: the launcher stops them.
TIMEOUT = timedelta(hours=24)


@dataclass
class Ranks:
    """This process's place among the processes of one evaluation (``rank`` of ``world``); the default is one
    process. :meth:`from_env` joins the launch's processes."""

    rank: int = 0
    world: int = 1
    group: Any = None  # the gloo process group (None: one process)
    owned: bool = False  # this object started torch.distributed, and ends it in close()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Ranks:
        """The processes of a ``torchrun`` / ``accelerate launch`` run (``RANK``, ``WORLD_SIZE``; see
        :func:`anyframe.pipelines.batch.shard`), connected by a gloo group; one process otherwise."""
        rank, world = shard()
        if world == 1:
            return cls()
        import torch.distributed as dist

        if dist.is_initialized():  # (a caller's group, maybe NCCL: objects travel on a gloo group of our own)
            group = dist.group.WORLD if dist.get_backend() == "gloo" else dist.new_group(backend="gloo", timeout=TIMEOUT)
            return cls(dist.get_rank(), dist.get_world_size(), group)
        missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
        if missing:
            raise AnyframeInputError(f"RANK and WORLD_SIZE are set but not {' and '.join(missing)}: run several "
                                     "processes with torchrun or accelerate launch --multi_gpu")
        if os.environ["MASTER_PORT"] == "0":  # (torchrun --master_port 0: the ranks would wait for each other forever)
            raise AnyframeInputError("MASTER_PORT is 0: give torchrun a port (--master_port N) or --standalone")
        dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world, timeout=TIMEOUT)
        return cls(rank, world, dist.group.WORLD, owned=True)

    def device(self, device: str) -> str:
        """``cuda`` on several processes → this process's own GPU (``cuda:LOCAL_RANK``); any other as given."""
        if device == "cuda" and self.world > 1:
            return f"cuda:{int(os.environ.get('LOCAL_RANK', self.rank))}"
        return device

    def share(self, items: Sequence[T]) -> list[T]:
        """This process's items: r, r + n, r + 2n, ..."""
        return list(items[self.rank::self.world])

    def gather(self, value: T) -> list[T] | None:
        """Every process's ``value``, in rank order, on rank 0; ``None`` on the others."""
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        values = [None] * self.world if self.is_main else None
        dist.gather_object(value, values, dst=0, group=self.group)
        return values

    def close(self) -> None:
        if self.owned:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.owned = False


def merge_shares(shares: Sequence[Sequence[T]]) -> list[T]:
    """The inverse of the ranks' :meth:`Ranks.share`: ``shares[r]`` holds items r, r + n, ... of one sequence
    (n = ``len(shares)``); returns that sequence, in its order."""
    n, total = len(shares), sum(len(s) for s in shares)
    if any(len(s) != len(range(r, total, n)) for r, s in enumerate(shares)):
        raise ValueError(f"shares of sizes {[len(s) for s in shares]} are not a round robin of {total} items")
    return [shares[i % n][i // n] for i in range(total)]
