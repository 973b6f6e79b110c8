"""Scale tests start twenty processes and take minutes: they run only when asked for by marker
(``-m scale``, as ``make test-scale`` and CI do), never as part of a plain ``make test``."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "scale" in (config.getoption("markexpr") or ""):
        return
    skipped = [item for item in items if item.get_closest_marker("scale")]
    if skipped:
        config.hook.pytest_deselected(items=skipped)
        items[:] = [item for item in items if not item.get_closest_marker("scale")]
