"""Logs one small trace to an MLflow tracking server with MLflow's own
client and prints its id: a trace for tests that call MLflow's REST API
directly, with no agent in between.

    <venv>/bin/python tests/mlflow/log_trace.py --tracking-uri URI

The trace is in the server when the script exits (MLflow flushes its
asynchronous trace export at exit).
"""

import argparse
import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--experiment", default="chat-history-tests")
    args = parser.parse_args()
    mlflow.set_tracking_uri(args.tracking_uri)
    mlflow.set_experiment(args.experiment)
    with mlflow.start_span(name="reply") as span:
        span.set_inputs({"question": "Is the sky blue?"})
        span.set_outputs({"answer": "Yes."})
    print(span.trace_id, flush=True)


if __name__ == "__main__":
    main()
