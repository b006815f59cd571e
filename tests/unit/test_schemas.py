import json
from pathlib import Path

from computeinfra.schemas import schema_documents
from computeinfra.tasks import load_registry

DOCS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def test_committed_schemas_match_the_code() -> None:
    """docs/schemas is what non-Python clients read; regenerate with `make schemas`."""
    for name, schema in schema_documents(load_registry()).items():
        committed = json.loads((DOCS / name).read_text())
        assert committed == json.loads(json.dumps(schema)), f"{name} is stale: run make schemas"


def test_request_schema_names_the_required_fields() -> None:
    request = json.loads((DOCS / "pendingJobs.schema.json").read_text())
    assert set(request["required"]) == {"task", "payload", "result_dir"}
    completion = json.loads((DOCS / "completedJobs.schema.json").read_text())
    assert {"key", "task", "status", "result_dir", "attempts"} <= set(completion["required"])
    assert completion["properties"]["status"]["enum"] == [
        "succeeded",
        "failed",
        "rejected",
        "cancelled",
    ]
    cancel = json.loads((DOCS / "cancelJobs.schema.json").read_text())
    assert cancel.get("required", []) == [] and cancel["additionalProperties"] is False
    assert set(cancel["properties"]) == {"version", "requested_at", "reason", "submitted_at"}
