"""A deterministic agent served by MLflow's own AgentServer, traced to a real
MLflow tracking server: the model-serving endpoint of the integration tests
that run against real MLflow.

    <venv>/bin/python tests/mlflow/agent.py --port PORT --tracking-uri URI \
        --experiment NAME --shape responses|chat

It answers "You said: <last user text>." in several deltas.

--shape responses: AgentServer("ResponsesAgent"), as in Databricks' agent
  template: POST /responses (or /invocations) with {"input": [...],
  "stream": true}; SSE of response.output_text.delta / output_item.done
  events; with the header `x-mlflow-return-trace-id: true`, AgentServer adds
  `data: {"trace_id": "tr-..."}` after the last event, then `data: [DONE]`.

--shape chat: AgentServer() with no agent type, the only other kind it
  serves: POST /invocations with {"messages": [...], "stream": true}; SSE of
  OpenAI chat.completion.chunk objects, then `data: [DONE]`. AgentServer
  returns trace ids for ResponsesAgent only, so this function puts the id in
  its last chunk itself, where Databricks serving puts it
  (`databricks_output.trace.info.trace_id`), when the request has that same
  header or `"databricks_options": {"return_trace": true}`.

Prints `agent ready on port PORT` (flushed) once the socket accepts
connections. MLflow must already be reachable at URI: the experiment is set
(created if missing) at start-up. SIGTERM: uvicorn's graceful shutdown, then
pending traces are flushed and the process exits 0.
"""

import argparse
import copy
import os
import signal
import sys
import time
import uuid

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

import mlflow
import uvicorn
from mlflow.genai.agent_server import AgentServer, get_request_headers, invoke, stream
from mlflow.pyfunc import ResponsesAgent
from mlflow.types.responses import (
    ResponsesAgentRequest,
    ResponsesAgentResponse,
    ResponsesAgentStreamEvent,
)

RETURN_TRACE_HEADER = "x-mlflow-return-trace-id"


def reply_to(text: str) -> list[str]:
    """The reply's deltas: one per word, so a reply always streams in pieces."""
    words = f"You said: {text}.".split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def text_of(content) -> str:
    """A message's text, from a plain string or a list of typed parts."""
    if isinstance(content, str):
        return content
    return "".join(
        part.get("text", "") if isinstance(part, dict) else getattr(part, "text", "") or ""
        for part in content or []
    )


def last_user_text(messages) -> str:
    for m in reversed(messages):
        m = m if isinstance(m, dict) else m.model_dump()
        if m.get("role") == "user":
            return text_of(m.get("content"))
    return ""


def responses_server() -> AgentServer:
    @stream()
    async def answer_stream(request: ResponsesAgentRequest):
        item_id = f"msg_{uuid.uuid4().hex}"
        deltas = reply_to(last_user_text(request.input))
        for d in deltas:
            yield ResponsesAgentStreamEvent(**ResponsesAgent.create_text_delta(d, item_id))
        yield ResponsesAgentStreamEvent(
            type="response.output_item.done",
            item=ResponsesAgent.create_text_output_item("".join(deltas), item_id),
        )

    @invoke()
    async def answer(request: ResponsesAgentRequest) -> ResponsesAgentResponse:
        text = "".join(reply_to(last_user_text(request.input)))
        item = ResponsesAgent.create_text_output_item(text, f"msg_{uuid.uuid4().hex}")
        return ResponsesAgentResponse(output=[item])

    return AgentServer("ResponsesAgent")


def chat_server() -> AgentServer:
    def chunk(cid: str, delta: dict, finish_reason=None) -> dict:
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "model": "mlflow-test-agent",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    def wants_trace_id(request: dict) -> bool:
        header = get_request_headers().get(RETURN_TRACE_HEADER, "").lower() == "true"
        option = bool((request.get("databricks_options") or {}).get("return_trace"))
        return header or option

    @stream()
    async def answer_stream(request: dict):
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        yield chunk(cid, {"role": "assistant", "content": ""})
        for d in reply_to(last_user_text(request.get("messages", []))):
            yield chunk(cid, {"content": d})
        last = chunk(cid, {}, "stop")
        # AgentServer's span (named after this function) is active while it
        # iterates us, so its trace id is the one it logs.
        if wants_trace_id(request) and (trace_id := mlflow.get_active_trace_id()):
            last["databricks_output"] = {"trace": {"info": {"trace_id": trace_id}}}
        yield last

    @invoke()
    async def answer(request: dict) -> dict:
        text = "".join(reply_to(last_user_text(request.get("messages", []))))
        result = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "model": "mlflow-test-agent",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
        }
        if wants_trace_id(request) and (trace_id := mlflow.get_active_trace_id()):
            result["databricks_output"] = {"trace": {"info": {"trace_id": trace_id}}}
        return result

    return AgentServer()


class ReadyServer(uvicorn.Server):
    """uvicorn's server, saying so on stdout once its socket is listening."""

    async def startup(self, sockets=None):
        await super().startup(sockets)
        if self.started:
            print(f"agent ready on port {self.config.port}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--shape", choices=["responses", "chat"], default="responses")
    args = parser.parse_args()

    mlflow.set_tracking_uri(args.tracking_uri)
    mlflow.set_experiment(args.experiment)

    server = responses_server() if args.shape == "responses" else chat_server()
    # AgentServer.run() parses sys.argv itself (--port/--workers/--reload
    # only) and needs an import string, so serve its FastAPI app directly.
    # uvicorn logs requests to stdout by default; send them to stderr so that
    # stdout carries only the ready line.
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    config = uvicorn.Config(
        server.app,
        host=args.host,
        port=args.port,
        log_config=log_config,
        timeout_graceful_shutdown=5,
    )
    uv = ReadyServer(config)

    # uvicorn handles SIGTERM/SIGINT while it serves, then restores this
    # handler and re-raises the signal; the default action would kill us
    # before the queued traces are flushed. So this handler only asks uvicorn
    # to stop (which matters only before it has taken over), and we flush and
    # exit 0 below.
    def stop(*_):
        uv.should_exit = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    uv.run()
    started = time.monotonic()
    mlflow.flush_trace_async_logging()
    print(f"traces flushed in {time.monotonic() - started:.2f}s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
