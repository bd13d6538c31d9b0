"""Reading values out of a Prometheus text exposition in tests."""

from __future__ import annotations

import re


def metric_value(text: str, name: str) -> float:
    """The value of the sample `name` (with its labels, as exposed), 0 when absent."""
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0
