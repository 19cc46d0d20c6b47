"""Prints a trace's assessments as MLflow's own Python client sees them, so
the integration tests can check what the app wrote without trusting our own
reading of the REST answers.

    <venv>/bin/python tests/mlflow/read_assessments.py --tracking-uri URI TRACE_ID

One JSON line on stdout: a list (in the server's order) of
  {"assessment_id", "name", "kind" ("feedback"|"expectation"), "source_type",
   "source_id", "value", "error", "rationale", "metadata", "valid",
   "overrides", "create_time_ms", "last_update_time_ms"}
or `null` when the trace does not exist. Any other failure: a message on
stderr and exit status 1.
"""

import argparse
import json
import os
import sys

# Before mlflow is imported: no usage reporting (this machine has no
# internet), and a dead tracking server fails in seconds rather than after
# MLflow's default 7 retries with backoff (about 4 minutes). Set them in the
# environment to override.
for name, value in {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}.items():
    os.environ.setdefault(name, value)

from mlflow import MlflowClient
from mlflow.entities import Expectation, Feedback
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode


def describe(a) -> dict:
    if isinstance(a, Feedback):
        kind, value = "feedback", a.value
    elif isinstance(a, Expectation):
        kind, value = "expectation", a.value
    else:
        kind, value = type(a).__name__.lower(), None
    error = getattr(a, "error", None)
    return {
        "assessment_id": a.assessment_id,
        "name": a.name,
        "kind": kind,
        "source_type": a.source.source_type if a.source else None,
        "source_id": a.source.source_id if a.source else None,
        "value": value,
        "error": error.to_dictionary() if error else None,
        "rationale": a.rationale,
        "metadata": a.metadata,
        "valid": a.valid,
        "overrides": a.overrides,
        "create_time_ms": a.create_time_ms,
        "last_update_time_ms": a.last_update_time_ms,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("trace_id")
    args = parser.parse_args()

    client = MlflowClient(tracking_uri=args.tracking_uri)
    try:
        trace = client.get_trace(args.trace_id, display=False)
    except MlflowException as e:
        if e.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            print("null", flush=True)
            return 0
        print(f"read_assessments: {e.error_code}: {e.message}", file=sys.stderr)
        return 1
    print(json.dumps([describe(a) for a in trace.info.assessments]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
