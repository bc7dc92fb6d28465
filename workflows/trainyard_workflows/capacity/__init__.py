"""What admission may hand out: the GPUs trainers may use and the CPU-only runs at a time.

The worker discovers it (`local.py` on one machine, `kubernetes.py` from the cluster's nodes)
and reports it to the backend (`reporter.py`), which refuses a job that could never fit
(`never_fits`) and queues the others (docs/operations.md, "Capacity, queues and quotas").
"""

from trainyard_workflows.capacity.model import Capacity, never_fits

__all__ = ["Capacity", "never_fits"]
