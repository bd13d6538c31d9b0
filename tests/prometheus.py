"""Reading values out of a Prometheus text exposition in tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metric_value(text: str, name: str) -> float:
    """The value of the sample `name` (with its labels, as exposed), 0 when absent."""
    (wanted,) = _samples(f"{name} 0\n")
    return _samples(text).get(wanted, 0.0)
