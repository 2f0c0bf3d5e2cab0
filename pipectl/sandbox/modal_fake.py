"""A small fake of Modal's gRPC control plane, so the real `modal` client can be pointed at the sandbox.

It implements only what token checks, function lookups and `Function.spawn` need; every other RPC answers
UNIMPLEMENTED. Its state is a JSON file re-read on every request, so another process can "break" the
sandbox with a plain (atomic) file write:

    {"tokens": {"<token_id>": "<token_secret>"}, "workspace": "sandbox",
     "apps": {"<app>": ["<function>", ...]}, "dsn": "postgresql://...", "table": "workflow_states"}

A spawn is recorded as one JSON line in `calls.jsonl` beside the state file, after the fake has played the
worker: it moves the row `kwargs["state_id"]` (else `args[0]`) from QUEUED to IN_PROGRESS in `table`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from grpclib import GRPCError, Status
from grpclib.server import Server
from modal_proto import api_grpc, api_pb2

TOKEN_ID_HEADER = "x-modal-token-id"
TOKEN_SECRET_HEADER = "x-modal-token-secret"  # noqa: S105 - a header name, not a secret


def write_state(path: Path | str, state: dict[str, Any]) -> None:
    """Replace the state file atomically, so the fake never reads a half-written file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(state, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def function_id(app: str, function: str) -> str:
    """The stable id the fake gives a deployed function (Modal ids start with `fu-`)."""
    return "fu-" + hashlib.sha256(f"{app}/{function}".encode()).hexdigest()[:20]


def _unimplemented(name: str):
    async def handler(self, stream) -> None:
        raise GRPCError(Status.UNIMPLEMENTED, f"the Modal sandbox fake does not implement {name}")

    return handler


# One generated class fills every abstract RPC; FakeModal overrides the few the sandbox uses.
_Unimplemented = type(
    "_Unimplemented",
    (api_grpc.ModalClientBase,),
    {name: _unimplemented(name) for name in api_grpc.ModalClientBase.__abstractmethods__},
)


class FakeModal(_Unimplemented):
    """The handful of control-plane RPCs behind token checks, `Function.from_name` and `.spawn`."""

    def __init__(self, state_path: Path):
        self.state_path = Path(state_path)
        self.calls_path = self.state_path.parent / "calls.jsonl"

    def _state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError) as exc:
            raise GRPCError(Status.INTERNAL, f"sandbox state unreadable: {type(exc).__name__}") from None

    def _authenticate(self, stream) -> dict[str, Any]:
        state = self._state()
        token_id = stream.metadata.get(TOKEN_ID_HEADER) or ""
        token_secret = stream.metadata.get(TOKEN_SECRET_HEADER) or ""
        expected = (state.get("tokens") or {}).get(token_id)
        if not token_id or expected is None or not hmac.compare_digest(str(expected), token_secret):
            raise GRPCError(Status.UNAUTHENTICATED, "Token missing or invalid.")
        return state

    async def ClientHello(self, stream) -> None:
        await stream.recv_message()
        self._authenticate(stream)
        await stream.send_message(api_pb2.ClientHelloResponse())

    async def WorkspaceNameLookup(self, stream) -> None:
        await stream.recv_message()
        workspace = self._authenticate(stream).get("workspace", "sandbox")
        response = api_pb2.WorkspaceNameLookupResponse(workspace_name=workspace, username=workspace)
        await stream.send_message(response)

    async def TokenInfoGet(self, stream) -> None:
        await stream.recv_message()
        state = self._authenticate(stream)
        workspace = state.get("workspace", "sandbox")
        await stream.send_message(
            api_pb2.TokenInfoGetResponse(
                token_id=stream.metadata.get(TOKEN_ID_HEADER),
                workspace_id="ac-" + hashlib.sha256(workspace.encode()).hexdigest()[:20],
                workspace_name=workspace,
                token_name="sandbox",
            )
        )

    async def FunctionGet(self, stream) -> None:
        request: api_pb2.FunctionGetRequest = await stream.recv_message()
        state = self._authenticate(stream)
        app, name = request.app_name, request.object_tag
        if name not in (state.get("apps") or {}).get(app, []):
            raise GRPCError(Status.NOT_FOUND, f"App '{app}' has no deployed function '{name}'")
        await stream.send_message(
            api_pb2.FunctionGetResponse(
                function_id=function_id(app, name),
                handle_metadata=_handle_metadata(app, name),
                function=api_pb2.FunctionData(
                    function_name=name,
                    function_type=api_pb2.Function.FUNCTION_TYPE_FUNCTION,
                    ranked_functions=[
                        api_pb2.FunctionData.RankedFunction(
                            rank=0, function=api_pb2.Function(function_name=name)
                        )
                    ],
                    supported_input_formats=[api_pb2.DATA_FORMAT_CBOR],
                    supported_output_formats=[api_pb2.DATA_FORMAT_CBOR],
                ),
            )
        )

    async def FunctionMap(self, stream) -> None:
        request: api_pb2.FunctionMapRequest = await stream.recv_message()
        state = self._authenticate(stream)
        target = _find_function(state, request.function_id)
        if target is None:
            raise GRPCError(Status.NOT_FOUND, f"Function {request.function_id} is not deployed")
        if len(request.pipelined_inputs) != 1:
            raise GRPCError(Status.INVALID_ARGUMENT, "the fake takes exactly one pipelined input per call")
        args, kwargs = _decode_input(request.pipelined_inputs[0].input)
        outcome = await _play_worker(state, args, kwargs)
        self._record(target, args, kwargs, outcome)
        call_id = "fc-" + uuid.uuid4().hex[:20]
        await stream.send_message(
            api_pb2.FunctionMapResponse(
                function_call_id=call_id,
                pipelined_inputs=[
                    api_pb2.FunctionPutInputsResponseItem(idx=0, input_id="in-" + uuid.uuid4().hex[:20])
                ],
            )
        )

    def _record(self, target: tuple[str, str], args: list, kwargs: dict, outcome: str) -> None:
        line = {
            "app": target[0],
            "function": target[1],
            "args": [_summary(a) for a in args],
            "kwargs": {str(k): _summary(v) for k, v in kwargs.items()},
            "worker": outcome,
            "time": time.time(),
        }
        with self.calls_path.open("a") as f:
            f.write(json.dumps(line) + "\n")


