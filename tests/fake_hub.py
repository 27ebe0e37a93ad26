"""A local stand-in for the Hugging Face Hub, for huggingface_hub 2.4.0's non-xet code paths.

Serves on 127.0.0.1 (random port) from a background thread; point the client at it with
HF_ENDPOINT=hub.endpoint and HF_HUB_DISABLE_XET=1 (so large files take the LFS "basic" path).
Implements exactly the endpoints that create_repo, create_commit, whoami, repo_info,
list_repo_tree and snapshot_download / hf_hub_download call (read from the installed client;
see ROUTES), with an LFS object store that the commit's lfsFile lines must refer to.

It records every request (method, path, status, whether a valid token came with it), every
commit (message, description, the files it added, deletions) and can be told to answer an
endpoint with an error (`hub.fail["commit"] = 500`) or to accept only one token (`token=`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pkl", ".wav")
USER = "fake-user"


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    sha = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n".encode()


@dataclass
class Commit:
    repo_id: str
    oid: str
    summary: str
    description: str
    files: dict[str, bytes]          # added or replaced in this commit
    lfs_paths: set[str]              # which of them came through LFS
    deleted: list[str]


@dataclass
class Repo:
    files: dict[str, bytes] = field(default_factory=dict)
    lfs: set[str] = field(default_factory=set)
    history: dict[str, tuple[dict[str, bytes], set[str]]] = field(default_factory=dict)
    head: str = ""

    def snapshot(self, summary: str) -> str:
        """Record the current tree as a new commit; return its 40-hex oid."""
        h = hashlib.sha1(f"{self.head}\n{summary}\n{len(self.history)}".encode())
        for path in sorted(self.files):
            h.update(f"{path}:{git_oid(self.files[path])}\n".encode())
        self.head = h.hexdigest()
        self.history[self.head] = (dict(self.files), set(self.lfs))
        return self.head


class FakeHub:
    """The server plus its state. Use as a context manager, or start() / stop()."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token                         # None: any non-empty bearer token is valid
        self.repos: dict[str, Repo] = {}
        self.lfs_store: dict[str, bytes] = {}
        self.commits: list[Commit] = []
        self.requests: list[tuple[str, str, int, bool]] = []
        self.validated_yaml: list[str] = []
        self.fail: dict[str, int] = {}             # endpoint name -> HTTP status to answer with
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "FakeHub":
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.hub = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; `endpoint` stays valid (and now refuses connections)."""
        if self._thread is not None and self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread = None

    __enter__ = start

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "server never started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- direct state access for tests -----------------------------------------------------
    def seed(self, repo_id: str, files: dict[str, bytes], summary: str = "seed") -> str:
        """Create/overwrite a repo with `files` in one commit, bypassing HTTP."""
        with self.lock:
            repo = self.repos.setdefault(repo_id, Repo())
            for path, data in files.items():
                repo.files[path] = data
                if path.endswith(LFS_SUFFIXES):
                    repo.lfs.add(path)
                    self.lfs_store[hashlib.sha256(data).hexdigest()] = data
            return repo.snapshot(summary)


# ----------------------------------------------------------------------------- HTTP handler
R, REV = r"(?P<repo>[^/]+/[^/]+)", r"(?P<rev>[^/]+)"
ROUTES: list[tuple[str, str, str]] = [   # (method, path regex, endpoint name)
    ("GET", r"/api/whoami-v2", "whoami"),                                  # auth check
    ("POST", r"/api/repos/create", "create"),                              # 409 when it exists
    ("POST", r"/api/validate-yaml", "validate-yaml"),                      # README front matter
    ("GET", rf"/api/models/{R}/tree/{REV}(?:/(?P<path>.*))?", "tree"),     # file listing
    ("POST", rf"/api/models/{R}/preupload/{REV}", "preupload"),            # lfs | regular
    ("POST", rf"/api/models/{R}/commit/{REV}", "commit"),                  # NDJSON commit
    ("GET", rf"/api/models/{R}(?:/revision/{REV})?", "info"),              # sha + siblings
    ("POST", rf"/{R}\.git/info/lfs/objects/batch", "lfs-batch"),          # LFS batch API
    ("PUT", r"/__lfs/(?P<oid>[0-9a-f]{64})", "lfs-upload"),                # LFS "basic" PUT
    ("POST", r"/__lfs/verify", "lfs-verify"),
    ("HEAD", rf"/{R}/resolve/{REV}/(?P<path>.+)", "resolve"),              # download metadata
    ("GET", rf"/{R}/resolve/{REV}/(?P<path>.+)", "resolve"),               # download
]
PUBLIC = {"info", "tree", "resolve", "lfs-upload"}   # anonymous reads; LFS PUTs are presigned


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}
        self.extra = extra   # more JSON fields, e.g. the 409 "url" create_repo(exist_ok) reads


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60                     # a stuck client can never hang a test forever

    def log_message(self, *args: Any) -> None:   # keep pytest output clean
        pass

    @property
    def hub(self) -> FakeHub:
        return self.server.hub  # type: ignore[attr-defined]

    def do_GET(self) -> None:   # every verb goes through one dispatcher
        self._dispatch(self.command)

    do_HEAD = do_POST = do_PUT = do_GET

    # -- plumbing ----------------------------------------------------------------------------
    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _authorized(self) -> bool | None:
        """True valid token, False invalid token, None no token at all."""
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return None
        return self.hub.token is None or auth[7:].strip() == self.hub.token

    def _send(self, status: int, body: bytes | Any = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _dispatch(self, method: str) -> None:
        path = unquote(urlsplit(self.path).path)
        body = self._body() if method in ("POST", "PUT") else b""
        auth = self._authorized()
        status = 500
        try:
            for m, pattern, name in ROUTES:
                match = re.fullmatch(pattern, path)
                if m == method and match:
                    break
            else:
                raise HubError(404, f"no route {method} {path}")
            bad_token = "Invalid credentials in Authorization header"   # the Hub's own wording
            if name in self.hub.fail:
                code = self.hub.fail[name]
                raise HubError(code, "Internal Error - injected by the test" if code >= 500 else bad_token,
                               headers={} if code >= 500 else {"X-Error-Message": bad_token})
            if auth is False or (auth is None and name not in PUBLIC):
                raise HubError(401, bad_token, headers={"X-Error-Message": bad_token})
            with self.hub.lock:
                status, payload, headers, ctype = getattr(self, "_" + name.replace("-", "_"))(
                    body=body, **match.groupdict())
            self._send(status, payload, headers, ctype)
        except HubError as e:
            status = e.status
            headers = {**e.headers, **({"X-Error-Code": e.code} if e.code else {})}
            self._send(e.status, {"error": e.message, **e.extra}, headers)
        finally:
            with self.hub.lock:
                self.hub.requests.append((method, path, status, auth is True))

    def _repo(self, repo_id: str) -> Repo:
        if repo_id not in self.hub.repos:
            raise HubError(404, "Repository not found", "RepoNotFound")
        return self.hub.repos[repo_id]

    def _tree_at(self, repo_id: str, rev: str | None) -> tuple[Repo, str, dict[str, bytes], set[str]]:
        repo = self._repo(repo_id)
        sha = repo.head if rev in (None, "main") else rev
        if sha not in repo.history:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        files, lfs = repo.history[sha]
        return repo, sha, files, lfs

    Result = tuple[int, Any, dict[str, str], str]

    # -- endpoints ---------------------------------------------------------------------------
    def _whoami(self, **_: Any) -> Result:
        auth = {"type": "access_token", "accessToken": {"role": "write"}}
        return 200, {"type": "user", "name": USER, "orgs": [], "auth": auth}, {}, "application/json"

    def _create(self, body: bytes, **_: Any) -> Result:
        req = json.loads(body)
        repo_id = f"{req.get('organization') or USER}/{req['name']}"
        url = f"{self.hub.endpoint}/{repo_id}"
        if repo_id in self.hub.repos:
            raise HubError(409, "You already created this model repo", url=url)
        repo = self.hub.repos[repo_id] = Repo()
        repo.files[".gitattributes"] = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
        repo.snapshot("initial commit")
        return 200, {"url": url, "name": repo_id, "id": repo_id}, {}, "application/json"

    def _validate_yaml(self, body: bytes, **_: Any) -> Result:
        import yaml   # PyYAML, as huggingface_hub's own card parser uses
        content = json.loads(body)["content"]
        self.hub.validated_yaml.append(content)
        m = re.match(r"^---\s*\n(.*?)\n---\s*\n", content, flags=re.S)
        try:
            meta = yaml.safe_load(m[1]) if m else None
            if m and not isinstance(meta, dict):
                raise ValueError("front matter is not a mapping")
        except Exception as e:  # noqa: BLE001 - the Hub answers 400 with the parser's complaint
            return 400, {"errors": [{"message": str(e)}]}, {}, "application/json"
        return 200, {"errors": [], "warnings": []}, {}, "application/json"

    def _info(self, repo: str, rev: str | None = None, **_: Any) -> Result:
        _, sha, files, _lfs = self._tree_at(repo, rev)
        return 200, {"id": repo, "modelId": repo, "sha": sha, "private": False, "tags": [],
                     "siblings": [{"rfilename": p} for p in sorted(files)]}, {}, "application/json"

    def _tree(self, repo: str, rev: str, path: str | None = None, **_: Any) -> Result:
        """Always the recursive listing: the only one huggingface_hub asks for here."""
        _, _sha, files, lfs = self._tree_at(repo, rev)
        entries = []
        for p in sorted(f for f in files if f.startswith(f"{path.rstrip('/')}/" if path else "")):
            data = files[p]
            entry: dict[str, Any] = {"type": "file", "path": p, "size": len(data), "oid": git_oid(data)}
            if p in lfs:
                pointer = lfs_pointer(data)
                entry |= {"oid": git_oid(pointer), "lfs": {"oid": hashlib.sha256(data).hexdigest(),
                                                          "size": len(data), "pointerSize": len(pointer)}}
            entries.append(entry)
        return 200, entries, {}, "application/json"

    def _preupload(self, repo: str, body: bytes, **_: Any) -> Result:
        r = self._repo(repo)
        out = []
        for f in json.loads(body)["files"]:
            sample = base64.b64decode(f["sample"])
            lfs = f["path"].endswith(LFS_SUFFIXES) or b"\0" in sample or f["size"] > 10_000_000
            old = r.files.get(f["path"])
            oid = None if old is None else (hashlib.sha256(old).hexdigest() if f["path"] in r.lfs
                                            else git_oid(old))
            out.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular",
                        "shouldIgnore": False, "oid": oid})
        return 200, {"files": out, "commitOid": r.head}, {}, "application/json"

    def _lfs_batch(self, repo: str, body: bytes, **_: Any) -> Result:
        self._repo(repo)
        req, objects = json.loads(body), []
        for o in req["objects"]:
            item: dict[str, Any] = {"oid": o["oid"], "size": o["size"], "authenticated": True}
            if o["oid"] not in self.hub.lfs_store:
                item["actions"] = {"upload": {"href": f"{self.hub.endpoint}/__lfs/{o['oid']}"},
                                   "verify": {"href": f"{self.hub.endpoint}/__lfs/verify"}}
            objects.append(item)
        return 200, {"transfer": "basic", "objects": objects}, {}, "application/vnd.git-lfs+json"

    def _lfs_upload(self, oid: str, body: bytes, **_: Any) -> Result:
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, "uploaded content does not match its sha256")
        self.hub.lfs_store[oid] = body
        return 200, b"", {"ETag": f'"{oid}"'}, "text/plain"

    def _lfs_verify(self, body: bytes, **_: Any) -> Result:
        o = json.loads(body)
        if o["oid"] not in self.hub.lfs_store or len(self.hub.lfs_store[o["oid"]]) != o["size"]:
            raise HubError(404, f"LFS object {o['oid']} not found")
        return 200, {"success": True}, {}, "application/json"

    def _commit(self, repo: str, rev: str, body: bytes, **_: Any) -> Result:
        r = self._repo(repo)
        if rev != "main":
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next((ln["value"] for ln in lines if ln["key"] == "header"), None)
        if header is None or not header.get("summary"):
            raise HubError(400, "commit has no header / summary")
        added, lfs_paths, deleted = {}, set(), []
        for ln in lines:   # validate everything before touching the repo: commits are atomic
            v = ln["value"]
            if ln["key"] == "file":
                added[v["path"]] = base64.b64decode(v["content"])
            elif ln["key"] == "lfsFile":
                if v["oid"] not in self.hub.lfs_store:
                    raise HubError(400, f"LFS object {v['oid']} for {v['path']} was never uploaded")
                added[v["path"]] = self.hub.lfs_store[v["oid"]]
                lfs_paths.add(v["path"])
            elif ln["key"] in ("deletedFile", "deletedFolder"):
                deleted.append(v["path"])
        for p in deleted:
            for f in [f for f in r.files if f == p or f.startswith(p.rstrip("/") + "/")]:
                del r.files[f]
                r.lfs.discard(f)
        for p, data in added.items():
            r.files[p] = data
            (r.lfs.add if p in lfs_paths else r.lfs.discard)(p)
        oid = r.snapshot(header["summary"])
        self.hub.commits.append(Commit(repo, oid, header["summary"], header.get("description", ""),
                                       added, lfs_paths, deleted))
        url = f"{self.hub.endpoint}/{repo}/commit/{oid}"
        return 200, {"success": True, "commitOid": oid, "commitUrl": url, "pullRequestUrl": None}, \
            {}, "application/json"

    def _resolve(self, repo: str, rev: str, path: str, **_: Any) -> Result:
        _, sha, files, lfs = self._tree_at(repo, rev)
        if path not in files:
            raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": sha})
        data = files[path]
        headers = {"X-Repo-Commit": sha, "ETag": f'"{git_oid(data)}"'}
        if path in lfs:
            sha256 = hashlib.sha256(data).hexdigest()
            headers |= {"ETag": f'"{sha256}"', "X-Linked-Etag": f'"{sha256}"',
                        "X-Linked-Size": str(len(data))}
        return 200, data, headers, "application/octet-stream"
