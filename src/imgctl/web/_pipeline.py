"""The environments' pipeline order as a page needs it before it reads anything else.

The order decides which environments a caller may read (:meth:`Viewer.readable`: the
environment before each one they may promote into) and which environment comes next for a
digest. It is :data:`WebContext.pipeline` (``IMGCTL_PIPELINE``) when set, else the order the
catalog's promotions draw (docs/web.md, "Pipeline order"): the same reading of the catalog as
the release matrix's, so every page lets a caller read the same environments.
"""

from __future__ import annotations

from imgctl.errors import InvalidReferenceError

from ._context import WebContext, pipeline_order

__all__ = ["pipeline"]


async def pipeline(context: WebContext) -> list[str]:
    """Every environment in pipeline order: IMGCTL_PIPELINE, else along the catalog's promotions."""
    configured = context.configured()
    if context.pipeline and configured:
        return pipeline_order(configured, context.pipeline)
    if context.catalog is None:
        return pipeline_order(configured, context.pipeline)
    entries = [e for e in await context.catalog.list(sort="updated_at") if e.environment]
    names = set(configured) | {entry.environment for entry in entries}
    owner_of = {entry.name: entry.environment for entry in entries}
    edges: list[tuple[str, str]] = []
    for entry in entries:
        source = _source_environment(context, entry.source, owner_of)
        if source is not None:
            edges.append((source, entry.environment))
    return pipeline_order(names, context.pipeline, edges)


def _source_environment(
    context: WebContext, source: str | None, owner_of: dict[str, str]
) -> str | None:
    """The environment a catalog entry's ``source`` (REGISTRY/REPO:TAG@DIGEST) belongs to."""
    if not source:
        return None
    from imgctl.oci.reference import Reference

    try:
        repository = Reference.parse(source).name
    except InvalidReferenceError:
        return None
    return context.environment_of(repository) or owner_of.get(repository)
