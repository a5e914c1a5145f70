"""Publishing a model: its package written to the object store, then registered as a version.

Training jobs, the demo, the benchmarks and the tests all publish this way, so a version
always points at a package that exists and whose sha256 the registry holds.
"""

from __future__ import annotations

import uuid
from typing import Any

from shipyard.core.package import PackageContents, write_package
from shipyard.pipeline.workspace import Workspace
from shipyard.registry import ModelVersion


def publish_package(
    workspace: Workspace,
    group: str,
    contents: PackageContents,
    *,
    prefix: str | None = None,
    metrics: dict[str, Any] | None = None,
    lineage: dict[str, Any] | None = None,
    actor: str = "system",
    approve: bool = False,
    reason: str = "",
) -> ModelVersion:
    """Store ``contents`` under ``prefix`` and register it as the next version of ``group``.

    ``prefix`` defaults to a fresh ``models/{group}/{id}``; ``metrics`` to the package's own.
    If registering fails, the stored files are deleted: nothing is ever half-published.
    ``approve`` approves the new version at once, with ``reason`` in its audit event.
    """
    prefix = prefix or f"models/{group}/{uuid.uuid4().hex}"
    stored = write_package(workspace.store, prefix, contents)
    try:
        version = workspace.registry.register(
            group,
            artifact_uri=stored.manifest_uri,
            sha256=stored.manifest_sha256,
            framework=contents.framework,
            framework_version=contents.framework_version,
            signature=stored.manifest["signature"],
            metrics=contents.metrics if metrics is None else metrics,
            params=contents.params,
            lineage=lineage or {},
            actor=actor,
        )
    except BaseException:
        workspace.store.delete_prefix(prefix)
        raise
    if approve:
        version = workspace.registry.approve(group, version.version, actor=actor, reason=reason)
    return version
