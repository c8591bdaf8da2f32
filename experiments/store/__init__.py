"""Store: the SQLite results store (every run a row, written atomically, resumable) and the executors
that run populations (inline, local worker processes, submitit/SLURM). Imports only ``models``."""

from .._faces import lazy

PUBLIC = {"ResultsStore": "results", "ExecutorOptions": "executors"}
__all__ = sorted(PUBLIC)
__getattr__, __dir__ = lazy(__name__, PUBLIC)
