"""Simulators that write raw data with known truth: ``exposures`` (exposure -> click -> conversion logs
and satisfaction surveys, the world in ``exposure_world``) and ``ratings`` (MNAR + MAR ratings).

Each is a source of ``pipeline.inputs`` (``simulated``, ``simulated_ratings``): the registry says which
config sections its entry point reads and how its summary reads in the run log.
"""
