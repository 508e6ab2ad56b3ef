"""costmodel: what a deep-learning model costs to train and to serve.

    >>> import costmodel
    >>> est = costmodel.estimate("llama-2-7b", hardware="a100-sxm-80gb", task="train", batch=1, seq=4096)
    >>> est.params.total
    6738415616
"""

from .api import estimate
from .cache import cache_stats, clear_caches
from .errors import InputError
from .models import list_presets, load_model
from .workload import OPTIMIZERS, PRECISIONS, Workload

__all__ = ["estimate", "cache_stats", "clear_caches", "InputError", "list_presets", "load_model", "Workload", "PRECISIONS", "OPTIMIZERS"]
__version__ = "0.1.0"
