"""The source registry: every value of ``data.source``, what its inputs are and how they are read.

    source              inputs                                                   simulator
    simulated           the exposure simulator's shards under --input (exposures,  exposures
                        or surveys when labels.task is survey)
    csv, parquet        data.train_files / eval_files / test_files (CSV with a header, Parquet)
    survey              survey files as csv, or the simulator's surveys under --input
    aliccp_processed    the processed Ali-CCP release (CSV files with a header)
    aliccp_raw          the raw Ali-CCP release: skeleton files joined with common features in Beam
    ratings             rating triplets or a matrix (data.ratings), + generated unobserved pairs
    simulated_ratings   the ratings simulator's MNAR + MAR triplets under --input       ratings
    simulated_video     the short-video simulator's log under --input (questionnaire)   video_files

API (what stages and the orchestration call; nothing else names a source):

    get_source(name) -> Source          ``UnknownSource`` (a ValueError) lists the known names
    resolve_inputs(data, raw_dir=None, task="conversion", seed=None) -> [(path or generated input, split)]
    reader_for(data, path, columns=None) -> a Reader (``.chunks(path, rows)``)
    sample_rows(data, path, n) -> DataFrame of text and numbers, or None

    source.simulated: bool              it is produced by a simulator
    source.reads: tuple[str, ...]       the config sections its simulator reads, e.g. ("simulate",)
    source.simulate(out_dir, seed, **sections) -> summary dict   e.g. simulate(out, 42, simulate=...)
    source.announce(**sections) -> str  what a run will simulate ("20000 exposures")
    source.describe(summary) -> str     the simulation summary in one line, for the run log
    source.beam_read                    None, or (data, features, inputs, columns, rows) -> a Beam
                                        PTransform PBegin -> (chunks, rejects) that reads in Beam
    source.ratings: bool                it reads data.ratings (formats, unobserved pairs)
    source.ground_truth_for: tuple      the tasks whose ground-truth columns (transforms.schema.Task)
                                        its rows always carry, e.g. the simulator's gt_cvr

This module is cheap to import (config validation looks names up here): a source's functions live
in ``pipeline.sources`` / ``pipeline.simulators`` and are imported when first called.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Optional


@dataclasses.dataclass(frozen=True)
class _Lazy:
    """``module.name``, imported when first called (keeps this registry free of Beam and TensorFlow)."""

    module: str
    name: str

    def __call__(self, *args, **kwargs):
        return getattr(importlib.import_module(self.module), self.name)(*args, **kwargs)


@dataclasses.dataclass(frozen=True)
class Simulator:
    """A simulator's entry point ``run(*sections, out_dir=, seed=)``, with the sections it reads in
    ``reads`` order; ``announce(*sections)`` and ``describe(summary)`` are its run-log lines."""

    run: Any
    reads: tuple[str, ...]
    announce: Any
    describe: Any


@dataclasses.dataclass(frozen=True)
class Source:
    """One value of ``data.source``: ``resolve(data, raw_dir, task, seed)`` lists its inputs,
    ``reader(data, path, columns)`` reads one, ``sample(data, path, n)`` (None: the reader's
    first rows) shows a few; see the module docstring for the rest."""

    name: str
    description: str
    resolve: Any
    reader: Any
    sample: Any = None
    beam_read: Any = None
    simulator: Optional[Simulator] = None
    ratings: bool = False
    splits_by_files: bool = True
    ground_truth_for: tuple[str, ...] = ()

    @property
    def simulated(self) -> bool:
        return self.simulator is not None

    @property
    def reads(self) -> tuple[str, ...]:
        return self.simulator.reads if self.simulator else ()

    def simulate(self, out_dir, seed: int, **sections) -> dict:
        """Runs the simulator into ``out_dir`` (guarding it is the caller's job); returns its summary."""
        return self._simulator().run(*self._sections(sections), out_dir=out_dir, seed=seed)

    def announce(self, **sections) -> str:
        return self._simulator().announce(*self._sections(sections))

    def describe(self, summary: dict) -> str:
        return self._simulator().describe(summary)

    def _simulator(self) -> Simulator:
        if self.simulator is None:
            raise ValueError(f"data.source {self.name!r} is not simulated; the simulated sources are "
                             f"{', '.join(n for n, s in SOURCES.items() if s.simulated)}")
        return self.simulator

    def _sections(self, sections: dict) -> list:
        missing = [name for name in self.reads if name not in sections]
        if missing:
            raise TypeError(f"the {self.name} simulator reads the config sections {', '.join(self.reads)}; "
                            f"missing {', '.join(missing)}")
        return [sections[name] for name in self.reads]


class UnknownSource(ValueError):
    """``data.source`` names no registered source."""


_FILES, _SIM, _RATINGS = "pipeline.sources.files", "pipeline.sources.simulated", "pipeline.sources.ratings"
_ALICCP = "pipeline.sources.aliccp"
_FILE_READER = _Lazy(_FILES, "file_reader")
_RESOLVE_FILES = _Lazy(_FILES, "resolve_files")
_RATINGS_READER = _Lazy(_RATINGS, "ratings_reader")


def _simulator(module: str, run: str, reads: tuple[str, ...]) -> Simulator:
    return Simulator(_Lazy(module, run), reads, _Lazy(module, "announce"), _Lazy(module, "describe"))


SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("simulated", "the exposure simulator's shards under --input (surveys/ when labels.task is survey)",
           _Lazy(_SIM, "resolve_simulated"), _FILE_READER,
           simulator=_simulator("pipeline.simulators.exposures", "simulate", ("simulate",)),
           ground_truth_for=("conversion", "survey")),
    Source("csv", "CSV files with a header, columns as declared in features and labels", _RESOLVE_FILES,
           _FILE_READER),
    Source("parquet", "Parquet files, columns as declared in features and labels", _RESOLVE_FILES, _FILE_READER),
    Source("survey", "survey logs (files, or the simulator's surveys/ under --input when there are none)",
           _Lazy(_SIM, "resolve_survey"), _FILE_READER),
    Source("aliccp_processed", "the processed Ali-CCP release (CSV with a header)", _RESOLVE_FILES, _FILE_READER),
    Source("aliccp_raw", "the raw Ali-CCP release: skeleton files joined with data.aliccp.common_features",
           _RESOLVE_FILES, _Lazy(_ALICCP, "skeleton_reader"), sample=_Lazy(_ALICCP, "sample_raw"),
           beam_read=_Lazy(_ALICCP, "read_raw")),
    Source("ratings", "explicit ratings: triplets or a matrix (data.ratings), MNAR train + MAR test files",
           _Lazy(_RATINGS, "resolve_ratings"), _RATINGS_READER, ratings=True, ground_truth_for=("ratings",)),
    Source("simulated_ratings", "the ratings simulator's MNAR train and MAR test triplets under --input",
           _Lazy(_RATINGS, "resolve_simulated_ratings"), _RATINGS_READER, ratings=True, splits_by_files=False,
           ground_truth_for=("ratings",),
           simulator=_simulator("pipeline.simulators.ratings", "simulate_to_files", ("simulate_ratings", "labels"))),
    Source("simulated_video", "the short-video simulator's log (questionnaire task) under --input",
           _Lazy("pipeline.sources.video", "resolve_video"), _FILE_READER, splits_by_files=False,
           ground_truth_for=("questionnaire",),
           simulator=_simulator("pipeline.simulators.video_files", "simulate_to_files", ("simulate_video",))),
)}


