"""Check an OSCAL assessment-results document with compliance-trestle.

Loads FILE into trestle's pydantic model (NIST's OSCAL model: required
fields, UUID and token patterns, no unknown fields), then checks what the
model cannot: every UUID unique, every reference resolves. Prints what the
test compares with vigil's own counts, as JSON.
"""
import json
import sys
import warnings

warnings.simplefilter("ignore")
from trestle.oscal import assessment_results as ar  # noqa: E402


def main(path):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    ar.Model.model_validate(doc)
    root = doc["assessment-results"]
    uuids = []

    def walk(v):
        if isinstance(v, dict):
            if isinstance(v.get("uuid"), str):
                uuids.append(v["uuid"])
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(root)
    assert len(uuids) == len(set(uuids)), "duplicate UUIDs"
    resources = {r["uuid"] for r in root.get("back-matter", {}).get("resources", [])}
    assert root["import-ap"]["href"].lstrip("#") in resources, "import-ap resolves"
    out = []
    for r in root["results"]:
        items = {i["uuid"]: i for i in r.get("local-definitions", {}).get("inventory-items", [])}
        observations = {o["uuid"]: o for o in r.get("observations", [])}
        for o in observations.values():
            for s in o["subjects"]:
                assert s["subject-uuid"] in items, "observation subject resolves"

        def props(x, name):
            return [p["value"] for p in x.get("props", []) if p["name"] == name]

        for f in r.get("findings", []):
            for ro in f["related-observations"]:
                assert ro["observation-uuid"] in observations, "finding observation resolves"
        out.append({
            "targets": sorted(props(i, "target-id")[0] for i in items.values()),
            "observations": len(observations),
            "findings": sorted(
                [props(f, "control-id")[0], f["target"]["target-id"], f["target"]["status"]["reason"]]
                for f in r.get("findings", [])
            ),
            "waived": sorted(
                [props(o, "control-id")[0], props(o, "waived")[0], (props(o, "waiver-expires") or [""])[0]]
                for o in observations.values() if props(o, "waived")
            ),
        })
    print(json.dumps(out))


main(sys.argv[1])
