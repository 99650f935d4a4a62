"""Check Kyverno ClusterPolicy documents against Kyverno's own CRD schema.

Loads each YAML document into cloudcoil's models of Kyverno's kyverno.io/v1
ClusterPolicy (PyPI cloudcoil-models-kyverno: pydantic models generated
from the CRDs Kyverno ships), which check every field's type and enum.
Those models ignore fields they do not know, where the API server would
prune them silently; this script refuses them instead: every key of the
input must come back when the model is dumped.
Usage: python kyverno-check.py FILE...
"""
import sys

import yaml
from cloudcoil.models.kyverno import v1


def unknown(given, kept, at):
    """The keys of `given` that the model did not keep, as paths."""
    if isinstance(given, dict):
        if not isinstance(kept, dict):
            return [at]
        out = []
        for k, v in given.items():
            if k not in kept:
                out.append(f"{at}.{k}")
            else:
                out += unknown(v, kept[k], f"{at}.{k}")
        return out
    if isinstance(given, list) and isinstance(kept, list):
        return [p for i, (g, k) in enumerate(zip(given, kept)) for p in unknown(g, k, f"{at}[{i}]")]
    return []


def main(paths):
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                model = v1.ClusterPolicy.model_validate(doc)
                kept = model.model_dump(by_alias=True, exclude_unset=True, mode="json")
                lost = unknown(doc, kept, "")
                if lost:
                    sys.exit(f"{path}: fields Kyverno's schema does not have: {', '.join(lost)}")


main(sys.argv[1:])