def get_source(name: str) -> Source:
    """The source registered as ``name``; :class:`UnknownSource` listing the known ones otherwise."""
    if name not in SOURCES:
        raise UnknownSource(f"unknown data.source {name!r}; known sources: {', '.join(SOURCES)}")
    return SOURCES[name]


def resolve_inputs(data, raw_dir=None, task: str = "conversion", seed: Optional[int] = None) -> list[tuple]:
    """The job's ``(input, split)`` pairs for the ``data`` section: files (or a generated input such as
    the unobserved ratings pairs, drawn from ``seed``), each with its split or None (computed per row).

    ``raw_dir`` is a simulator's output directory (simulated sources); ``task`` is ``labels.task``.
    """
    return get_source(data.source).resolve(data, raw_dir, task, seed)


def reader_for(data, path, columns=None):
    """The reader the ``data`` section implies for ``path`` (``columns``: read only these, if it can)."""
    return get_source(data.source).reader(data, path, columns)


def sample_rows(data, path, n: int):
    """The first ``n`` rows of a raw input as a DataFrame of text and numbers (warmup requests,
    examples); None if it has none."""
    source = get_source(data.source)
    if source.sample is not None:
        return source.sample(data, path, n)
    from pipeline.sources.files import first_rows, text_frame
    table = first_rows(source.reader(data, path), path, n)
    return None if table is None else text_frame(table)
