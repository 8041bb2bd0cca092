"""A local cluster for development and tests: real ``tf.distribute.Server`` processes on loopback.

    ctrcvr train --local-cluster workers=2,ps=1 ...      # train.distribution: parameter_server

    with LocalCluster(workers=2, ps=2) as cluster:      # in Python
        train(spec, data_dir, model_dir, cluster=cluster.resolver())

Each worker and parameter server is a subprocess (``python -m ctrcvr.cluster serve ...``, the same
interpreter, environment and ``PYTHONPATH``) that starts a gRPC server on a free 127.0.0.1 port and
joins it; the coordinator (the ``chief`` task) is the calling process. Every child is killed when the
``with`` block ends, on success, error or Ctrl-C, and a child exits by itself when its parent dies
(it watches its parent pid), so no server outlives the run. No address other than 127.0.0.1 is used.

On a real cluster each task is started with its own ``TF_CONFIG`` instead (docs/distributed.md).
"""
from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Optional

from transforms.errors import UserError

log = logging.getLogger("ctrcvr")
LOOPBACK = "127.0.0.1"
JOBS = ("worker", "ps")


def parse_local_cluster(text: str) -> dict[str, int]:
    """``"workers=2,ps=1"`` -> ``{"worker": 2, "ps": 1}`` (a clear error for anything else)."""
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
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs = []

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def resolver(self):
        """The coordinator's cluster resolver (task ``chief``/0)."""
        import tensorflow as tf
        return tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(self.spec), rpc_layer="grpc", task_type="chief", task_id=0)


def _listening(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, int(port))) == 0


def serve(spec: dict, job: str, index: int, parent: Optional[int] = None) -> None:
    """A child's body: a gRPC server for task ``job``/``index``, until killed or the parent dies."""
    if parent:
        threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()
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
