"""A local cluster for development and tests: real TensorFlow processes on loopback.

    ctrcvr train --local-cluster workers=2,ps=1 ...      # train.distribution: parameter_server
    ctrcvr train --local-cluster workers=2 ...           # train.distribution: multi_worker_mirrored

    with LocalCluster(workers=2, ps=2) as cluster:      # in Python
        train(spec, data_dir, model_dir, cluster=cluster.resolver())
    with LocalWorkers(workers=2) as workers:
        workflow.train(config, data_dir, model_dir, cluster=workers)

**parameter_server** (:class:`LocalCluster`): each worker and parameter server is a subprocess
(``python -m ctrcvr.cluster serve ...``, the same interpreter, environment and ``PYTHONPATH``) that starts
a gRPC server on a free 127.0.0.1 port and joins it; the coordinator (the ``chief`` task) is the calling
process.

**multi_worker_mirrored** (:class:`LocalWorkers`): every worker runs the same program, so each is a
``python -m ctrcvr.cli train`` subprocess with its own ``TF_CONFIG`` (the resolved config, data dir and
model dir of the caller), started fresh so that it creates the strategy before any other TensorFlow op.
Worker 0 writes the model dir; the others keep scratch copies, deleted when they finish. Worker 0's log
is relayed as it is, the others run at ``--log-level WARNING`` and what they print is prefixed with
``[worker i]``. The calling process only waits: when one worker fails the others are stopped (they would
wait for it in the next all-reduce) and its error is raised.

Every child is killed when the ``with`` block ends, on success, error or Ctrl-C, and a child exits by
itself when its parent dies (it watches its parent pid), so no process outlives the run. No address other
than 127.0.0.1 is used.

On a real cluster each task is started with its own ``TF_CONFIG`` instead (docs/distributed.md).
"""
from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

from transforms.errors import UserError

log = logging.getLogger("ctrcvr")
LOOPBACK = "127.0.0.1"
JOBS = ("worker", "ps")
PARENT_ENV = "CTRCVR_PARENT_PID"  # a `ctrcvr` child of a local cluster exits when this process is gone
CLI_ERROR = "ctrcvr train: error: "


def parse_local_cluster(text: str) -> dict[str, int]:
    """``"workers=2,ps=1"`` -> ``{"worker": 2, "ps": 1}``, ``"workers=2"`` -> ``{"worker": 2, "ps": 0}``
    (a clear error for anything else)."""
    counts = {"worker": 0, "ps": 0}
    names = {"workers": "worker", "worker": "worker", "ps": "ps"}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        if key.strip() not in names or not value.strip().isdigit():
            raise UserError(f"expected workers=N,ps=M (e.g. workers=2,ps=1), got {text!r}", key="--local-cluster")
        counts[names[key.strip()]] = int(value)
    if counts["worker"] < 1:
        raise UserError(f"a local cluster needs at least one worker, got {text!r}", key="--local-cluster")
    return counts


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class LocalCluster:
    """``workers`` worker and ``ps`` parameter-server processes on loopback, a ``chief`` entry for this one."""

    def __init__(self, workers: int = 2, ps: int = 1, start_timeout: float = 120.0):
        self.spec = {"chief": [f"{LOOPBACK}:{free_port()}"],
                     "worker": [f"{LOOPBACK}:{free_port()}" for _ in range(workers)]}
        if ps:
            self.spec["ps"] = [f"{LOOPBACK}:{free_port()}" for _ in range(ps)]
        self._timeout = start_timeout
        self._procs: list[subprocess.Popen] = []

    def __enter__(self) -> "LocalCluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": os.environ.get(
            "TF_CPP_MIN_LOG_LEVEL", "2"), "TF_USE_LEGACY_KERAS": "1"}
        env.pop("TF_CONFIG", None)
        for job in JOBS:
            for index in range(len(self.spec.get(job, []))):
                self._procs.append(subprocess.Popen(
                    [sys.executable, "-m", "ctrcvr.cluster", "serve", json.dumps(self.spec), job, str(index),
                     str(os.getpid())], env=env, stdin=subprocess.DEVNULL))
        addresses = [a for job in JOBS for a in self.spec.get(job, [])]
        deadline = time.time() + self._timeout
        for proc, address in zip(self._procs, addresses):
            while not _listening(address):
                if proc.poll() is not None:
                    raise RuntimeError(f"local cluster: the server for {address} exited with {proc.returncode}")
                if time.time() > deadline:
                    raise TimeoutError(f"local cluster: no server listening on {address} after {self._timeout:.0f}s")
                time.sleep(0.1)
        log.info("local cluster up: %s", ", ".join(f"{len(v)} {k}" for k, v in self.spec.items()))

    def stop(self) -> None:
        """Kills every child (terminate, then kill after 5 s); idempotent."""
        if self._procs:
            _release_remote_functions()
        _stop(self._procs)
        self._procs = []

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def resolver(self):
        """The coordinator's cluster resolver (task ``chief``/0)."""
        import tensorflow as tf
        return tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(self.spec), rpc_layer="grpc", task_type="chief", task_id=0)


