"""Where populations train: ``inline`` (this process), ``local`` (N worker processes on this
machine) or ``submitit`` (a SLURM job array, or submitit's local subprocesses where there is no
SLURM).

One writer, pure workers. A *job* is plain data (JSON types only, so that nothing is pickled that
another version could not read back): what to train, the settings, and where the data is — a file
path with its SHA-256 (verified on the worker) or (recipe, seed) to regenerate. A worker returns
rows; only the driver writes the results store, as each job finishes. So killing a worker loses
its job only, and killing the driver loses nothing stored (``--resume`` submits what is missing).

Faults: a job whose worker dies (SIGKILL, out of memory, pre-emption, time limit, ``scancel``) is
retried once; if it fails again the sweep ends with one line naming its populations and its log.
"""

from __future__ import annotations

import importlib
import math
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from synth.errors import SynthError
from synth.params import Interval, Param

EXECUTORS = ("inline", "local", "submitit")
_LIVE_STATES = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED", "STAGE_OUT",
                "SIGNALING", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}
SLURM_PARAMS = {p.name: p for p in (
    Param("partition", str, None, None, "setting", optional=True, help="SLURM partition"),
    Param("gpus_per_job", int, None, Interval(0, 1024), "setting", optional=True, help="GPUs per job"),
    Param("cpus_per_job", int, None, Interval(1, 4096), "setting", optional=True, help="CPUs per job"),
    Param("time", int, None, Interval(1, 60 * 24 * 365), "setting", optional=True,
          help="time limit per job, minutes"),
    Param("array_parallelism", int, None, Interval(1, 10**6), "setting", optional=True,
          help="jobs of an array running at once"),
)}
SLURM_KEYS = tuple(SLURM_PARAMS) + ("sbatch_lines",)
WORKERS = Param("workers", int, None, Interval(1, 4096), "setting", optional=True,
                help="local: worker processes; submitit: jobs running at once")


def check_slurm_options(values: dict, owner: str = "SLURM options") -> dict:
    """SLURM options checked like every other value (one line naming the bad one)."""
    if not isinstance(values, dict):
        raise SynthError(f"{owner} must be a table")
    unknown = set(values) - set(SLURM_KEYS)
    if unknown:
        raise SynthError(f"{owner}: unknown key(s) {', '.join(sorted(unknown))}; valid: {', '.join(SLURM_KEYS)}")
    out = {k: SLURM_PARAMS[k].check(v, owner) for k, v in values.items() if k != "sbatch_lines"}
    if out.get("partition") is not None and not out["partition"].strip():
        raise SynthError(f"{owner}: partition = '' is not valid: expected a partition name")
    if "sbatch_lines" in values:
        lines = values["sbatch_lines"]
        if not isinstance(lines, list) or not all(isinstance(x, str) and x.strip() and "\n" not in x for x in lines):
            raise SynthError(f"{owner}: sbatch_lines = {lines!r} is not valid: expected a list of non-empty "
                             "one-line strings, e.g. [\"module load cuda\"]")
        out["sbatch_lines"] = list(lines)
    return out


@dataclass
class ExecutorOptions:
    kind: str = "inline"
    workers: int | None = None  # local: processes (default: one per CUDA device, else per CPU core); submitit: jobs at once
    log_dir: Path = Path("results/logs")
    slurm: dict = field(default_factory=dict)  # partition, gpus_per_job, cpus_per_job, time (minutes), ...

    def __post_init__(self):
        if self.kind not in EXECUTORS:
            raise SynthError(f"unknown executor {self.kind!r}; use one of {', '.join(EXECUTORS)}")
        if self.workers is not None:
            try:
                self.workers = WORKERS.check(self.workers)
            except SynthError:
                raise SynthError(f"--workers must be an integer >= 1, got {self.workers!r}") from None
        self.slurm = check_slurm_options(self.slurm)
        if self.slurm and self.kind != "submitit":
            raise SynthError("SLURM options need --executor submitit")
        if self.kind == "inline" and self.workers not in (None, 1):
            raise SynthError("--workers needs --executor local or submitit")


