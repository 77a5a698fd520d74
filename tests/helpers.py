"""Helpers the tests share (import them from here, not from conftest)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

#: One sample of a metrics page: its labels and its value.
Sample = tuple[dict[str, str], float]


def scrape(text: str) -> dict[str, list[Sample]]:
    """A metrics page as a Prometheus scraper reads it (prometheus_client's parser):
    sample name -> (labels, value) pairs. Each family is declared once."""
    assert text.endswith("\n")
    samples: dict[str, list[Sample]] = {}
    families: set[str] = set()
    for family in text_string_to_metric_families(text):
        assert family.name not in families, f"family {family.name} declared twice"
        families.add(family.name)
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def metric_families(text: str) -> dict[str, tuple[str, list[str]]]:
    """family name -> (type, label names apart from ``le``) of a metrics page."""
    return {family.name: (family.type,
                          sorted({k for s in family.samples for k in s.labels} - {"le"}))
            for family in text_string_to_metric_families(text)}


def metric_value(samples: dict[str, list[Sample]], name: str, **labels: str) -> float:
    """The sum of the samples ``name`` whose labels include ``labels``."""
    found = [v for lab, v in samples.get(name, [])
             if all(lab.get(k) == w for k, w in labels.items())]
    assert found, (name, labels, samples.get(name))
    return sum(found)