def _handle_metadata(app: str, name: str) -> api_pb2.FunctionHandleMetadata:
    # Only CBOR is offered, so the client never sends a pickle for the fake to load.
    return api_pb2.FunctionHandleMetadata(
        function_name=name,
        function_type=api_pb2.Function.FUNCTION_TYPE_FUNCTION,
        app_id="ap-" + hashlib.sha256(app.encode()).hexdigest()[:20],
        supported_input_formats=[api_pb2.DATA_FORMAT_CBOR],
        supported_output_formats=[api_pb2.DATA_FORMAT_CBOR],
    )


def _find_function(state: dict[str, Any], fid: str) -> tuple[str, str] | None:
    for app, functions in (state.get("apps") or {}).items():
        for name in functions:
            if function_id(app, name) == fid:
                return app, name
    return None


def _decode_input(item: api_pb2.FunctionInput) -> tuple[list, dict]:
    import cbor2  # shipped with modal

    if item.args_blob_id or item.data_format != api_pb2.DATA_FORMAT_CBOR:
        raise GRPCError(Status.INVALID_ARGUMENT, "the fake only takes small CBOR-encoded inputs")
    try:
        args, kwargs = cbor2.loads(item.args)
        return list(args), dict(kwargs)
    except Exception:
        raise GRPCError(Status.INVALID_ARGUMENT, "input is not a CBOR (args, kwargs) pair") from None


async def _play_worker(state: dict[str, Any], args: list, kwargs: dict) -> str:
    """Do what the deployed worker would first do: claim the QUEUED row. Returns a one-line outcome."""
    dsn = state.get("dsn")
    row_id = kwargs.get("state_id", args[0] if args else None)
    if not dsn:
        return "recorded only (no dsn)"
    if row_id is None:
        return "skipped (no state id)"
    import psycopg
    from psycopg import sql

    table = sql.Identifier(*str(state.get("table") or "workflow_states").split("."))
    query = sql.SQL(
        "UPDATE {} SET status = 'IN_PROGRESS', updated_at = now() WHERE id = %s AND status = 'QUEUED'"
    ).format(table)
    try:
        async with await psycopg.AsyncConnection.connect(dsn, connect_timeout=5, autocommit=True) as conn:
            cur = await conn.execute(query, (row_id,))
            return f"updated {cur.rowcount} row(s)"
    except psycopg.Error as exc:
        return f"error: {type(exc).__name__}"


def _summary(value: Any, limit: int = 200) -> Any:
    """A JSON-safe, bounded rendering of one argument for calls.jsonl."""
    text = json.dumps(value, default=repr)
    return json.loads(text) if len(text) <= limit else text[:limit] + "..."


async def serve(host: str, port: int, state_path: Path) -> None:
    """Serve until SIGTERM or SIGINT, then finish in-flight calls and exit."""
    server = Server([FakeModal(state_path)])
    await server.start(host, port)
    print(f"modal fake listening on http://{host}:{port}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", type=Path, required=True)
    opts = parser.parse_args(argv)
    asyncio.run(serve(opts.host, opts.port, opts.state))


if __name__ == "__main__":
    main()
