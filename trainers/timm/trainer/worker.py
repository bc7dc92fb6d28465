"""One DDP training process: ``python -m torch.distributed.run … -m trainer.worker job.json``.

Started by trainer/distributed.py, never by the platform. Reads the `TrainJob` from the JSON file
named on its command line and torchrun's ``RANK``/``LOCAL_RANK``/``WORLD_SIZE``, joins the
process group (NCCL on CUDA with device ``cuda:<LOCAL_RANK>``, gloo on CPU) and trains. Rank 0
saves the checkpoints and writes ``progress.json`` after every epoch; every rank writes
``outcome-<rank>.json`` before it exits. It sends no callback.

Exit code: 0 when the outcome is ``succeeded`` or ``cancelled`` (all ranks stopped at the same
batch), 1 on failure — so torchrun stops the other ranks, which may be waiting for this one.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from trainer_kit.callbacks import CallbackRefused
from trainer_kit.control import StopFlag, TrainingCancelled, install_sigterm_handler

from trainer.distributed import write_outcome, write_progress
from trainer.engine import train
from trainer.job import EpochReport, TrainJob
from trainer.ranks import Distributed
from trainer.run import ENVIRONMENT, describe

log = logging.getLogger("trainyard.trainer.worker")


def main(argv: Sequence[str] | None = None) -> int:
    stop = StopFlag()
    install_sigterm_handler(stop)
    args = list(sys.argv[1:] if argv is None else argv)
    job_file = Path(args[0])
    folder = job_file.parent
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        stream=sys.stderr,
        format=f"%(asctime)s trainyard-trainer[rank {rank}] %(levelname)s %(name)s: %(message)s",
    )
    job = TrainJob.model_validate_json(job_file.read_text(encoding="utf-8"))
    ENVIRONMENT.prepare(job.run_dir.parent)

    import torch
    import torch.distributed as dist

    try:
        if job.cuda:
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        else:
            device = torch.device("cpu")
        dist.init_process_group(backend="nccl" if job.cuda else "gloo")

        def sink(report: EpochReport) -> None:
            write_progress(folder, report, stop)

        metrics = train(job, sink, stop, Distributed(device, rank, world_size))
    except (TrainingCancelled, CallbackRefused) as exc:
        write_outcome(folder, rank, {"status": "cancelled", "reason": describe(exc)})
        return 0
    except BaseException as exc:
        log.error("training failed", exc_info=exc)
        write_outcome(folder, rank, {"status": "failed", "reason": describe(exc)})
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    write_outcome(folder, rank, {"status": "succeeded", "metrics": metrics})
    return 0


if __name__ == "__main__":
    sys.exit(main())
