"""Check OSCAL assessment-results documents with a second OSCAL implementation.

The `oscal` package (PyPI, brian-ruf/oscal-class) validates a document
against NIST's published OSCAL metaschema for the version the document
declares: required fields and hierarchy, every leaf's datatype (UUIDs,
date-times with time zone, tokens, URIs), allowed values, cardinality and
choices. It shares no code with compliance-trestle, which validates with
pydantic models generated from NIST's JSON schema.

The library treats a version it has no metaschema for as valid; this script
refuses that. Exits 1 and prints the errors of the first document refused.
Usage: python oscal-metaschema-check.py FILE...
"""
import logging
import sys

logging.disable(logging.CRITICAL)
import oscal  # noqa: E402


def main(paths):
    for path in paths:
        doc = oscal.OSCAL.load(path)
        if doc.model != "assessment-results":
            sys.exit(f"{path}: read as {doc.model!r}, not assessment-results")
        if doc._support.get_metaschema_index(doc.oscal_version, doc.model) is None:
            sys.exit(f"{path}: no NIST metaschema for OSCAL {doc.oscal_version!r}")
        if not doc.validate():
            print(f"{path}: refused: {doc.validation_status}", file=sys.stderr)
            for e in doc.validation_errors[:20]:
                print(f"  {e}", file=sys.stderr)
            sys.exit(1)


main(sys.argv[1:])
