"""A loopback stand-in for the Hugging Face Hub and ModelScope upload APIs.

Why: upload tests must exercise the official clients (`huggingface_hub`,
`modelscope`) end to end, and nothing may leave the machine. The server
implements only the endpoints those clients call for "create repo + upload a
folder" (found by logging their requests), stores what arrives, and can inject
failures (503s, hangs) to test retries.

Hugging Face endpoints: POST /api/repos/create, POST /api/models/{repo}/preupload/{rev}
(answers `regular` for every file so contents travel base64-inline in the commit),
POST /api/models/{repo}/commit/{rev} (NDJSON), POST /api/models/{repo}/branch/{name},
POST /api/validate-yaml.
ModelScope endpoints: POST /api/v1/models, POST /api/v1/repos/models/{repo}/info/lfs/objects/batch,
PUT /lfs-upload/{oid}, POST /api/v1/repos/models/{repo}/commit/{rev}.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0


@dataclass
class HubState:
    """What the server received; tests read it after the upload."""

    requests: list[Request] = field(default_factory=list)
    repos: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)
    commits: list[dict[str, Any]] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)
    fail_first: int = 0
    fail_always: bool = False
    fail_status: int = 503
    hang_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def repo_files(self, repo: str, revision: str) -> dict[str, bytes]:
        return self.files.get((repo, revision), {})


_HF_REPO = r"(?P<repo>[^/]+/[^/]+)"
_HF_ROUTES = [
    ("POST", re.compile(r"^/api/repos/create$"), "hf_create"),
    ("POST", re.compile(rf"^/api/models/{_HF_REPO}/preupload/(?P<rev>[^/]+)$"), "hf_preupload"),
    ("POST", re.compile(rf"^/api/models/{_HF_REPO}/commit/(?P<rev>[^/]+)$"), "hf_commit"),
    ("POST", re.compile(rf"^/api/models/{_HF_REPO}/branch/(?P<rev>[^/]+)$"), "hf_branch"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "ok"),
    ("POST", re.compile(r"^/api/v1/models$"), "ms_create"),
    ("POST", re.compile(rf"^/api/v1/repos/models/{_HF_REPO}/info/lfs/objects/batch$"), "ms_lfs_batch"),
    ("PUT", re.compile(r"^/lfs-upload/(?P<oid>[0-9a-f]{64})$"), "ms_lfs_put"),
    ("POST", re.compile(rf"^/api/v1/repos/models/{_HF_REPO}/commit/(?P<rev>[^/]+)$"), "ms_commit"),
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _reply(self, status: int, payload: Any, req: Request) -> None:
        req.status = status
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        req = Request(self.command, path, {k.lower(): v for k, v in self.headers.items()}, body)
        with state.lock:
            state.requests.append(req)
            failing = state.fail_always or len(state.requests) <= state.fail_first
        if state.hang_s:
            time.sleep(state.hang_s)
        if failing:
            return self._reply(state.fail_status, {"error": f"HTTP {state.fail_status} (injected)"}, req)
        for method, pattern, name in _HF_ROUTES:
            match = pattern.match(path)
            if method == self.command and match:
                groups = {k: unquote(v) for k, v in match.groupdict().items()}
                status, payload = getattr(self, name)(req, **groups)
                return self._reply(status, payload, req)
        return self._reply(404, {"error": f"fake hub: no route for {self.command} {path}"}, req)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    # -- helpers -----------------------------------------------------------------------------------------
    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def _store(self, repo: str, rev: str, path: str, content: bytes) -> None:
        self.server.state.files.setdefault((repo, rev), {})[path] = content

    def ok(self, req: Request) -> tuple[int, Any]:
        return 200, {}

    # -- Hugging Face ------------------------------------------------------------------------------------
    def hf_create(self, req: Request) -> tuple[int, Any]:
        payload = json.loads(req.body)
        repo = f"{payload['organization']}/{payload['name']}"
        url = f"{self.base}/{repo}"
        if repo in self.server.state.repos:
            return 409, {"error": "You already created this model repo", "url": url}
        self.server.state.repos[repo] = {"hub": "hf", **payload}
        return 200, {"url": url, "name": repo}

    def hf_preupload(self, req: Request, repo: str, rev: str) -> tuple[int, Any]:
        files = json.loads(req.body)["files"]
        return 200, {
            "files": [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                for f in files
            ]
        }

    def hf_commit(self, req: Request, repo: str, rev: str) -> tuple[int, Any]:
        if repo not in self.server.state.repos:
            return 404, {"error": "Repository not found"}
        header: dict[str, Any] = {}
        for line in req.body.splitlines():
            item = json.loads(line)
            if item["key"] == "header":
                header = item["value"]
            elif item["key"] == "file":
                value = item["value"]
                assert value["encoding"] == "base64", value
                self._store(repo, rev, value["path"], base64.b64decode(value["content"]))
            else:
                return 400, {"error": f"fake hub: unsupported commit operation {item['key']}"}
        oid = hashlib.sha1(req.body).hexdigest()
        self.server.state.commits.append({"hub": "hf", "repo": repo, "revision": rev, **header})
        return 200, {"commitUrl": f"{self.base}/{repo}/commit/{oid}", "commitOid": oid, "success": True}

    def hf_branch(self, req: Request, repo: str, rev: str) -> tuple[int, Any]:
        return 200, {}

    # -- ModelScope --------------------------------------------------------------------------------------
    def ms_create(self, req: Request) -> tuple[int, Any]:
        payload = json.loads(req.body)
        repo = f"{payload['Path']}/{payload['Name']}"
        if repo in self.server.state.repos:
            return 409, {"Code": 409, "Message": "repo already exists", "Success": False}
        self.server.state.repos[repo] = {"hub": "modelscope", **payload}
        return 200, {"Code": 200, "Data": {"Path": payload["Path"], "Name": payload["Name"]}, "Success": True}

    def ms_lfs_batch(self, req: Request, repo: str) -> tuple[int, Any]:
        objects = []
        for obj in json.loads(req.body)["objects"]:
            entry: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.server.state.blobs:
                entry["actions"] = {"upload": {"href": f"{self.base}/lfs-upload/{obj['oid']}"}}
            objects.append(entry)
        return 200, {"Code": 200, "Data": {"objects": objects}, "Success": True}

    def ms_lfs_put(self, req: Request, oid: str) -> tuple[int, Any]:
        if hashlib.sha256(req.body).hexdigest() != oid:
            return 400, {"Code": 400, "Message": "sha256 mismatch"}
        self.server.state.blobs[oid] = req.body
        return 200, {}

    def ms_commit(self, req: Request, repo: str, rev: str) -> tuple[int, Any]:
        if repo not in self.server.state.repos:
            return 404, {"Code": 404, "Message": "repo not exist", "Success": False}
        payload = json.loads(req.body)
        for action in payload["actions"]:
            if action["type"] == "lfs":
                content = self.server.state.blobs.get(action["sha256"])
                if content is None:
                    return 400, {"Code": 400, "Message": f"blob {action['sha256']} was never uploaded"}
            else:
                content = base64.b64decode(action["content"])
            self._store(repo, rev, action["path"], content)
        self.server.state.commits.append(
            {"hub": "modelscope", "repo": repo, "revision": rev, "summary": payload["commit_message"]}
        )
        return 200, {"Code": 200, "Data": {}, "Success": True}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: HubState


class FakeHub:
    """Context manager: serve on 127.0.0.1 on a random port in a thread."""

    def __init__(self, **failures: Any) -> None:
        self.state = HubState(**failures)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