def slurm_available() -> bool:
    """sbatch on the PATH (``SPHERE_SYNTH_NO_SLURM=1`` forces submitit's local fallback)."""
    return shutil.which("sbatch") is not None and not os.environ.get("SPHERE_SYNTH_NO_SLURM")


def describe(opts: ExecutorOptions) -> str:
    if opts.kind == "inline":
        return "executor inline (this process)"
    if opts.kind == "local":
        return f"executor local: {n_workers(opts)} worker process(es) on this machine"
    where = "SLURM (sbatch)" if slurm_available() else "submitit's local subprocesses (no sbatch on this machine)"
    return f"executor submitit: {where}, at most {n_workers(opts)} job(s) at once, logs in {opts.log_dir}"


CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity mask (a SLURM allocation, ``taskset``), capped by a
    cgroup CPU quota (a container limited to fewer cores than the host shows; ``os.cpu_count`` sees
    the host's)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()
        if quota != "max":
            n = min(n, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):  # no cgroup v2 file here, or one we cannot read
        pass
    return max(1, n)


def memory_gib() -> int | None:
    """This machine's physical memory in whole GiB (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**30
    except (AttributeError, ValueError, OSError):
        return None


def n_workers(opts: ExecutorOptions) -> int:
    """The default: one local worker per CUDA device, else one per usable CPU core, each training
    with one thread (small models: one population per core beats one spread over the cores, and
    the sweep has hundreds of independent populations), at most one per GiB of memory (a worker of
    ``make reproduce`` peaks at 0.45 GB); submitit: 2 jobs at once unless told."""
    if opts.workers:
        return opts.workers
    import torch

    if torch.cuda.is_available():
        return max(1, torch.cuda.device_count())
    if opts.kind != "local":
        return 2
    cores, gib = usable_cpus(), memory_gib()
    return max(1, cores if gib is None else min(cores, gib))


# ----------------------------------------------------------------------------- the worker side
def work(job: dict) -> dict:
    """Run one job in a worker; returns {"rows": [...], "done": bool}. A pure function of ``job``.

    A job names what runs it, ``"run": "experiments.MODULE:FUNCTION"``: the executors import no
    module that sends them work (no import cycle), and a job stays plain data."""
    import torch

    threads = job.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    if job.get("cuda_device") is not None and torch.cuda.is_available():
        torch.cuda.set_device(int(job["cuda_device"]))
    module, _, function = str(job.get("run", "")).partition(":")
    if not module.startswith("experiments.") or not function:
        raise SynthError(f"a job must name experiments.MODULE:FUNCTION to run, got {job.get('run')!r}")
    return getattr(importlib.import_module(module), function)(job)


def _die_with_parent() -> None:
    """A local worker's initializer: the kernel kills it when the driver dies (even by kill -9),
    so no orphaned worker trains on for nobody (Linux; elsewhere the pool's own shutdown applies)."""
    import ctypes
    import signal

    # Ctrl-C reaches the whole process group: the driver alone answers it (Runner.abort ends the
    # workers), so a worker does not print a traceback of its own
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the driver died before prctl took effect
        os._exit(1)


def dataset_ref(ds, folder) -> dict:
    """How a worker finds a dataset: its file and checksum, or its recipe and seed."""
    ref = {"name": ds.name, "seed": ds.seed, "recipe": ds.recipe.to_dict(), "path": None}
    if folder is not None:
        from synth import datasets

        ref["path"] = str(Path(folder).resolve() / datasets.file_name(ds.name, ds.seed))
    return ref


def load_ref(ref: dict):
    """The dataset of a ``dataset_ref``: read and verified against its manifest (SHA-256, arrays,
    recipe), or regenerated from (recipe, seed); either way it must follow the recipe sent."""
    from synth import datasets

    if ref["path"] is not None:
        ds = datasets.load(Path(ref["path"]))
        if ds.recipe.to_dict() != ref["recipe"]:
            raise SynthError(f"{ref['path']} no longer holds the recipe the driver verified")
        return ds
    return datasets.generate(datasets.Recipe.from_dict(ref["recipe"]), ref["seed"])


# ----------------------------------------------------------------------------- the driver side
class Runner:
    """Runs jobs on an executor; ``submit(job, on_done)`` and ``wait()``; retries a dead job once."""

    def __init__(self, opts: ExecutorOptions, device):
        self.opts = opts
        self.device = device
        self.pending: list = []  # (handle, job, on_done, attempt)
        self.failures: list = []
        self.workers = n_workers(opts) if opts.kind != "inline" else 1
        if opts.kind == "local":
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool_factory = lambda: ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                             initializer=_die_with_parent)
            self.pool = self._pool_factory()
        elif opts.kind == "submitit":
            self.pool = self._submitit_executor()

    def _threads(self) -> int:
        return max(1, usable_cpus() // self.workers)

    def _submitit_executor(self):
        import logging

        import submitit

        logging.getLogger("submitit").setLevel(logging.ERROR)
        try:
            self.opts.log_dir.mkdir(parents=True, exist_ok=True)
            probe = self.opts.log_dir / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise SynthError(f"cannot write the log folder {self.opts.log_dir}: {e.strerror or e}") from None
        cluster = "slurm" if slurm_available() else "local"
        if cluster == "slurm" and subprocess.run(["sacct", "-n", "-j", "1"], capture_output=True).returncode != 0:
            # No accounting database (sacct fails on every call): stop submitit asking; whether a job
            # finished comes from its result file, and whether it died from squeue (see _finished).
            from submitit.slurm.slurm import SlurmJob

            SlurmJob.watcher._make_command = lambda: None
        ex = submitit.AutoExecutor(folder=str(self.opts.log_dir / "%j"), cluster=cluster)
        s = self.opts.slurm
        params = {"timeout_min": int(s.get("time", 60 * 24)), "cpus_per_task": int(s.get("cpus_per_job", self._threads()))}
        if cluster == "slurm":
            params["slurm_array_parallelism"] = int(s.get("array_parallelism", self.workers))
            if s.get("partition"):
                params["slurm_partition"] = s["partition"]
            if s.get("gpus_per_job"):
                params["slurm_gpus_per_node"] = int(s["gpus_per_job"])
            if s.get("sbatch_lines"):
                params["slurm_additional_parameters"] = {}
                params["slurm_setup"] = list(s["sbatch_lines"])
        else:
            params["local_tasks_per_node"] = 1
        ex.update_parameters(**params)
        self.cluster = cluster
        return ex

    def _prepare(self, job: dict, slot: int) -> dict:
        job = dict(job, device=str(self.device), threads=self._threads() if self.opts.kind != "inline" else None)
        if self.device.type == "cuda" and self.opts.kind == "local":
            import torch

            job["cuda_device"] = slot % max(1, torch.cuda.device_count())
        return job

    def submit(self, job: dict, on_done, attempt: int = 1) -> None:
        job = self._prepare(job, len(self.pending))
        if self.opts.kind == "inline":
            on_done(job, work(job))
            return
        if self.opts.kind == "local":
            from concurrent.futures.process import BrokenProcessPool

            try:
                handle = self.pool.submit(work, job)
            except BrokenProcessPool:  # a worker died since the last poll: the pool must be renewed first
                self._restart_pool()
                handle = self.pool.submit(work, job)
        else:
            handle = self.pool.submit(work, job)
            handle._sphere_started = time.time()
            job["log"] = str(handle.paths.stderr)
        self.pending.append((handle, job, on_done, attempt))

    def submit_many(self, jobs: list, on_done) -> None:
        """Many independent jobs: one SLURM job array through submitit; otherwise one by one."""
        if self.opts.kind == "submitit" and len(jobs) > 1:
            prepared = [self._prepare(j, i) for i, j in enumerate(jobs)]
            handles = self.pool.map_array(work, prepared)
            for h, j in zip(handles, prepared):
                h._sphere_started = time.time()
                j["log"] = str(h.paths.stderr)
                self.pending.append((h, j, on_done, 1))
            return
        for j in jobs:
            self.submit(j, on_done)

    def _finished(self, handle):
        """False while running; True when it has a result (or raised); "dead" when SLURM no longer
        runs it and it left no result (cancelled, killed, out of time)."""
        if self.opts.kind == "local":
            return handle.done()
        if handle.done():
            return True
        if self.cluster == "slurm" and time.time() - handle._sphere_started > 5:
            # No accounting database here: sacct cannot say that a cancelled job died, so ask squeue.
            q = subprocess.run(["squeue", "-h", "-j", str(handle.job_id), "-o", "%T"], capture_output=True, text=True)
            state = q.stdout.strip().upper()
            # gone from the controller (invalid id), or listed in a final state (squeue -j shows those
            # for MinJobAge): either way no result file will come
            if q.returncode != 0 or not state or state not in _LIVE_STATES:
                time.sleep(1)  # a result file written just before the job ended may still be arriving
                return True if handle.paths.result_pickle.exists() else "dead"
        return False

    def poll(self) -> bool:
        """Collect finished jobs (calling their ``on_done``); returns whether any finished.

        Outcomes are collected first and callbacks run after: a callback submits the next job, and
        if a worker died the pool is broken until it is restarted (submitting to it raised
        BrokenProcessPool and crashed the driver)."""
        from concurrent.futures.process import BrokenProcessPool

        done, broken = [], False
        for entry in list(self.pending):
            handle, job, on_done, attempt = entry
            finished = self._finished(handle)
            if not finished:
                continue
            self.pending.remove(entry)
            if finished == "dead":  # handle.result() would wait for a state that never comes (no sacct)
                done.append((entry, None, f"SLURM job {handle.job_id} ended without a result", True))
                continue
            try:
                done.append((entry, handle.result(), None, True))
            except BrokenProcessPool:  # every job of a broken pool says so: the first is charged a try
                done.append((entry, None, "its worker process died", not broken))
                broken = True
            except SynthError:
                raise
            except Exception as e:  # a job that died or raised: submitit's and the worker's own errors
                done.append((entry, None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", True))
        if broken:
            self._restart_pool()
        for (handle, job, on_done, attempt), result, why, count in done:
            if why is not None:
                self._failed(job, on_done, attempt, why, count)
            else:
                on_done(job, result)
        return bool(done)

    def _restart_pool(self):
        """A dead worker breaks the whole process pool: every job in it is resubmitted once."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._pool_factory()
        survivors = [(h, j, d, a) for h, j, d, a in self.pending]
        self.pending = []
        for _, j, d, a in survivors:
            self._failed(j, d, a, "its worker pool was restarted after another worker died", count=False)

    def _failed(self, job, on_done, attempt, why, count: bool = True):
        if attempt == 1 or not count:
            self.submit({k: v for k, v in job.items() if k not in ("device", "threads", "cuda_device", "log")}, on_done,
                        attempt + (1 if count else 0))
            return
        self.failures.append((job, why))

    def log_of(self, job) -> str:
        if self.opts.kind == "submitit":
            return str(job.get("log") or self.opts.log_dir)
        return "this terminal (local workers write to stderr)"

    def wait(self) -> None:
        while self.pending:
            if not self.poll():
                time.sleep(0.05)
        if self.failures:
            names = "; ".join(job.get("label", str(job.get("run"))) for job, _ in self.failures)
            why = self.failures[0][1]
            raise SynthError(f"{len(self.failures)} job(s) failed twice ({why}): {names}; logs: "
                             f"{self.log_of(self.failures[0][0])}; finished work is stored, rerun with --resume")

    def abort(self) -> None:
        """Stop now (Ctrl-C, SIGTERM): the jobs in flight are abandoned — their rows are never written,
        and ``--resume`` trains them again — and their workers end at once (local workers are
        killed; SLURM jobs are cancelled). Waiting for them took minutes, longer than a scheduler's
        grace period."""
        self.aborted = True
        if self.opts.kind == "local":
            for proc in list((getattr(self.pool, "_processes", None) or {}).values()):
                try:
                    proc.kill()
                except (OSError, ValueError):  # already gone
                    pass
            self.pool.shutdown(wait=False, cancel_futures=True)
        elif self.opts.kind == "submitit":
            for handle, *_ in self.pending:
                try:
                    handle.cancel(check=False)
                except Exception:  # a job that already ended, or no scancel here: nothing left to stop
                    pass
        self.pending = []

    def close(self) -> None:
        if self.opts.kind == "local" and not getattr(self, "aborted", False):
            self.pool.shutdown(wait=True, cancel_futures=True)
