"""The run report: counts that reconcile (rows read + generated = written + rejected), label rates
per split, vocabulary sizes, hash collisions (:mod:`pipeline.hash_stats`), timing; as ``report.json`` and as a table for the console.

Generated rows are the unobserved ratings pairs ``data.ratings.unobserved`` adds
(``pipeline.sources.unobserved``): no file holds them, so they are counted apart from the rows read,
overall and per split (a split's ``generated`` rows are part of its ``rows``); without them the
identity is rows read = written + rejected.
"""
from __future__ import annotations

from apache_beam.io.filesystems import FileSystems

SPLITS = ("train", "eval", "test")
REJECTS_FILE = "rejects/rejects-00000-of-00001.jsonl"
MILLI = 1000  # label sums are counted in thousandths (Beam counters are integers)


def build_report(counts: dict[str, int], out: str, labels: tuple[str, str], vocabulary_sizes: dict,
                 seconds: float) -> dict:
    """The report from the job's Beam counters (see ``pipeline.job``)."""
    rejected = {k.split(":", 1)[1]: v for k, v in sorted(counts.items()) if k.startswith("rejected:")}
    fixed = {k.split(":", 1)[1]: v for k, v in sorted(counts.items()) if k.startswith("fixed:")}
    o, r = labels
    split_report = {}
    for split in SPLITS:
        rows = counts.get(f"{split}:rows", 0)
        files = _files(f"{out}/{split}/part-*.tfrecord.gz", out)
        if not rows and not files and split == "test":
            continue
        positives = counts.get(f"{split}:sum:{o}", 0) / MILLI
        outcome = counts.get(f"{split}:sum:{r}", 0) / MILLI
        split_report[split] = {
            "rows": rows, "generated": counts.get(f"{split}:generated", 0),
            "written": counts.get(f"{split}:written", 0),
            o: int(round(positives)), f"{o}_rate": _ratio(positives, rows),
            r: round(outcome, 3), f"{r}_mean_given_{o}": _ratio(outcome, positives),
            "files": files,
        }
    read, generated = counts.get("rows_read", 0), counts.get("rows_generated", 0)
    written = sum(s["written"] for s in split_report.values())
    n_rejected = sum(rejected.values())
    report = {
        "rows_read": read, "rows_generated": generated, "rows_written": written, "rows_rejected": n_rejected,
        "reconciled": read + generated == written + n_rejected,
        "reject_share": (n_rejected / read) if read else 0.0,
        "rejected_by_reason": rejected, "fixed_by_reason": fixed, "splits": split_report,
        "vocabulary_sizes": vocabulary_sizes, "vocabulary_files": "transform_fn/assets/<feature name>",
        "seconds": round(seconds, 2),
        "rows_per_second": round(read / seconds, 1) if seconds else None,
        "rejects_file": REJECTS_FILE,
    }
    collisions = collision_report(counts)
    if collisions:
        report["hash_collisions"] = collisions
    side = {k.split(":", 1)[1]: v for k, v in sorted(counts.items()) if k.startswith("common_features:")}
    if side:
        report["common_features"] = side
    return report


def collision_report(counts: dict[str, int]) -> dict[str, dict]:
    """{feature: {hash_buckets, distinct_values, distinct_buckets, collision_rate}} from the job's counters."""
    names = sorted({k.split(":")[1] for k in counts if k.startswith("hash:")})
    report = {}
    for name in names:
        values, buckets = counts.get(f"hash:{name}:values", 0), counts.get(f"hash:{name}:buckets", 0)
        report[name] = {"hash_buckets": counts.get(f"hash:{name}:size", 0), "distinct_values": values,
                        "distinct_buckets": buckets, "collision_rate": round(1 - buckets / values, 6) if values else 0.0}
    return report


def format_report(report: dict) -> str:
    """The report as a few aligned console lines."""
    mark = "ok" if report["reconciled"] else "DOES NOT RECONCILE"
    generated = report.get("rows_generated", 0)
    plus = f" + generated {generated:,}" if generated else ""
    lines = [f"rows read {report['rows_read']:,}{plus} = written {report['rows_written']:,} + rejected "
             f"{report['rows_rejected']:,} ({report['reject_share']:.2%})  [{mark}]",
             f"{report['seconds']:.1f} s, {report['rows_per_second'] or 0:,.0f} rows/s"]
    for title, key in (("rejected", "rejected_by_reason"), ("fixed", "fixed_by_reason"),
                       ("common features", "common_features")):
        if report.get(key):
            lines.append(f"{title}:")
            lines += [f"  {reason:<40s} {n:>10,}" for reason, n in report[key].items()]
    lines.append("splits:")
    for split, s in report["splits"].items():
        rates = ", ".join(f"{k} {v:.4g}" for k, v in s.items() if k.endswith("_rate") or "_mean_given_" in k
                          if v is not None)
        made = f" ({s['generated']:,} generated)" if s.get("generated") else ""
        lines.append(f"  {split:<6s} {s['rows']:>10,} rows{made}, {len(s['files'])} file(s); {rates}")
    if report["vocabulary_sizes"]:
        lines.append("vocabulary sizes: " + ", ".join(f"{k} {v:,}" for k, v in report["vocabulary_sizes"].items()))
    for name, h in report.get("hash_collisions", {}).items():
        lines.append(f"hashed {name}: {h['distinct_values']:,} distinct values in {h['distinct_buckets']:,} of "
                     f"{h['hash_buckets']:,} buckets (collision rate {h['collision_rate']:.2%})")
    if report["rows_rejected"]:
        lines.append(f"rejected rows with their reasons: {report['rejects_file']}")
    return "\n".join(lines)


def write_text(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` on any Beam filesystem (local, gs://, ...)."""
    with FileSystems.create(path) as handle:
        handle.write(text.encode())


def _files(pattern: str, root: str) -> list[str]:
    """Files matching ``pattern`` (any Beam filesystem), relative to ``root``."""
    return sorted(m.path[len(root.rstrip("/")) + 1:] for r in FileSystems.match([pattern]) for m in r.metadata_list)


def _ratio(a, b):
    return a / b if b else None