class LocalWorkers:
    """``workers`` multi_worker_mirrored training processes on loopback (see the module docstring)."""

    def __init__(self, workers: int = 2):
        if workers < 1:
            raise UserError(f"a local cluster needs at least one worker, got {workers}", key="--local-cluster")
        self.spec = {"worker": [f"{LOOPBACK}:{free_port()}" for _ in range(workers)]}
        self._procs: list[subprocess.Popen] = []
        self._stopping = threading.Event()

    def __enter__(self) -> "LocalWorkers":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def tf_config(self, index: int) -> str:
        return json.dumps({"cluster": self.spec, "task": {"type": "worker", "index": index}})

    def train(self, config, data_dir, model_dir, overwrite: bool = False, warm_start_from=None) -> None:
        """Runs ``ctrcvr train`` in every worker on ``config`` (resolved) and waits for all of them; raises
        ``UserError`` (a worker's own one-line error when it printed one) if any fails."""
        from ctrcvr.config import dump_config
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        level = level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO"
        with tempfile.TemporaryDirectory(prefix="ctrcvr-workers-") as tmp:
            resolved = dump_config(config, Path(tmp) / "config.yaml")
            command = [sys.executable, "-m", "ctrcvr.cli", "train", "--config", str(resolved),
                       "--data-dir", str(data_dir), "--model-dir", str(model_dir)]
            command += ["--overwrite"] * overwrite + (["--warm-start", str(warm_start_from)] if warm_start_from else [])
            errors: dict[int, str] = {}
            relays = []
            self._stopping.clear()
            for index in range(len(self.spec["worker"])):
                env = {**os.environ, "TF_CONFIG": self.tf_config(index), PARENT_ENV: str(os.getpid()),
                       "CUDA_VISIBLE_DEVICES": "", "TF_USE_LEGACY_KERAS": "1",
                       "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
                proc = subprocess.Popen([*command, "--log-level", level if index == 0 else "WARNING"], env=env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True, errors="replace")
                self._procs.append(proc)
                relays.append(threading.Thread(target=self._relay, args=(proc, index, errors), daemon=True))
                relays[-1].start()
            log.info("local cluster up: %d multi_worker_mirrored workers (%s)", len(self._procs),
                     ", ".join(self.spec["worker"]))
            failed = self._wait()
            if failed is not None:
                self.stop()
            else:
                log.info("local cluster: all %d workers finished", len(self._procs))
            for relay in relays:
                relay.join(timeout=5)
        if failed is not None:
            index, code = failed
            reason = errors.get(index) or f"exited with code {code} (its output is above)"
            raise UserError(f"local cluster worker {index}: {reason}", key="--local-cluster")
        self._procs = []

    def _wait(self) -> Optional[tuple[int, int]]:
        """Until every worker exits: None when all succeeded, else (index, code) of the first that failed."""
        while True:
            codes = [p.poll() for p in self._procs]
            failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                self._stopping.set()  # the others' reaction (a lost peer) is noise: no longer relayed
                return failed[0]
            if all(c == 0 for c in codes):
                return None
            time.sleep(0.2)

    def _relay(self, proc: subprocess.Popen, index: int, errors: dict) -> None:
        prefix = "" if index == 0 else f"[worker {index}] "
        for line in proc.stderr:
            if line.startswith(CLI_ERROR):
                errors[index] = line[len(CLI_ERROR):].strip()
                continue
            if not self._stopping.is_set():
                sys.stderr.write(prefix + line)
                sys.stderr.flush()

    def stop(self) -> None:
        """Kills every worker (terminate, then kill after 5 s); idempotent."""
        self._stopping.set()
        _stop(self._procs)
        self._procs = []

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]


def _release_remote_functions() -> None:
    """Drops this process's strategies and Keras state and collects them while the servers still run: each
    function TensorFlow registered on the workers is unregistered when it is collected, which after the
    servers are gone logs an error per function and task ("Failed to remove function remotely")."""
    import gc
    if "tensorflow" not in sys.modules:
        return
    distribute = sys.modules.get("trainer.distribute")
    if distribute is not None:
        distribute._STRATEGIES.clear()
    import tf_keras
    tf_keras.backend.clear_session()
    gc.collect()


def _stop(procs: list) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def exit_with_parent_from_env() -> None:
    """In a ``ctrcvr`` child of :class:`LocalWorkers`: exit when the launching process is gone."""
    parent = os.environ.get(PARENT_ENV)
    if parent and parent.isdigit():
        threading.Thread(target=_exit_when_orphaned, args=(int(parent),), daemon=True).start()


def _listening(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, int(port))) == 0


def serve(spec: dict, job: str, index: int, parent: Optional[int] = None) -> None:
    """A child's body: a gRPC server for task ``job``/``index``, until killed or the parent dies."""
    if parent:
        threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()
    from ctrcvr.console import import_tensorflow_quietly
    import_tensorflow_quietly()  # the native libraries' start-up lines, as in the CLI
    import tensorflow as tf
    server = tf.distribute.Server(tf.train.ClusterSpec(spec), job_name=job, task_index=index, protocol="grpc",
                                  start=True)
    server.join()


def _exit_when_orphaned(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(1.0)


if __name__ == "__main__":  # python -m ctrcvr.cluster serve <spec json> <job> <index> [<parent pid>]
    if len(sys.argv) < 5 or sys.argv[1] != "serve":
        sys.exit("usage: python -m ctrcvr.cluster serve <cluster spec json> <job> <index> [<parent pid>]")
    serve(json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]) if len(sys.argv) > 5 else None)
