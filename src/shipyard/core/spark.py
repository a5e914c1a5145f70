"""The local SparkSession that Shipyard's Spark engines (validation, training) start."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any


def local_session(master: str, app_name: str, settings: Mapping[str, str]) -> Any:
    """The active SparkSession, or a new one on ``master`` with ``settings``.

    The session's Python workers run this interpreter, not the PATH's ``python3``: their
    tasks import what Shipyard's environment holds (pandas, xgboost). PySpark reads the
    variable when the context starts, so whichever engine starts the session sets it.
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
