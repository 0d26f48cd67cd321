"""A local Hub-compatible HTTP server and the ``hub_endpoint`` fixture, so that publishing code (huggingface_hub's
HfApi / hf_hub_download / snapshot_download, datasets' push_to_hub / load_dataset) runs end to end on 127.0.0.1.

It speaks the part of the Hub API these clients use: repos, refs, trees, paths-info, preupload, NDJSON commits, the
LFS batch API (basic transfer and verify) and resolve with ranges; repos live in memory (tests/hub_storage.py).
With ``pytest_plugins = ["hub_server"]`` in tests/conftest.py a test takes ``hub_endpoint``::

    hub_endpoint.api.create_repo("detector")            # an HfApi with the write token
    hub_endpoint.fail("lfs_upload", nth=2, status=403)  # the 2nd LFS upload from now fails
    subprocess.run([...], env=hub_endpoint.env())       # a script that reads HF_ENDPOINT and HF_TOKEN
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from hub_storage import HubError, Repo, Storage, folders_of

USER = "fakescope-tester"
BAD_TOKEN = "Invalid credentials in Authorization header"  # the Hub's words: the client tells it from a missing repo
API = r"/api/(?P<kind>models|datasets|spaces)/(?P<repo_id>[^/]+/[^/]+)"
REPO = r"/(?:(?P<kind>datasets|spaces)/)?(?P<repo_id>[^/]+/[^/]+)"
ROUTES = [  # (methods, name, path pattern): names are what HubEndpoint.fail and HubEndpoint.calls refer to
    ("GET", "whoami", r"/api/whoami-v2"),
    ("POST", "validate_yaml", r"/api/validate-yaml"),
    ("POST", "create_repo", r"/api/repos/create"),
    ("DELETE", "delete_repo", r"/api/repos/delete"),
    ("PUT", "settings", API + r"/settings"),
    ("GET", "refs", API + r"/refs"),
    ("GET", "tree", API + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?"),
    ("POST", "paths_info", API + r"/paths-info/(?P<rev>[^/]+)"),
    ("GET", "commits", API + r"/commits/(?P<rev>[^/]+)"),
    ("POST", "preupload", API + r"/preupload/(?P<rev>[^/]+)"),
    ("POST", "commit", API + r"/commit/(?P<rev>[^/]+)"),
    ("POST DELETE", "branch", API + r"/branch/(?P<rev>[^/]+)"),
    ("POST DELETE", "tag", API + r"/tag/(?P<rev>[^/]+)"),
    ("GET", "repo_info", API + r"(?:/revision/(?P<rev>[^/]+))?"),
    ("POST", "lfs_batch", REPO + r"\.git/info/lfs/objects/batch"),
    ("PUT", "lfs_upload", r"/lfs-upload/(?P<ticket>[0-9a-f]+)"),
    ("POST", "lfs_verify", r"/lfs-verify/(?P<ticket>[0-9a-f]+)"),
    ("GET HEAD", "resolve", REPO + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)"),
]
COMPILED = [(methods.split(), name, re.compile(pattern)) for methods, name, pattern in ROUTES]
KINDS = {None: "model", "models": "model", "datasets": "dataset", "spaces": "space"}
# Settings of the user's shell that would send clients elsewhere or hand them a token.
UNSET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HUGGINGFACE_HUB_CACHE", "HF_ASSETS_CACHE",
             "HF_XET_CACHE", "HF_DATASETS_CACHE", "HUGGINGFACE_CO_STAGING", "HF_OIDC_RESOURCE",
             "TRANSFORMERS_OFFLINE")  # fmt: skip


@dataclass
class Failure:
    """Answer calls number ``nth`` .. ``nth + times - 1`` of ``route`` with ``status`` (or drop the connection)."""

    route: str
    nth: int = 1
    times: int | None = 1
    status: int = 500
    drop: bool = False
    fired: int = 0


class HubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, token: str):
        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.token = token
        self.storage = Storage(author=USER)
        self.calls: Counter[str] = Counter()
        self.failures: list[Failure] = []

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client hanging up is not a server error
            super().handle_error(request, client_address)

    def repo_url(self, repo: Repo) -> str:
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        return f"{self.url}/{prefix}{repo.repo_id}"

    def take_failure(self, route: str) -> Failure | None:
        """Count a call of ``route`` and return the failure it is due for, if any (under the storage lock)."""
        self.calls[route] += 1
        for rule in self.failures:
            if (
                rule.route == route
                and self.calls[route] >= rule.nth
                and (rule.times is None or rule.fired < rule.times)
            ):
                rule.fired += 1
                return rule
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: Nagle would add 40 ms per request
    timeout = 60  # an idle keep-alive connection must not hold its thread forever
    server: HubServer

    def log_message(self, *args) -> None:  # a line per request would drown pytest's captured output
        pass

    def do_GET(self) -> None:
        self.dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def dispatch(self) -> None:
        url = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.body, self.reply = self.read_body(), None
        with self.server.storage.lock:  # one request at a time sees and changes the repos; the reply goes out after
            self.route(url.path)
        if self.reply is None:
            self.close_connection = True  # no answer at all: the client sees the connection go away
            return
        self.end_headers()
        self.wfile.write(self.reply)

    def route(self, path: str) -> None:
        found = [(name, m) for methods, name, p in COMPILED if self.command in methods and (m := p.fullmatch(path))]
        if not found:
            return self.send_error_json(HubError(404, f"No route for {self.command} {path}"))
        name, match = found[0]
        rule = self.server.take_failure(name)
        if rule is not None:
            message = f"Injected failure of {name} call #{self.server.calls[name]}"
            return None if rule.drop else self.send_json({"error": message}, rule.status)
        args = {k: unquote(v) for k, v in match.groupdict().items() if v is not None and k != "kind"}
        if "repo_id" in args:
            args["repo_type"] = KINDS[match.group("kind")]
        try:
            getattr(self, f"route_{name}")(**args)
        except HubError as e:
            if e.status == 401 and e.message != BAD_TOKEN and "repo_id" in args and name != "lfs_batch":
                # The client maps such a 401 on a repo URL of huggingface.co to RepositoryNotFoundError by matching
                # https:// URLs; the code gives the same error type on this http:// endpoint.
                e.code = "RepoNotFound"
            self.send_error_json(e)
        except Exception as e:  # a server bug must fail the test loudly, not hang it
            self.send_error_json(HubError(500, f"{type(e).__name__}: {e}"))

    def read_body(self) -> bytes:
        if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline().strip():
            pass
        return b"".join(chunks)

    def json_body(self) -> dict:
        try:
            return json.loads(self.body or b"{}")
        except ValueError as e:
            raise HubError(400, f"Invalid JSON body: {e}") from None

    def send(self, status: int, body: bytes, headers: dict | None = None, content_type="application/json") -> None:
        self.send_response(status)
        for key, value in {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(key, str(value))
        self.reply = body if self.command != "HEAD" else b""

    def send_json(self, obj, status: int = 200, headers: dict | None = None, content_type="application/json") -> None:
        self.send(status, json.dumps(obj).encode(), headers, content_type)

    def send_error_json(self, error: HubError) -> None:
        headers = dict(error.headers)
        if error.code:
            headers["X-Error-Code"] = error.code
        if error.status == 401:
            headers["X-Error-Message"] = error.message.encode("ascii", "replace").decode()
        self.send_json({"error": error.message}, error.status, headers)

    # Auth: writes need the fixture's token; reads of public repos need none.

    def authenticated(self) -> bool:
        auth = self.headers.get("Authorization")
        if auth is None:
            return False
        if auth != f"Bearer {self.server.token}":
            raise HubError(401, BAD_TOKEN)
        return True

    def require_token(self) -> None:
        if not self.authenticated():
            raise HubError(401, "Invalid username or password.")

    def readable(self, repo_type: str, repo_id: str) -> Repo:
        logged_in = self.authenticated()
        try:
            repo = self.server.storage.get(repo_type, repo_id)
        except HubError as e:
            e.status = e.status if logged_in else 401  # the Hub does not tell anonymous users what exists
            raise
        if repo.private and not logged_in:
            raise HubError(401, "Repository not found", "RepoNotFound")
        return repo

    def writable(self, repo_type: str, repo_id: str) -> Repo:
        self.require_token()
        return self.server.storage.get(repo_type, repo_id)

    # Routes

    def route_whoami(self) -> None:
        self.require_token()
        auth = {"type": "access_token", "accessToken": {"displayName": "tests", "role": "write"}}
        self.send_json({"type": "user", "name": USER, "fullname": "FakeScope tester", "orgs": [], "auth": auth})

    def route_validate_yaml(self) -> None:
        self.send_json({"errors": [], "warnings": []})

    def route_create_repo(self) -> None:
        self.require_token()
        body = self.json_body()
        name, namespace, repo_type = body.get("name") or "", body.get("organization") or USER, body.get("type")
        if not re.fullmatch(r"[\w.-]{1,96}", name) or "--" in name or ".." in name or name.endswith(".git"):
            raise HubError(400, f"Invalid repo name: {name!r}")
        private = body.get("visibility", "private" if body.get("private") else "public") == "private"
        repo, created = self.server.storage.create_repo(repo_type or "model", f"{namespace}/{name}", private)
        url = self.server.repo_url(repo)
        if not created:  # with exist_ok the client takes the url from this answer
            return self.send_json({"error": f"You already created this {repo.repo_type} repo", "url": url}, 409)
        self.send_json({"url": url, "name": repo.repo_id, "id": repo.repo_id})

    def route_delete_repo(self) -> None:
        self.require_token()
        body = self.json_body()
        repo_id = f"{body.get('organization') or USER}/{body.get('name')}"
        self.server.storage.delete_repo(body.get("type") or "model", repo_id)
        self.send_json({})

    def route_settings(self, repo_type: str, repo_id: str) -> None:
        repo, body = self.writable(repo_type, repo_id), self.json_body()
        if "visibility" in body or "private" in body:
            repo.private = body.get("visibility", "private" if body.get("private") else "public") == "private"
        self.send_json({})

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in ("1", "true")

    def route_repo_info(self, repo_type: str, repo_id: str, rev: str = "main") -> None:
        repo = self.readable(repo_type, repo_id)
        self.send_json(self.server.storage.repo_json(repo, repo.resolve(rev), blobs=self.flag("blobs")))

    def route_refs(self, repo_type: str, repo_id: str) -> None:
        self.send_json(self.readable(repo_type, repo_id).refs_json())

    def route_tree(self, repo_type: str, repo_id: str, rev: str, path: str = "") -> None:
        repo = self.readable(repo_type, repo_id)
        commit, storage = repo.resolve(rev), self.server.storage
        self.send_json(storage.tree_json(repo, commit, path.strip("/"), self.flag("recursive"), self.flag("expand")))

    def route_paths_info(self, repo_type: str, repo_id: str, rev: str) -> None:
        repo = self.readable(repo_type, repo_id)
        commit = repo.resolve(rev)
        form = parse_qs(self.body.decode())  # huggingface_hub posts a form: paths=a&paths=b&expand=False
        expand = form.get("expand", ["false"])[-1].lower() in ("1", "true")
        existing = folders_of(commit.files) | set(commit.files)
        paths = dict.fromkeys(p.strip("/") for p in form.get("paths", []) if p.strip("/") in existing)
        self.send_json([self.server.storage.entry_json(repo, commit, p, expand) for p in paths])

    def route_commits(self, repo_type: str, repo_id: str, rev: str) -> None:
        self.send_json(self.readable(repo_type, repo_id).commits_json(rev))

    def route_preupload(self, repo_type: str, repo_id: str, rev: str) -> None:
        repo = self.writable(repo_type, repo_id)
        commit = repo.resolve(rev)
        files = [self.server.storage.preupload_json(commit, f) for f in self.json_body().get("files", [])]
        self.send_json({"files": files, "commitOid": commit.oid})

    def route_commit(self, repo_type: str, repo_id: str, rev: str) -> None:
        repo = self.writable(repo_type, repo_id)
        if self.flag("create_pr"):
            raise HubError(400, "Pull requests are not supported by this local Hub")
        try:
            lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        except ValueError as e:
            raise HubError(400, f"Invalid NDJSON commit payload: {e}") from None
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The commit payload must start with a header line")
        branch = rev.removeprefix("refs/heads/")
        commit = self.server.storage.commit(repo, branch, lines[1:], lines[0].get("value") or {})
        url = f"{self.server.repo_url(repo)}/commit/{commit.oid}"
        self.send_json({"success": True, "commitOid": commit.oid, "commitUrl": url, "hookOutput": ""})

    def route_branch(self, repo_type: str, repo_id: str, rev: str) -> None:
        repo = self.writable(repo_type, repo_id)
        if self.command == "DELETE" and rev == "main":
            raise HubError(403, "The default branch cannot be deleted")
        if self.command == "DELETE" and repo.branches.pop(rev, None) is None:
            raise HubError(404, f"Branch {rev} does not exist", "RevisionNotFound")
        if self.command == "POST" and rev in repo.branches:
            raise HubError(409, f"Reference already exists: refs/heads/{rev}")
        if self.command == "POST":
            repo.branches[rev] = repo.resolve(self.json_body().get("startingPoint") or "main").oid
        self.send_json({})

    def route_tag(self, repo_type: str, repo_id: str, rev: str) -> None:
        repo, tag = self.writable(repo_type, repo_id), self.json_body().get("tag", "")
        if self.command == "DELETE" and repo.tags.pop(rev, None) is None:
            raise HubError(404, f"Tag {rev} does not exist", "RevisionNotFound")
        if self.command == "POST" and tag in repo.tags:
            raise HubError(409, f"Reference already exists: refs/tags/{tag}")
        if self.command == "POST":
            repo.tags[tag] = repo.resolve(rev).oid
        self.send_json({})

    def route_lfs_batch(self, repo_type: str, repo_id: str) -> None:
        repo, body = self.writable(repo_type, repo_id), self.json_body()
        if body.get("operation") != "upload" or "basic" not in body.get("transfers", ["basic"]):
            raise HubError(400, "Only the upload operation with the basic transfer is supported")
        objects = self.server.storage.lfs_batch_json(repo, body.get("objects", []), self.server.url)
        self.send_json({"transfer": "basic", "objects": objects}, content_type="application/vnd.git-lfs+json")

    def route_lfs_upload(self, ticket: str) -> None:  # a presigned URL: no Authorization header, like S3
        oid = self.server.storage.lfs_receive(ticket, self.body)
        self.send(200, b"", {"ETag": f'"{oid}"'})

    def route_lfs_verify(self, ticket: str) -> None:
        self.require_token()
        repo, oid, size = self.server.storage.lfs_ticket(ticket)
        body = self.json_body()
        if body.get("oid") != oid or body.get("size") != size or oid not in repo.lfs_objects:
            raise HubError(404, f"LFS object {body.get('oid')} was not uploaded")
        self.send_json({})

    def route_resolve(self, repo_type: str, repo_id: str, rev: str, path: str) -> None:
        repo = self.readable(repo_type, repo_id)
        commit = repo.resolve(rev)
        entry = commit.files.get(path)
        headers = {"X-Repo-Commit": commit.oid}
        if entry is None:
            raise HubError(404, f"Entry not found: {path} at {rev}", "EntryNotFound", headers)
        data = self.server.storage.blobs[entry.sha256]
        headers.update({"ETag": f'"{entry.oid}"', "Accept-Ranges": "bytes"})
        if entry.lfs:
            headers.update({"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": entry.size})
        status, ranged = 200, re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if ranged and ranged.group(1) + ranged.group(2):
            first, last = ranged.groups()
            start = int(first) if first else max(len(data) - int(last), 0)
            end = min(int(last), len(data) - 1) if first and last else len(data) - 1
            if start >= len(data) or start > end:
                return self.send(416, b"", {**headers, "Content-Range": f"bytes */{len(data)}"})
            status, data = 206, data[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{entry.size}"
        self.send(status, data, headers, content_type="application/octet-stream")


class HubEndpoint:
    """What ``hub_endpoint`` yields: the server's ``url``, a write ``token``, an ``api`` (HfApi bound to both), the
    ``storage`` behind it, per-route ``calls`` counts and ``fail`` for failure injection."""

    def __init__(self, server: HubServer, home: Path):
        from huggingface_hub import HfApi

        self.server, self.storage, self.home = server, server.storage, home
        self.url, self.token, self.user = server.url, server.token, USER
        self.api = HfApi(endpoint=self.url, token=self.token)

    @property
    def calls(self) -> Counter[str]:
        return self.server.calls

    def fail(
        self, route: str, *, nth: int = 1, times: int | None = 1, status: int = 500, drop: bool = False
    ) -> Failure:
        """Fail the ``nth`` next call of ``route`` (a name in ROUTES, e.g. ``lfs_upload`` or ``commit``) and the
        ``times - 1`` after it (``times=None``: all of them) with ``status``, or by dropping the connection.

        huggingface_hub retries preupload, LFS batch/upload/verify and tree listings on 5xx and dropped connections
        (sleeping 1, 2, 4, 8 s): ``times=1`` makes a transient failure, a status it does not retry (e.g. 403) a
        permanent one that fails fast. The commit call itself is never retried."""
        if route not in {name for _, name, _ in ROUTES}:
            raise ValueError(f"Unknown route {route!r}; one of {[name for _, name, _ in ROUTES]}")
        with self.storage.lock:
            rule = Failure(route, self.server.calls[route] + nth, times, status, drop)
            self.server.failures.append(rule)
        return rule

    def clear_failures(self) -> None:
        with self.storage.lock:
            self.server.failures.clear()

    def env(self, token: bool = True) -> dict[str, str]:
        """The environment for a subprocess (e.g. a publishing script) that must talk to this server."""
        return {**os.environ, "HF_TOKEN": self.token} if token else dict(os.environ)


def _point_clients_at(monkeypatch: pytest.MonkeyPatch, url: str, home: Path) -> None:
    """Environment for subprocesses, plus the values huggingface_hub and datasets read once at import time."""
    from huggingface_hub import constants, hf_api
    from huggingface_hub.utils import _cache_manager, _http

    for name in UNSET_ENV:
        monkeypatch.delenv(name, raising=False)
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1,localhost"]))
    env = {"HF_ENDPOINT": url, "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"), "HF_HUB_DISABLE_XET": "1",
           "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_UPDATE_DOWNLOAD_COUNTS": "0", "NO_PROXY": no_proxy, "no_proxy": no_proxy}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    paths = {"HF_HOME": "", "HF_HUB_CACHE": "hub", "HUGGINGFACE_HUB_CACHE": "hub", "HF_ASSETS_CACHE": "assets",
             "HUGGINGFACE_ASSETS_CACHE": "assets", "HF_XET_CACHE": "xet", "HF_TOKEN_PATH": "token",
             "HF_STORED_TOKENS_PATH": "stored_tokens", "AGENT_HARNESSES_PATH": ".agent_harnesses.json",
             "CHECK_FOR_UPDATE_DONE_PATH": ".check_for_update_done",
             "CHECK_FOR_SKILL_UPDATE_DONE_PATH": ".check_for_skill_update_done"}  # fmt: skip
    for name, sub in paths.items():
        monkeypatch.setattr(constants, name, str(home / sub) if sub else str(home), raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_URL_HOSTS", constants.HF_URL_HOSTS | {"127.0.0.1"})
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # hf_xet is installed and would bypass the LFS API
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(hf_api.api, "endpoint", url)  # module-level functions (hf_api.upload_file, ...) use this one
    monkeypatch.setattr(_http, "_HUB_ORIGINS", _http._HUB_ORIGINS | {_http._url_origin(url)})
    monkeypatch.setattr(_cache_manager, "HF_HUB_CACHE", str(home / "hub"))
    if importlib.util.find_spec("datasets") is None:
        return
    from datasets import config

    values = {"HF_ENDPOINT": url, "HUB_DATASETS_URL": url + "/datasets/{repo_id}/resolve/{revision}/{path}",
              "HF_HUB_OFFLINE": False, "HF_DATASETS_OFFLINE": False, "HF_UPDATE_DOWNLOAD_COUNTS": False,
              # The parquet export lives on a datasets-server host derived from the endpoint: nothing answers there.
              "USE_PARQUET_EXPORT": False, "HF_CACHE_HOME": str(home), "HF_DATASETS_CACHE": home / "datasets",
              "HF_MODULES_CACHE": home / "modules", "DOWNLOADED_DATASETS_PATH": home / "datasets" / "downloads",
              "EXTRACTED_DATASETS_PATH": home / "datasets" / "downloads" / "extracted"}  # fmt: skip
    for name, value in values.items():
        monkeypatch.setattr(config, name, value)


@pytest.fixture(name="hub_endpoint")
def hub_endpoint_fixture(monkeypatch: pytest.MonkeyPatch, tmp_path_factory) -> Iterator[HubEndpoint]:
    """A fresh local Hub for one test; huggingface_hub and datasets talk to it, with an empty HF_HOME and no token."""
    from huggingface_hub import close_session

    server = HubServer(token="hf_local_" + secrets.token_hex(12))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        home = tmp_path_factory.mktemp("hf_home")
        _point_clients_at(monkeypatch, server.url, home)
        close_session()  # the shared HTTP client keeps proxies and pooled connections from before
        yield HubEndpoint(server, home)
    finally:
        close_session()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
