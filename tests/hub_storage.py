"""In-memory repositories for the local Hub of tests/hub_server.py: immutable commits, branches, tags, LFS objects."""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import itertools
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType

# Files over this size go to LFS whatever their name (the Hub uses 10 MB; smaller keeps test files small).
LFS_THRESHOLD = 1_000_000
LFS_SUFFIXES = ("7z", "arrow", "bin", "bz2", "ckpt", "ftz", "gz", "h5", "joblib", "jpeg", "jpg", "mlmodel", "model",
                "msgpack", "npy", "npz", "onnx", "ot", "parquet", "pb", "pickle", "pkl", "png", "pt", "pth", "rar",
                "safetensors", "tar", "tflite", "tgz", "wasm", "xz", "zip", "zst")  # fmt: skip
GITATTRIBUTES = "".join(f"*.{ext} filter=lfs diff=lfs merge=lfs -text\n" for ext in LFS_SUFFIXES).encode()
SHA256 = re.compile(r"[0-9a-f]{64}")
COMMIT_ID = re.compile(r"[0-9a-f]{40}")


class HubError(Exception):
    """An error the server turns into an HTTP answer; ``code`` becomes X-Error-Code (the client maps it to a type)."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class Entry:
    """A file in a commit: its content is ``Storage.blobs[sha256]``; ``oid`` is the git object id (of the pointer
    file for LFS, as on the Hub)."""

    sha256: str
    size: int
    lfs: bool
    oid: str


@dataclass(frozen=True)
class Commit:
    oid: str
    parent: str | None
    files: Mapping[str, Entry]
    title: str
    message: str
    date: str
    author: str


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    lfs_objects: set[str] = field(default_factory=set)  # LFS objects are scoped to a repo, as on the Hub

    def resolve(self, revision: str) -> Commit:
        """The commit a branch, tag, ``refs/...`` name or commit id points to."""
        for prefix, refs in (("refs/heads/", self.branches), ("refs/tags/", self.tags)):
            if revision.startswith(prefix) and revision[len(prefix) :] in refs:
                return self.commits[refs[revision[len(prefix) :]]]
        oid = self.branches.get(revision) or self.tags.get(revision)
        if oid is None and COMMIT_ID.fullmatch(revision):
            oid = revision if revision in self.commits else None
        if oid is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return self.commits[oid]

    def refs_json(self) -> dict:
        refs = {
            kind: [{"name": n, "ref": f"refs/{prefix}/{n}", "targetCommit": oid} for n, oid in sorted(names.items())]
            for kind, prefix, names in (("branches", "heads", self.branches), ("tags", "tags", self.tags))
        }
        return {**refs, "converts": [], "pullRequests": []}

    def commits_json(self, revision: str) -> list[dict]:
        return [
            {"id": c.oid, "title": c.title, "message": c.message, "date": c.date, "authors": [{"user": c.author}]}
            for c in self.history(revision)
        ]

    def history(self, revision: str) -> list[Commit]:
        commit, out = self.resolve(revision), []
        while commit is not None:
            out.append(commit)
            commit = self.commits.get(commit.parent) if commit.parent else None
        return out


def folders_of(files: Mapping[str, Entry]) -> set[str]:
    return {"/".join(path.split("/")[:i]) for path in files for i in range(1, path.count("/") + 1)}


def tree_oid(files: Mapping[str, Entry], folder: str) -> str:
    inside = sorted((p, e.oid) for p, e in files.items() if p.startswith(folder + "/"))
    return hashlib.sha1(repr(inside).encode()).hexdigest()


def check_path(path: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts) or parts[0] == ".git":
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


class Storage:
    """Repos keyed by (type, id) and a content-addressed blob store, all guarded by one lock."""

    def __init__(self, author: str):
        self.author = author
        self.lock = threading.RLock()
        self.blobs: dict[str, bytes] = {}
        self.repos: dict[tuple[str, str], Repo] = {}
        self._counter = itertools.count()
        self.tickets: dict[str, tuple[Repo, str, int]] = {}  # LFS upload URL id -> repo, oid, size

    def put_blob(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        with self.lock:
            self.blobs.setdefault(sha, bytes(data))
        return sha

    def entry(self, data: bytes, lfs: bool) -> Entry:
        sha = self.put_blob(data)
        return Entry(sha, len(data), lfs, git_blob_oid(lfs_pointer(sha, len(data)) if lfs else data))

    def get(self, repo_type: str, repo_id: str) -> Repo:
        with self.lock:
            repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, f"Repository not found: {repo_type} {repo_id}", "RepoNotFound")
        return repo

    def create_repo(self, repo_type: str, repo_id: str, private: bool) -> tuple[Repo, bool]:
        """The repo and whether it was created; a new repo starts with a commit of .gitattributes, as on the Hub."""
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                return self.repos[(repo_type, repo_id)], False
            repo = Repo(repo_type, repo_id, private, now_iso())
            self.repos[(repo_type, repo_id)] = repo
            self._add_commit(
                repo, "main", None, {".gitattributes": self.entry(GITATTRIBUTES, lfs=False)}, "initial commit"
            )
            return repo, True

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        with self.lock:
            self.get(repo_type, repo_id)
            del self.repos[(repo_type, repo_id)]

    def upload_mode(self, commit: Commit, path: str, size: int, sample: bytes) -> str:
        """``lfs`` for large or binary files and for names the revision's .gitattributes sends to LFS."""
        attributes = commit.files.get(".gitattributes")
        text = self.blobs[attributes.sha256].decode(errors="replace") if attributes else ""
        patterns = [line.split()[0] for line in text.splitlines() if "filter=lfs" in line.split()[1:]]
        name = path.rsplit("/", 1)[-1]
        matched = any(fnmatch.fnmatchcase(path if "/" in pat else name, pat.lstrip("/")) for pat in patterns)
        return "lfs" if size > LFS_THRESHOLD or b"\0" in sample or matched else "regular"

    def commit(self, repo: Repo, branch: str, operations: list[dict], header: dict) -> Commit:
        """Apply NDJSON commit operations to ``branch`` at once: any invalid operation leaves the repo unchanged."""
        with self.lock:
            if branch not in repo.branches:
                raise HubError(404, f"Invalid rev id: {branch} (commits go to an existing branch)", "RevisionNotFound")
            head = repo.commits[repo.branches[branch]]
            parent = header.get("parentCommit")
            if parent and not head.oid.startswith(parent.lower()):
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            title = (header.get("summary") or "").strip()
            if not title:
                raise HubError(400, "The commit summary must not be empty")
            files = dict(head.files)
            for op in operations:
                files = self._apply(repo, head, files, op.get("key"), op.get("value") or {})
            return self._add_commit(repo, branch, head.oid, files, title, header.get("description") or "")

    def _apply(self, repo: Repo, head: Commit, files: dict[str, Entry], key, value: dict) -> dict[str, Entry]:
        path = check_path(str(value.get("path", "")).strip("/") if key == "deletedFolder" else value.get("path", ""))
        if key == "file":
            if value.get("encoding", "base64") != "base64":
                raise HubError(400, f"Unsupported encoding for {path}: {value.get('encoding')}")
            data = base64.b64decode(value.get("content", ""))
            if data and self.upload_mode(head, path, len(data), data[:512]) == "lfs":
                # As the Hub does: a client that skips preupload must not sneak binaries into git.
                raise HubError(400, f"{path!r} is binary, large or an LFS type: it must be committed as an lfsFile")
            entry = self.entry(data, lfs=False)
        elif key == "lfsFile":
            oid = str(value.get("oid", ""))
            if not SHA256.fullmatch(oid) or oid not in repo.lfs_objects or oid not in self.blobs:
                raise HubError(
                    400, f"lfsFile {path!r} points to LFS object {oid!r} that was never uploaded to this repo"
                )
            if value.get("size") is not None and value["size"] != len(self.blobs[oid]):
                raise HubError(400, f"lfsFile {path!r}: size {value['size']} does not match LFS object {oid}")
            entry = Entry(oid, len(self.blobs[oid]), True, git_blob_oid(lfs_pointer(oid, len(self.blobs[oid]))))
        elif key == "deletedFile":
            if path not in files:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            return {p: e for p, e in files.items() if p != path}
        elif key == "deletedFolder":
            kept = {p: e for p, e in files.items() if not p.startswith(path + "/")}
            if len(kept) == len(files):
                raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
            return kept
        else:
            raise HubError(400, f"Unknown commit operation: {key!r}")
        parents = {"/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 1)}
        if parents & files.keys() or path in folders_of(files):
            raise HubError(400, f"{path!r} clashes with an existing file or folder")
        return {**files, path: entry}

    def _add_commit(self, repo, branch, parent, files, title, message="") -> Commit:
        date = now_iso()
        seed = repr((parent, sorted((p, e.oid) for p, e in files.items()), title, date, next(self._counter)))
        oid = hashlib.sha1(seed.encode()).hexdigest()
        commit = Commit(oid, parent, MappingProxyType(files), title, message, date, self.author)
        repo.commits[commit.oid] = commit
        repo.branches[branch] = commit.oid  # the one write that publishes the commit
        return commit

    def last_commit(self, repo: Repo, commit: Commit, path: str) -> Commit:
        """The newest commit in ``commit``'s history that changed ``path`` (a file or a folder)."""

        def view(c: Commit) -> object:
            return c.files.get(path) or sorted((p, e) for p, e in c.files.items() if p.startswith(path + "/"))

        history = repo.history(commit.oid)
        for newer, older in itertools.pairwise(history):
            if view(newer) != view(older):
                return newer
        return history[-1]

    # The JSON shapes of the Hub API, as huggingface_hub parses them (RepoFile, RepoFolder, ModelInfo, ...).

    def entry_json(self, repo: Repo, commit: Commit, path: str, expand: bool) -> dict:
        entry = commit.files.get(path)
        if entry is None:
            out = {"type": "directory", "oid": tree_oid(commit.files, path), "size": 0, "path": path}
        else:
            out = {"type": "file", "oid": entry.oid, "size": entry.size, "path": path}
            if entry.lfs:
                pointer_size = len(lfs_pointer(entry.sha256, entry.size))
                out["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": pointer_size}
        if expand:
            last = self.last_commit(repo, commit, path)
            out["lastCommit"] = {"id": last.oid, "title": last.title, "date": last.date}
        return out

    def tree_json(self, repo: Repo, commit: Commit, path: str, recursive: bool, expand: bool) -> list[dict]:
        folders = folders_of(commit.files)
        if path and path not in folders:
            raise HubError(404, f"{path} is not a folder", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        prefix = path + "/" if path else ""
        below = [p for p in sorted(folders | set(commit.files)) if p.startswith(prefix)]
        listed = below if recursive else [p for p in below if "/" not in p[len(prefix) :]]
        return [self.entry_json(repo, commit, p, expand) for p in listed]

    def repo_json(self, repo: Repo, commit: Commit, blobs: bool) -> dict:
        siblings = []
        for path in sorted(commit.files):
            sibling = {"rfilename": path}
            if blobs:
                entry = self.entry_json(repo, commit, path, expand=False)
                sibling.update(size=entry["size"], blobId=entry["oid"])
                if "lfs" in entry:
                    sibling["lfs"] = {"sha256": entry["lfs"]["oid"], **entry["lfs"]}
            siblings.append(sibling)
        return {"_id": repo.repo_id, "id": repo.repo_id, "author": repo.repo_id.split("/")[0], "sha": commit.oid,
                "lastModified": commit.date, "createdAt": repo.created_at, "private": repo.private, "gated": False,
                "disabled": False, "downloads": 0, "likes": 0, "tags": [], "siblings": siblings,
                "usedStorage": sum(e.size for e in commit.files.values())}  # fmt: skip

    def preupload_json(self, commit: Commit, item: dict) -> dict:
        """Upload mode of one file, and the oid it has now (the client skips unchanged files)."""
        path, sample = item["path"], base64.b64decode(item.get("sample", ""))
        entry = commit.files.get(path)
        oid = None if entry is None else entry.sha256 if entry.lfs else entry.oid
        mode = self.upload_mode(commit, path, int(item.get("size", 0)), sample)
        return {"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid}

    # LFS basic transfer: the batch answer hands out an upload URL per object the repo does not have yet.

    def lfs_batch_json(self, repo: Repo, objects: list[dict], base_url: str) -> list[dict]:
        out = []
        for obj in objects:
            oid, size = str(obj.get("oid", "")), obj.get("size")
            if not SHA256.fullmatch(oid) or not isinstance(size, int) or size < 0:
                out.append({"oid": oid, "size": size or 0, "error": {"code": 422, "message": "Invalid object"}})
            elif oid in repo.lfs_objects:
                out.append({"oid": oid, "size": size})  # no actions: the client skips the upload
            else:
                ticket = secrets.token_hex(16)
                self.tickets[ticket] = (repo, oid, size)
                actions = {
                    "upload": {"href": f"{base_url}/lfs-upload/{ticket}"},
                    "verify": {"href": f"{base_url}/lfs-verify/{ticket}", "header": {}},
                }
                out.append({"oid": oid, "size": size, "authenticated": True, "actions": actions})
        return out

    def lfs_ticket(self, ticket: str) -> tuple[Repo, str, int]:
        if ticket not in self.tickets:
            raise HubError(403, "Unknown or expired LFS upload URL")
        return self.tickets[ticket]

    def lfs_receive(self, ticket: str, data: bytes) -> str:
        repo, oid, size = self.lfs_ticket(ticket)
        if len(data) != size or hashlib.sha256(data).hexdigest() != oid:
            raise HubError(400, f"Uploaded content does not match LFS object {oid} of size {size}")
        self.put_blob(data)
        repo.lfs_objects.add(oid)
        return oid
