"""The live profiler: run real training / inference steps of a model in a child process, measure time,
memory, FLOPs (and energy on NVIDIA GPUs), and put the measurements next to the estimator's predictions.

Nothing here imports torch in the calling process; the child imports it. See docs/profiler.md.

    from costmodel.profiler import ProfileRequest, start_profile, run_profile
"""

from .request import STATUSES, ProfileRequest, ProfileResult
from .runner import RunHandle, attach, available_memory_bytes, lock_holder, load_results, predict, run_profile, \
    save_result, start_profile

__all__ = ["STATUSES", "ProfileRequest", "ProfileResult", "RunHandle", "attach", "available_memory_bytes",
           "lock_holder", "load_results", "predict", "run_profile", "save_result", "start_profile"]
