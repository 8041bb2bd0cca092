"""Gradient aggregation: one MirroredStrategy step on two replicas equals the single-process step (every
estimator's loss is a batch mean and the optimiser sums the replicas' gradients: the model divides).

ParameterServerStrategy on a real local cluster (2 workers, 2 parameter servers, gRPC servers in
subprocesses on 127.0.0.1): ESMM and Multi-DR train with their embedding tables sharded over both
parameter servers, export, and pass serve-check; their eval metrics are within noise of the same
estimator trained in one process on the same data."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tensorflow.python.distribute.sharded_variable import ShardedVariable

from ctrcvr import workflow
from ctrcvr.cluster import LocalCluster
from ctrcvr.config import load_config
from ctrcvr.serving.check import serve_check
from tests.conftest import DEFAULT_CONFIG, REPO
from trainer.data import TrainingData
from trainer.distribute import describe_placement, make_strategy
from trainer.train import build_model, load_trained_model, train

SMALL = ["simulate.n_exposures=8000", "simulate.n_users=300", "simulate.n_items=200", "simulate.chunk_rows=8000",
         "preprocess.num_shards=2", "simulate.ctr=0.15", "train.epochs=2", "train.batch_size=256", "train.learning_rate=0.02", "model.tower.units=[32,16]",
         "train.distribute.min_shard_bytes=1024", "export.warmup_examples=4"]
# AUC tolerance: async PS updates from two workers visit the batches in another order than one process; on
# ≈ 1.6k eval rows (≈ 240 clicks) the CTR AUC's standard error is ≈ 0.03 (sqrt(AUC(1 − AUC) / clicks)): two
# seeds of one estimator differ by about that, so 2 standard errors. Seen: 0.712 vs 0.708 (esmm), 0.704 vs 0.708.
AUC_TOLERANCE = 0.06
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (INFO|DEBUG) [\w.]+: ")  # the CLI's own INFO lines


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("distributed")
    config = load_config(DEFAULT_CONFIG, SMALL)
    return config, workflow.prepare_data(config, tmp / "data"), tmp


def _auc(labels, scores):
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    pos = labels == 1
    return (ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum())


def _ctr_auc(model, spec, data_dir):
    ds = TrainingData(spec, data_dir).dataset("eval", 4096)
    clicks, scores = [], []
    for batch in ds:
        clicks.append(batch[spec.labels.selection].numpy().reshape(-1))
        scores.append(model.predict_named(batch)["pctr"].numpy())
    return _auc(np.concatenate(clicks), np.concatenate(scores))


def _variant(config, estimator, backbone="mlp"):
    """The module's config for ``estimator`` on ``backbone`` (every other key as it is)."""
    model = config.model.switch_to(estimator)
    if backbone != "mlp":
        model = type(model)(**{**model.model_dump(), "backbone": backbone})
    return config.model_copy(update={"model": model})


# ESMM and Multi-DR on the MLP towers; ESMM on DCN-v2 (a per-tower backbone: tfrs Cross layers) and on MMoE (one
# per-group layer: shared experts, a gate per tower): with min_shard_bytes=1024 their cross and expert kernels
# (80×80, 80×64 floats) are sharded over the two parameter servers like the tables
@pytest.mark.parametrize("estimator,backbone", [("esmm", "mlp"), ("multi_dr", "mlp"), ("esmm", "dcn"),
                                                ("esmm", "mmoe")])
