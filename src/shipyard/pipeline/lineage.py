"""The lineage graph: which datasets and model versions came from which (`shipyard lineage`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from shipyard.core.errors import NotFoundError
from shipyard.core.types import ModelRef
from shipyard.pipeline.workspace import Workspace
from shipyard.storage import DatasetInfo, get_dataset, list_datasets


@dataclass
class LineageNode:
    """A dataset (``ds-…``) or a model version (``group@version``) and its neighbours."""

    id: str
    label: str
    children: list[LineageNode] = field(default_factory=list)


@dataclass(frozen=True)
class Lineage:
    root: LineageNode
    upstream: list[LineageNode]
    downstream: list[LineageNode]


def lineage_of(workspace: Workspace, node_id: str) -> Lineage:
    """Everything ``node_id`` was made from, and everything made from it."""
    graph = _Graph(workspace)
    if node_id in graph.datasets:
        root = LineageNode(node_id, graph.label(node_id))
        parents = graph.datasets[node_id].parents
    else:
        try:
            ref = ModelRef.parse(node_id)
        except ValueError:
            raise NotFoundError(
                f"{node_id!r} is neither a dataset id (ds-…) nor a model version (GROUP@N)"
            ) from None
        if str(ref) not in graph.models:
            workspace.registry.get(ref.group, ref.version)  # raises NotFoundError naming it
        root = LineageNode(str(ref), graph.label(str(ref)))
        parents = graph.models.get(str(ref), [])
    upstream = [graph.upstream(p, {node_id}) for p in parents]
    downstream = [graph.downstream(c, {node_id}) for c in graph.children(node_id)]
    return Lineage(root, upstream, downstream)


class _Graph:
    """Datasets and model versions with their parent links, loaded once."""

    def __init__(self, workspace: Workspace) -> None:
        self.datasets: dict[str, DatasetInfo] = {d.id: d for d in list_datasets(workspace.meta)}
        self.models: dict[str, list[str]] = {
            str(v.ref): [str(d) for d in v.lineage.get("datasets", [])]
            for v in workspace.registry.list_versions()
        }
        self.model_status = {
            str(v.ref): v.approval_status for v in workspace.registry.list_versions()
        }
        self._meta = workspace.meta

    def label(self, node_id: str) -> str:
        dataset = self.datasets.get(node_id)
        if dataset is not None:
            return f"{dataset.id}  {dataset.zone}  {dataset.name}  {dataset.rows:,} rows"
        return f"{node_id}  model ({self.model_status.get(node_id, 'unknown')})"

    def parents(self, node_id: str) -> list[str]:
        if node_id in self.datasets:
            return self.datasets[node_id].parents
        return self.models.get(node_id, [])

    def children(self, node_id: str) -> list[str]:
        found = [d.id for d in self.datasets.values() if node_id in d.parents]
        found += [m for m, parents in self.models.items() if node_id in parents]
        return sorted(found)

    def upstream(self, node_id: str, seen: set[str]) -> LineageNode:
        node = LineageNode(node_id, self._known_label(node_id))
        if node_id not in seen:
            node.children = [self.upstream(p, seen | {node_id}) for p in self.parents(node_id)]
        return node

    def downstream(self, node_id: str, seen: set[str]) -> LineageNode:
        node = LineageNode(node_id, self._known_label(node_id))
        if node_id not in seen:
            node.children = [self.downstream(c, seen | {node_id}) for c in self.children(node_id)]
        return node

    def _known_label(self, node_id: str) -> str:
        if node_id in self.datasets or node_id in self.models:
            return self.label(node_id)
        try:
            dataset = get_dataset(self._meta, node_id)
        except NotFoundError:
            return f"{node_id}  (not in the catalog)"
        return f"{dataset.id}  {dataset.zone}  {dataset.name}"
