"""The ``ctrcvr`` command line: one entry point, one subcommand per stage.

Examples:
    ctrcvr configs                                                        # the shipped configs
    ctrcvr run --config default --output-dir runs/demo                   # a shipped config by name
    ctrcvr run --config configs/default.yaml --output-dir runs/demo      # or any config file
    ctrcvr simulate --config configs/default.yaml --output-dir data/sim
    ctrcvr preprocess --config configs/default.yaml --input data/sim --output-dir data/xf
    ctrcvr train --config configs/default.yaml --data-dir data/xf --model-dir models/esmm
    ctrcvr train ... --local-cluster workers=2,ps=1                      # parameter-server training on loopback
    ctrcvr train ... --local-cluster workers=2                           # multi_worker_mirrored, 2 worker processes
    ctrcvr train ... --data-dir data/day2 --model-dir models/day2 --warm-start models/day1   # daily training
    ctrcvr evaluate --config configs/default.yaml --data-dir data/xf --model-dir models/esmm
    ctrcvr export --config configs/default.yaml --data-dir data/xf --model-dir models/esmm --export-dir serving/esmm
    ctrcvr compare --config configs/compare.yaml --output-dir runs/compare
    ctrcvr compare --config configs/c_ips.yaml --output-dir runs/c_ips    # ratings: MF / IPS / C-IPS variants
    ctrcvr tune --config configs/coat.yaml --output-dir runs/coat_tune     # grid over tune.space, MAR validation

Any config key can be overridden: --set train.batch_size=2048 --set model.name=esmm

A fault the user can fix (a bad config, file, path or value) is printed as one line,
``ctrcvr <command>: error: ...``, with exit code 2; --debug (or --log-level DEBUG) adds its traceback.
Any other exception is a bug and keeps its traceback (exit 1).
"""
from __future__ import annotations

import argparse
import errno
import json
import logging
import sys
import traceback
from pathlib import Path

import yaml

import ctrcvr  # noqa: F401  (selects Keras 2 before anything imports TensorFlow)
from ctrcvr import workflow
from ctrcvr.config import ConfigError, load_config
from transforms.errors import UserError

DEFAULT_CONFIG = "default"