def test_parameter_server_shards_tables_trains_exports(data, cluster, estimator, backbone):
    config, data_dir, tmp = data
    config = _variant(config, estimator, backbone)
    ps_config = config.model_copy(update={"train": config.train.model_copy(update={"distribution": "parameter_server"})})
    spec, ps_spec = workflow.trainer_spec(config), workflow.trainer_spec(ps_config)

    strategy = make_strategy(ps_spec.train, cluster.resolver())
    with strategy.scope():
        _, sharded, _ = build_model(ps_spec, data_dir)
    placement = describe_placement(sharded)
    user = placement["embedding/user_id"]
    assert len(set(user)) == 2 and all("/job:ps/" in d for d in user), placement
    assert isinstance(sharded.embeddings["shared"].tables["user_id"].embeddings, ShardedVariable)
    if backbone != "mlp":  # Keras lists a sharded variable's parts: <layer>/kernel/part_0, part_1
        parts = [v.name for v in sharded.towers["ctr"].variables if "/part_1" in v.name]
        assert any(f"_{backbone}/" in n for n in parts), parts  # ctr_dcn/ctr_cross0/..., shared_mmoe/kernel_0

    name = f"{estimator}_{backbone}_ps"
    model = train(ps_spec, data_dir, tmp / name, cluster=cluster.resolver())
    assert not hasattr(model.embeddings["shared"].tables["user_id"].embeddings, "variables")  # rebuilt plain
    ps_auc, local_auc = _ctr_auc(model, spec, data_dir), _ctr_auc(_local_model(data, estimator, backbone), spec, data_dir)
    print(f"{estimator} on {backbone}: CTR AUC {ps_auc:.4f} under parameter_server, {local_auc:.4f} in one process")
    assert ps_auc > 0.55 and abs(ps_auc - local_auc) < AUC_TOLERANCE, (ps_auc, local_auc)

    version = workflow.export(ps_config, data_dir, tmp / name, tmp / "serving", model=model,
                              raw_dir=tmp / "data" / "raw")
    summary = serve_check(version)
    assert set(summary["outputs"]) >= {"pctr", "pcvr", "pctcvr"}


def test_parameter_server_workers_shuffle_in_their_own_order(data):
    """ParameterServerStrategy builds every worker's input by running one traced function, whose InputContext is
    always (1 pipeline, id 0): two workers' inputs, built the same way, must still differ (a run-time seed), and
    each must be the whole split."""
    import tensorflow as tf
    from trainer.distribute import worker_dataset
    config, data_dir, _ = data
    training = TrainingData(workflow.trainer_spec(config), data_dir)
    context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0)
    tf.keras.utils.set_random_seed(config.seed)  # as in training: a global seed does not make them equal
    first = [next(iter(worker_dataset(training, "train", 64, True, context)))["user_id_xf"].numpy().ravel()
             for _ in range(2)]
    assert not np.array_equal(*first), first
    rows = sum(len(b["user_id_xf"]) for b in worker_dataset(training, "train", 512, True, context).take(13))
    assert rows == 13 * 512  # repeated: an endless stream over every shard


