"""Serving: raw-row encoding for clients, warmup requests, ``serve-check``, and a development REST server.

Production serving is TF Serving; the SavedModel itself is built by :mod:`trainer.export`.
"""