# Faults of the user's input or environment, printed as one line (exit 2), besides UserError.
_USER_OS_ERRORS = (FileExistsError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
# Until every stage raises UserError, a ValueError / KeyError is still most often a bad value or name;
# they are printed as one line too, with a pointer to --debug (they may be bugs).
_LEGACY_USER_ERRORS = (ValueError, KeyError)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from ctrcvr.cluster import exit_with_parent_from_env
    exit_with_parent_from_env()  # a worker process of `--local-cluster workers=N`
    _setup_logging(args.log_level, args.command)
    try:
        config = load_config(args.config, args.set) if args.needs_config else None
        if config is not None:  # before preprocessing or training runs an op: the pools are fixed then
            from trainer.threads import apply_op_threads
            apply_op_threads(config.train)
        check_data_dir(getattr(args, "data_dir", None))
        return args.handler(args, config) or 0
    except KeyboardInterrupt:
        print(f"ctrcvr {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 (re-raised unless the user can fix it)
        if not _is_user_error(err):
            raise
        if args.debug or args.log_level == "DEBUG":
            traceback.print_exc()
        hint = "" if isinstance(err, (UserError, OSError, yaml.YAMLError)) or args.debug else " (--debug shows where)"
        print(f"ctrcvr {args.command}: error: {_one_line(err)}{hint}", file=sys.stderr)
        return 2


def _is_user_error(err: Exception) -> bool:
    return (isinstance(err, (UserError, yaml.YAMLError, *_USER_OS_ERRORS, *_LEGACY_USER_ERRORS))
            or (isinstance(err, OSError) and err.errno == errno.EADDRINUSE))


def _one_line(err: Exception) -> str:
    """An error's message on one line: ``path: reason`` for an OSError that names its file."""
    if isinstance(err, OSError) and err.strerror:  # not "[Errno 2] ..."
        target = f" -> {err.filename2}" if err.filename2 is not None else ""
        text = f"{err.filename}{target}: {err.strerror}" if err.filename is not None else err.strerror
    elif isinstance(err, KeyError) and err.args:
        text = str(err.args[0])
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ctrcvr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = {
        "run": ("simulate (if the source is simulated), preprocess, train, evaluate and export, "
                "all under --output-dir", _run, [_output_dir, _overwrite, _distributed]),
        "simulate": ("write simulated exposure and survey logs with ground truth, or MNAR + MAR ratings "
                     "triplets when data.source is simulated_ratings", _simulate, [_output_dir, _overwrite]),
        "preprocess": ("Beam + TFT: raw logs -> validated, transformed TFRecord shards + transform_fn",
                       _preprocess, [_input, _output_dir, _overwrite]),
        "train": ("train the configured estimator on preprocessed shards; re-running it on an unfinished "
                  "training of the same config resumes it from its last epoch", _train,
                  [_data_dir, _model_dir, _overwrite, _distributed]),
        "evaluate": ("evaluate a trained model on the eval split (ratings: and the MAR test split); "
                     "writes metrics.json (refused if it exists, unless --overwrite)", _evaluate,
                     [_data_dir, _model_dir, _overwrite]),
        "export": ("export a TF Serving SavedModel (raw tf.Examples in) as a new version", _export,
                   [_data_dir, _model_dir, _export_dir, _input]),
        "compare": ("train compare.models (estimator names or {label, model, set} variants) x compare.seeds "
                    "(and compare.sweeps) on the same data; mean ± std table (Markdown, CSV) and plots "
                    "under --output-dir", _compare,
                    [_output_dir, _overwrite, _reuse_data_dir]),
        "tune": ("grid or random search over the tune.space config keys, selected on the validation split; "
                 "the chosen config (chosen.yaml) evaluated once on the test split", _tune,
                 [_output_dir, _overwrite, _reuse_data_dir]),
    }
    for name, (help_text, handler, extras) in commands.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.add_argument("--config", default=DEFAULT_CONFIG,
                         help=f"a YAML config file, or the name of a shipped one (see 'ctrcvr configs'; "
                              f"default: {DEFAULT_CONFIG})")
        cmd.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override a config key, e.g. --set train.epochs=5 (repeatable)")
        _add_common_options(cmd)
        for add in extras:
            add(cmd)
        cmd.set_defaults(handler=handler, needs_config=True)
    _add_serving_commands(sub)
    configs = sub.add_parser("configs", help="list the shipped configs (usable by name: --config NAME)",
                             description="Lists the configs shipped with the package; --config NAME uses one "
                                         "from any folder, --config PATH any file.")
    configs.set_defaults(handler=_configs, needs_config=False)
    _add_common_options(configs, log_level="WARNING")
    return parser


def _add_common_options(cmd, log_level: str = "INFO") -> None:
    cmd.add_argument("--log-level", default=log_level, choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    cmd.add_argument("--debug", action="store_true",
                     help="on an error, show its traceback too (also with --log-level DEBUG)")


def _configs(_args, _config):
    from ctrcvr.config import packaged_configs
    shipped = packaged_configs()
    width = max(map(len, shipped), default=0)
    for name, path in shipped.items():
        print(f"{name:{width}s}  {_first_comment(path)}")
    print(f"\n({len(shipped)} configs in {next(iter(shipped.values())).parent if shipped else '-'})")


def _first_comment(path) -> str:
    """The first comment line of a config file: what it is for."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def _add_serving_commands(sub):
    check = sub.add_parser(
        "serve-check", help="load an export the way TF Serving does, replay its warmup requests, check outputs",
        description="Loads the SavedModel with the session loader TF Serving and saved_model_cli use, "
                    "replays each request of assets.extra/tf_serving_warmup_requests through the signature "
                    "it names, checks output names, shapes and ranges, and that signatures fed the same "
                    "rows (serving_default, predict_raw) agree.")
    check.add_argument("model_dir", help="a model base (newest version is checked) or a version directory")
    check.add_argument("--signature", default="serving_default",
                       help="a signature that must be among the replayed ones; its outputs are reported "
                            "(default: serving_default)")
    serve = sub.add_parser(
        "serve", help="DEVELOPMENT server speaking TF Serving's REST API (production: use TF Serving)",
        description="A local development server on loopback that speaks TF Serving's REST predict contract "
                    "(/v1/models/<name>[/versions/<v>]:predict, status and metadata) so clients can be "
                    "built and tested without docker. It is not a production server: serve production "
                    "traffic with tensorflow/serving (see README).")
    serve.add_argument("--model-dir", action="append", required=True,
                       help="model base directory <root>/<name> (repeatable); its name is the URL name")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=8501)
    for cmd, handler in ((check, _serve_check), (serve, _serve)):
        _add_common_options(cmd)
        cmd.set_defaults(handler=handler, needs_config=False)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port number 0-65535, got {text!r}")
    return int(text)


def _serve_check(args, _config):
    from ctrcvr.serving.check import serve_check
    try:
        summary = serve_check(args.model_dir, args.signature)
    except AssertionError as err:
        print(f"serve-check FAILED: {err}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    print(f"serve-check ok: {summary['warmup_requests']} warmup request(s), {summary['examples']} example(s), "
          f"outputs {', '.join(summary['outputs'])}")


def _serve(args, _config):
    from ctrcvr.serving.rest import serve
    serve(args.model_dir, args.host, args.port)


def _output_dir(cmd):
    cmd.add_argument("--output-dir", required=True, help="where to write (must be empty or new)")


def _overwrite(cmd):
    cmd.add_argument("--overwrite", action="store_true", help="empty a non-empty output directory first")


def _input(cmd):
    cmd.add_argument("--input", help="the simulator's output directory (when data.source is simulated: "
                                     "surveys/ when labels.task is survey; or simulated_ratings)")


def check_data_dir(value) -> None:
    """``--data-dir``: a finished preprocess output (``transform_fn/``, ``transformed_metadata/``, ``_SUCCESS``),
    checked after the config, before anything is written; a run's output dir gets a hint to its ``data/transformed``."""
    if value is None:
        return
    path = Path(value)
    if all((path / part).exists() for part in ("transform_fn", "transformed_metadata", "_SUCCESS")):
        return
    if not path.exists():
        reason = "does not exist"
    elif (path / "transform_fn").exists():
        reason = "is an unfinished preprocess output (no _SUCCESS)"
    else:
        reason = "is not a preprocess output (no transform_fn/ and transformed_metadata/)"
    hints = [c for c in (path / "transformed", path / "data" / "transformed") if (c / "_SUCCESS").exists()]
    raise UserError(f"{value} {reason}" + (f"; did you mean {hints[0]}?" if hints else ""), key="--data-dir")


def _data_dir(cmd):
    cmd.add_argument("--data-dir", required=True, help="the preprocess output directory")


def _model_dir(cmd):
    cmd.add_argument("--model-dir", required=True, help="training output directory (weights, logs)")


def _export_dir(cmd):
    cmd.add_argument("--export-dir", required=True,
                     help="serving root; the model goes to <export-dir>/<model.name>/<new version>/")


def _distributed(cmd):
    cmd.add_argument("--warm-start", metavar="MODEL_DIR",
                     help="daily training: take over this previous model dir's trained state, embedding rows "
                          "matched by token through both days' vocabularies; report in <model dir>/warm_start.json")
    cmd.add_argument("--local-cluster", metavar="workers=N[,ps=M]",
                     help="development, on 127.0.0.1: workers=N,ps=M starts N worker and M parameter-server "
                          "processes and coordinates them from this one (train.distribution: parameter_server); "
                          "workers=N without ps runs N `ctrcvr train` worker processes, each with its own "
                          "TF_CONFIG (multi_worker_mirrored). See docs/distributed.md for a real cluster")


def _cluster(args, config):
    """A local cluster for --local-cluster (else a no-op context), and the config it trains with."""
    import contextlib
    if not args.local_cluster:
        return contextlib.nullcontext(), config
    from ctrcvr.cluster import LocalCluster, LocalWorkers, parse_local_cluster
    counts = parse_local_cluster(args.local_cluster)
    distribution = config.train.distribution
    if counts["ps"] and distribution in ("none", "parameter_server"):
        train = config.train.model_copy(update={"distribution": "parameter_server"})
        return LocalCluster(counts["worker"], counts["ps"]), config.model_copy(update={"train": train})
    if not counts["ps"] and distribution in ("none", "multi_worker_mirrored"):
        train = config.train.model_copy(update={"distribution": "multi_worker_mirrored"})
        return LocalWorkers(counts["worker"]), config.model_copy(update={"train": train})
    raise UserError(f"a local cluster of workers and parameter servers (workers=N,ps=M) runs parameter_server, one "
                    f"of workers only (workers=N) runs multi_worker_mirrored; train.distribution is {distribution}",
                    key="--local-cluster")


def _cluster_arg(running):
    """What workflow.train takes as ``cluster``: the coordinator's resolver, or the worker launcher itself."""
    from ctrcvr.cluster import LocalWorkers
    if running is None or isinstance(running, LocalWorkers):
        return running
    return running.resolver()


def _run(args, config):
    cluster, config = _cluster(args, config)
    with cluster as running:
        result = workflow.run(config, args.output_dir, overwrite=args.overwrite, warm_start_from=args.warm_start,
                              cluster=_cluster_arg(running))
    _print_metrics(result["metrics"])
    _print_outputs(result["outputs"])


def _compare(args, config):
    from ctrcvr.compare import compare, plan_runs
    result = _planned(plan_runs, compare, args, config)
    print(f"\n{result['table']}")
    _print_outputs(result["files"])


def _tune(args, config):
    from ctrcvr.tune import plan_trials, tune
    result = _planned(plan_trials, tune, args, config)
    print(f"\n{result['table']}\n\nchosen: {result['chosen']}\ntest split (once): {json.dumps(result['test'])}")
    _print_outputs(result["files"])


def _planned(plan, execute, args, config) -> dict:
    """Validates every run's config (``plan``) before anything is simulated or trained, then ``execute``s."""
    try:
        plan(config)
    except ConfigError as err:
        raise ConfigError(f"{args.config}: {err}") from None
    return execute(config, args.output_dir, overwrite=args.overwrite, data_dir=args.data_dir)


def _print_outputs(files: dict) -> None:
    print("\nOutputs:")
    width = max(map(len, files), default=0)
    for name, path in files.items():
        print(f"  {name:{width}s}  {path}")


def _reuse_data_dir(cmd):
    cmd.add_argument("--data-dir",
                     help="reuse this preprocess output instead of simulating and preprocessing")


def _simulate(args, config):
    print(json.dumps(workflow.simulate(config, args.output_dir, overwrite=args.overwrite), indent=2))


def _preprocess(args, config):
    from pipeline.report import format_report
    report = workflow.preprocess(config, args.output_dir, raw_dir=args.input, overwrite=args.overwrite)
    print(format_report(report))
    print(f"full report: {args.output_dir}/report.json")


def _train(args, config):
    cluster, config = _cluster(args, config)
    with cluster as running:
        workflow.train(config, args.data_dir, args.model_dir, overwrite=args.overwrite,
                       warm_start_from=args.warm_start, cluster=_cluster_arg(running))
    print(f"weights saved under {args.model_dir}")


def _evaluate(args, config):
    _print_metrics({config.model.name: workflow.evaluate(config, args.data_dir, args.model_dir,
                                                         overwrite=args.overwrite)})


def _export(args, config):
    print(workflow.export(config, args.data_dir, args.model_dir, args.export_dir, raw_dir=args.input))


def _print_metrics(results):
    from ctrcvr.tables import metrics_by_model
    print()
    print(metrics_by_model(results))


def _setup_logging(level: str, command: str = "") -> None:
    if command != "configs":
        from ctrcvr.console import import_tensorflow_quietly
        import_tensorflow_quietly()
    logging.basicConfig(level=getattr(logging, level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("apache_beam", "tensorflow", "absl", "tensorflow_transform", "tfx_bsl", "h5py"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, getattr(logging, level)))


if __name__ == "__main__":
    sys.exit(main())