def _cli(*args, timeout=300):
    """``ctrcvr`` in a subprocess, as a user runs it: (return code, stdout, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TF_CONFIG", None)
    out = subprocess.run([sys.executable, "-m", "ctrcvr.cli", *map(str, args)], capture_output=True, text=True,
                         timeout=timeout, env=env)
    return out.returncode, out.stdout, out.stderr


def _sets(overrides):
    return [x for item in overrides for x in ("--set", item)]


def _framework_noise(stderr: str) -> list[str]:
    """Lines of a CLI run's stderr that are not the CLI's own log lines: framework warnings, C++ logs."""
    return [line for line in stderr.splitlines() if line.strip() and not LOG_LINE.match(line)]


def test_multi_worker_mirrored_local_cluster_trains_exports(data):
    """`ctrcvr train --local-cluster workers=2`: two `ctrcvr train` worker processes, each with its own TF_CONFIG
    (gRPC collectives on loopback CPUs), train ESMM; worker 0's model dir is complete and its export serves.
    The 1-shard data is DATA-sharded: both workers read it in the same seeded order and each takes half of every
    global batch, so the synchronous all-reduced step is the single-process step and the model matches the one
    trained in one process (seen: identical epoch logs; |ΔAUC| < 1e-3). Tolerance 0.01, well inside the PS
    test's 0.06: only the all-reduce's floating-point order differs."""
    config, data_dir, tmp = data
    model_dir = tmp / "esmm_mwms"
    code, _, stderr = _cli("train", "--config", DEFAULT_CONFIG, *_sets(SMALL), "--data-dir", data_dir,
                           "--model-dir", model_dir, "--local-cluster", "workers=2")
    assert code == 0, stderr[-3000:]
    assert "local cluster up: 2 multi_worker_mirrored workers" in stderr
    assert "multi_worker_mirrored: task worker/0, 2 replicas in sync" in stderr
    assert "local cluster: all 2 workers finished" in stderr  # worker 1 exited 0 too
    assert "esmm epoch 2/2 done" in stderr
    assert not _framework_noise(stderr), _framework_noise(stderr)  # a clean console: worker 1 printed nothing
    resolved = load_config(model_dir / "config.resolved.yaml")
    assert resolved.train.distribution == "multi_worker_mirrored"
    assert (model_dir / "_SUCCESS").is_file() and (model_dir / "tables.json").is_file()
    assert not (model_dir / "workers").exists()  # worker 1's scratch copy of the weights is gone

    spec = workflow.trainer_spec(config)
    model = load_trained_model(spec, data_dir, model_dir)
    mwms_auc, local_auc = _ctr_auc(model, spec, data_dir), _ctr_auc(_local_model(data, "esmm"), spec, data_dir)
    print(f"esmm: CTR AUC {mwms_auc:.4f} under multi_worker_mirrored (2 workers), {local_auc:.4f} in one process")
    assert mwms_auc > 0.55 and abs(mwms_auc - local_auc) < 0.01, (mwms_auc, local_auc)
    # the logged train terms are the global batch's, as in one process (Keras sums the workers' step outputs)
    mwms_loss, local_loss = _epoch_scalars(model_dir, "loss"), _epoch_scalars(tmp / "esmm_mlp_local", "loss")
    np.testing.assert_allclose(mwms_loss, local_loss, rtol=0.01)

    version = workflow.export(resolved, data_dir, model_dir, tmp / "serving_mwms", raw_dir=tmp / "data" / "raw")
    assert set(serve_check(version)["outputs"]) >= {"pctr", "pcvr", "pctcvr"}


def test_multi_worker_mirrored_with_cache_examples_trains_the_single_process_batches(data):
    """train.cache_examples under `--local-cluster workers=2`: each worker parses the split into memory and
    draws the same seeded permutation every epoch, keeping its half of every global batch (DATA sharding),
    so the all-reduced steps are one process's steps with cache_examples: the same epoch losses. A worker
    drawing its own order would train on other batches."""
    config, data_dir, tmp = data
    cached = [*SMALL, "train.cache_examples=true"]
    model_dir = tmp / "esmm_mwms_cached"
    code, _, stderr = _cli("train", "--config", DEFAULT_CONFIG, *_sets(cached), "--data-dir", data_dir,
                           "--model-dir", model_dir, "--local-cluster", "workers=2")
    assert code == 0, stderr[-3000:]
    assert "train.cache_examples: " in stderr and "local cluster: all 2 workers finished" in stderr
    local_dir = tmp / "esmm_cached_local"
    train(workflow.trainer_spec(load_config(DEFAULT_CONFIG, cached)), data_dir, local_dir)
    mwms, local = _epoch_scalars(model_dir, "loss"), _epoch_scalars(local_dir, "loss")
    print(f"epoch losses: {mwms} under multi_worker_mirrored, {local} in one process (both cache_examples)")
    np.testing.assert_allclose(mwms, local, rtol=1e-3)


def test_parameter_server_training_killed_after_an_epoch_resumes(data):
    """`ctrcvr train --local-cluster workers=2,ps=1` is killed (SIGKILL, the coordinator: no clean-up of its own)
    once its backup holds a finished epoch; its orphaned servers exit by themselves; the same command again
    resumes from the backup: it says so, trains only the remaining epochs, and starts from the trained state
    (its first epoch's loss is below the killed run's first epoch's), then finishes the model dir."""
    _kill_and_resume(data, "esmm_ps_killed", "workers=2,ps=1", children=3)  # 2 workers + 1 parameter server


def test_multi_worker_mirrored_training_killed_after_an_epoch_resumes(data):
    """`ctrcvr train --local-cluster workers=2` (two worker processes, worker 0 the chief writing
    `<model_dir>/backup`) is killed (SIGKILL, the launcher) once the backup holds a finished epoch; both
    orphaned workers exit by themselves; the same command again resumes from the chief's backup in both
    workers: it says so, trains only the remaining epochs from the trained state, and finishes the model dir."""
    _kill_and_resume(data, "esmm_mwms_killed", "workers=2", children=2)  # the 2 workers


def _kill_and_resume(data, name: str, local_cluster: str, children: int, epochs: int = 3) -> None:
    """Runs `ctrcvr train --local-cluster <local_cluster>` for ``epochs`` epochs, SIGKILLs the launching process
    once ``<model_dir>/backup`` holds an epoch, checks its ``children`` processes exit by themselves, then runs
    the same command again and checks it resumes (see the two tests above)."""
    from ctrcvr.resume import backup_epochs
    config, data_dir, tmp = data
    model_dir = tmp / name
    command = ["train", "--config", DEFAULT_CONFIG, *_sets([*SMALL, f"train.epochs={epochs}"]), "--data-dir", data_dir,
               "--model-dir", model_dir, "--local-cluster", local_cluster]
    log = tmp / f"{name}.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "ctrcvr.cli", *map(str, command)], stdout=subprocess.DEVNULL,
                                stderr=err, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.time() + 240
        while not _backup_epochs(backup_epochs, model_dir):
            assert proc.poll() is None, f"exited with {proc.returncode} before an epoch was backed up: {log.read_text()[-2000:]}"
            assert time.time() < deadline, "no backup after 240 s"
            time.sleep(0.05)
        spawned = _children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(spawned) == children, spawned
    done = backup_epochs(model_dir)
    assert 1 <= done < epochs and not (model_dir / "_SUCCESS").exists(), done
    killed = log.read_text()
    first_loss = float(re.search(rf"esmm epoch 1/{epochs} done .*?: ctcvr=\S+ ctr=\S+ loss=(\S+) \|", killed).group(1))
    deadline = time.time() + 15
    while any(Path(f"/proc/{pid}").exists() and not _zombie(pid) for pid in spawned):
        assert time.time() < deadline, f"children {spawned} outlived the killed launcher"
        time.sleep(0.2)

    code, _, stderr = _cli(*command)
    assert code == 0, stderr[-3000:]
    assert f"resuming the unfinished training in {model_dir} from its backup ({done} epoch(s) done)" in stderr, stderr
    trained = re.findall(rf"esmm epoch (\d)/{epochs} done .*?: ctcvr=\S+ ctr=\S+ loss=(\S+) \|", stderr)
    assert [int(e) for e, _ in trained] == list(range(done + 1, epochs + 1)), trained  # epoch 1 not trained again
    assert float(trained[0][1]) < first_loss, (trained, first_loss)  # continued from the backed-up weights
    assert (model_dir / "_SUCCESS").is_file() and backup_epochs(model_dir) is None  # Keras deletes the backup
    assert "Traceback" not in stderr and not _framework_noise(stderr), _framework_noise(stderr)
    print(f"{local_cluster}: killed after {done} epoch(s) (epoch 1 loss {first_loss}); resumed: {trained}")


def _backup_epochs(backup_epochs, model_dir) -> int:
    try:
        return backup_epochs(model_dir) or 0
    except Exception:  # noqa: BLE001 (a checkpoint being written)
        return 0


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _epoch_scalars(model_dir, term: str, kind: str = "train") -> list[float]:
    """The per-epoch ``epoch_<term>`` values training wrote to ``<model_dir>/tensorboard/<kind>``."""
    import tensorflow as tf
    values = {}
    for events in sorted((Path(model_dir) / "tensorboard" / kind).glob("events.*")):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            for value in event.summary.value:
                if value.tag == f"epoch_{term}":
                    values[event.step] = float(tf.make_ndarray(value.tensor))
    return [values[k] for k in sorted(values)]


_LOCAL: dict = {}


def _local_model(data, estimator, backbone="mlp"):
    """The estimator trained in one process on the module's data (once per module)."""
    config, data_dir, tmp = data
    if (estimator, backbone) not in _LOCAL:
        config = _variant(config, estimator, backbone)
        _LOCAL[estimator, backbone] = train(workflow.trainer_spec(config), data_dir, tmp / f"{estimator}_{backbone}_local")
    return _LOCAL[estimator, backbone]


@pytest.fixture(scope="module")
def cluster():
    """Real servers for the whole module, left running at its end: this process's TensorFlow context keeps
    functions registered on them until the interpreter exits, and unregistering them from servers already
    stopped logs one gRPC error per function. The servers watch this process and exit with it."""
    running = LocalCluster(workers=2, ps=2)
    try:
        running.start()
    except BaseException:
        running.stop()
        raise
    yield running


@pytest.mark.parametrize("estimator", ["esmm", "joint_learning_dr"])  # one update per step, and two
def test_mirrored_step_equals_the_single_process_step(estimator):
    script = Path(__file__).with_name("mirrored_step.py")
    out = subprocess.run([sys.executable, str(script), estimator], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT")), None)
    assert line, out.stderr[-2000:]
    moved, diff, logged = (float(part.split("=")[1]) for part in line.split()[1:])
    assert moved > 1e-3 and diff < 1e-6 * max(1.0, moved), line
    assert logged < 1e-5, line  # the logs are the batch's terms, not the sum of the replicas' means
