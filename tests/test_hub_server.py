"""tests/hub_server.py through huggingface_hub's public API only: repos, commits with regular and LFS files, branches,
round trips through hf_hub_download / snapshot_download, auth, and nothing half-published after injected failures."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import CommitOperationAdd, HfApi, HfFileSystem, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFolder
from huggingface_hub.utils import build_hf_headers, get_session

# huggingface_hub hands LFS uploads to httpx2 as data=<file>, which httpx2 deprecates; nothing to act on here.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")
BIG = 1_200_000  # over the server's 1 MB LFS threshold


def random_bytes(n: int, seed: int) -> bytes:
    return b"".join(hashlib.sha256(b"%d-%d" % (seed, i)).digest() for i in range(n // 32 + 1))[:n]


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def new_repo(hub_endpoint, name: str = "detector", repo_type: str = "model") -> str:
    return hub_endpoint.api.create_repo(name, repo_type=repo_type).repo_id


def state(api: HfApi, repo_id: str) -> tuple[dict, dict]:
    """Branch and tag heads, and path -> (git oid, LFS info) on main: what a failed publish must leave alone."""
    refs = api.list_repo_refs(repo_id)
    heads = {r.ref: r.target_commit for r in refs.branches + refs.tags}
    tree = api.list_repo_tree(repo_id, recursive=True)
    return heads, {f.path: (getattr(f, "blob_id", None), getattr(f, "lfs", None)) for f in tree}


def read_folder(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def model_folder(tmp_path) -> Path:
    """A small text file, a safetensors-named blob (LFS by name) and a big text file (LFS by size) in a subfolder."""
    root = tmp_path / "model"
    (root / "weights").mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"threshold": 0.5, "labels": ["real", "fake"]}))
    (root / "model.safetensors").write_bytes(random_bytes(4096, seed=1))
    (root / "weights" / "big.txt").write_bytes(random_bytes(BIG, seed=2).hex().encode()[:BIG])
    return root


def test_whoami_and_repo_creation(hub_endpoint):
    api = hub_endpoint.api
    assert api.whoami()["name"] == hub_endpoint.user
    url = api.create_repo("detector")
    assert url.repo_id == f"{hub_endpoint.user}/detector" and url.startswith(hub_endpoint.url)
    data_url = api.create_repo(f"{hub_endpoint.user}/chains", repo_type="dataset", private=True)
    assert data_url.repo_type == "dataset" and data_url == f"{hub_endpoint.url}/datasets/{hub_endpoint.user}/chains"

    info = api.model_info(url.repo_id)
    assert len(info.sha) == 40 and [s.rfilename for s in info.siblings] == [".gitattributes"]
    dataset = api.dataset_info(data_url.repo_id)
    assert dataset.private is True and dataset.sha != info.sha
    assert api.repo_info(data_url.repo_id, repo_type="dataset").sha == dataset.sha

    # The same repo again: exist_ok keeps it as it is, otherwise the client's usual 409 error.
    assert api.create_repo(url.repo_id, exist_ok=True) == url and api.model_info(url.repo_id).sha == info.sha
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_repo(url.repo_id)
    assert conflict.value.response.status_code == 409
    # Private repos are invisible without a token; public ones are readable anonymously.
    anonymous = HfApi(endpoint=hub_endpoint.url, token=False)
    with pytest.raises(RepositoryNotFoundError):
        anonymous.dataset_info(data_url.repo_id)
    assert anonymous.model_info(url.repo_id).sha == info.sha
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(f"{hub_endpoint.user}/missing")


def test_upload_folder_is_one_commit_and_downloads_are_bit_identical(hub_endpoint, model_folder):
    api, repo_id = hub_endpoint.api, new_repo(hub_endpoint)
    before = api.model_info(repo_id).sha
    info = api.upload_folder(repo_id=repo_id, folder_path=model_folder, commit_message="Add detector")
    assert hub_endpoint.calls["commit"] == 1 and hub_endpoint.calls["lfs_upload"] == 2
    commits = api.list_repo_commits(repo_id)
    assert [c.commit_id for c in commits] == [info.oid, before] and commits[0].title == "Add detector"

    local = read_folder(model_folder)
    files = {f.path: f for f in api.list_repo_tree(repo_id, recursive=True)}
    assert set(files) == {".gitattributes", "config.json", "model.safetensors", "weights", "weights/big.txt"}
    assert files["config.json"].lfs is None and files["config.json"].blob_id == git_blob_oid(local["config.json"])
    for path in ("model.safetensors", "weights/big.txt"):
        assert (files[path].lfs.sha256, files[path].size) == (
            hashlib.sha256(local[path]).hexdigest(),
            len(local[path]),
        )
    assert sorted(api.list_repo_files(repo_id)) == sorted([".gitattributes", *local])
    config, weights = api.get_paths_info(repo_id, ["config.json", "weights", "nope.txt"])
    assert config.size == len(local["config.json"]) and isinstance(weights, RepoFolder)

    for path, content in local.items():
        downloaded = Path(hf_hub_download(repo_id, path))
        assert downloaded.read_bytes() == content and hub_endpoint.home in downloaded.resolve().parents
    folder = Path(snapshot_download(repo_id))
    assert folder.name == info.oid and {k: v for k, v in read_folder(folder).items() if k in local} == local
    by_sha = hf_hub_download(repo_id, "weights/big.txt", revision=info.oid, local_dir=hub_endpoint.home / "by-sha")
    assert Path(by_sha).read_bytes() == local["weights/big.txt"]
    # Range reads, as HfFileSystem (and so datasets) makes them.
    with HfFileSystem(endpoint=hub_endpoint.url).open(f"{repo_id}/weights/big.txt", block_size=1000) as remote:
        remote.seek(BIG - 1500)
        assert remote.read(1000) == local["weights/big.txt"][BIG - 1500 : BIG - 500]


def test_branch_and_tag_uploads_read_back_by_revision(hub_endpoint):
    api, repo_id = hub_endpoint.api, new_repo(hub_endpoint)
    first = api.upload_file(path_or_fileobj=b"v1", path_in_repo="card.md", repo_id=repo_id).oid
    api.create_branch(repo_id, branch="calibrated")
    weights = random_bytes(3000, seed=3)
    on_branch = api.upload_file(
        path_or_fileobj=weights, path_in_repo="calib.safetensors", repo_id=repo_id, revision="calibrated"
    ).oid
    api.create_tag(repo_id, tag="v0.1", revision=first)

    refs = api.list_repo_refs(repo_id)
    assert {b.name: b.target_commit for b in refs.branches} == {"main": first, "calibrated": on_branch}
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v0.1", first)]
    assert Path(hf_hub_download(repo_id, "calib.safetensors", revision="calibrated")).read_bytes() == weights
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(repo_id, "calib.safetensors")
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(repo_id, "calib.safetensors", revision="v0.1")
    folder = Path(snapshot_download(repo_id, revision="calibrated"))
    assert (folder / "calib.safetensors").read_bytes() == weights and (folder / "card.md").read_bytes() == b"v1"
    assert folder.name == on_branch == api.model_info(repo_id, revision="calibrated").sha

    api.create_branch(repo_id, branch="old", revision=first)
    assert sorted(api.list_repo_files(repo_id, revision="old")) == [".gitattributes", "card.md"]
    with pytest.raises(HfHubHTTPError) as exists:
        api.create_branch(repo_id, branch="calibrated")
    assert exists.value.response.status_code == 409
    with pytest.raises(RevisionNotFoundError):
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id, revision="no-such-branch")


def test_writes_need_the_token(hub_endpoint):
    repo_id = new_repo(hub_endpoint)
    before = state(hub_endpoint.api, repo_id)
    anonymous = HfApi(endpoint=hub_endpoint.url, token=False)
    with pytest.raises(HfHubHTTPError) as create:
        anonymous.create_repo("other")
    assert create.value.response.status_code == 401
    # As against huggingface.co: a 401 on a repo URL surfaces as RepositoryNotFoundError, a bad token does not.
    with pytest.raises(RepositoryNotFoundError) as commit:
        anonymous.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id)
    assert commit.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError, match="Invalid credentials") as bad_token:
        HfApi(endpoint=hub_endpoint.url, token="hf_wrong").upload_file(
            path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id
        )
    assert bad_token.value.response.status_code == 401 and not isinstance(bad_token.value, RepositoryNotFoundError)
    assert state(hub_endpoint.api, repo_id) == before and hub_endpoint.calls["commit"] == 0
    assert Path(hf_hub_download(repo_id, ".gitattributes", token=False)).read_bytes().startswith(b"*.")


def test_failed_lfs_upload_publishes_nothing(hub_endpoint, model_folder):
    api, repo_id = hub_endpoint.api, new_repo(hub_endpoint)
    (model_folder / "head.safetensors").write_bytes(random_bytes(5000, seed=4))
    before = state(api, repo_id)
    hub_endpoint.fail("lfs_upload", nth=2, status=403)  # a status the client does not retry
    with pytest.raises(RuntimeError, match="Error while uploading"):
        api.upload_folder(repo_id=repo_id, folder_path=model_folder)
    assert state(api, repo_id) == before and hub_endpoint.calls["commit"] == 0

    # The same publish goes through afterwards; the objects stored by the failed attempt are not sent again.
    sent = hub_endpoint.calls["lfs_upload"]
    info = api.upload_folder(repo_id=repo_id, folder_path=model_folder)
    assert hub_endpoint.calls["lfs_upload"] - sent == 3 - (sent - 1)
    assert api.model_info(repo_id).sha == info.oid
    assert Path(hf_hub_download(repo_id, "head.safetensors")).read_bytes() == random_bytes(5000, seed=4)


@pytest.mark.parametrize("drop", [False, True], ids=["http-500", "dropped-connection"])
def test_failed_commit_call_publishes_nothing(hub_endpoint, model_folder, drop):
    api, repo_id = hub_endpoint.api, new_repo(hub_endpoint)
    before = state(api, repo_id)
    hub_endpoint.fail("commit", drop=drop)
    with pytest.raises(httpx2.RemoteProtocolError if drop else HfHubHTTPError):
        api.upload_folder(repo_id=repo_id, folder_path=model_folder)
    assert state(api, repo_id) == before and hub_endpoint.calls["lfs_upload"] == 2


def test_transient_lfs_failure_is_retried_into_one_commit(hub_endpoint, model_folder):
    api, repo_id = hub_endpoint.api, new_repo(hub_endpoint)
    hub_endpoint.fail("lfs_upload", drop=True)  # the client waits 1 s and sends it again
    info = api.upload_folder(repo_id=repo_id, folder_path=model_folder)
    assert hub_endpoint.calls["lfs_upload"] == 3 and hub_endpoint.calls["commit"] == 1
    assert len(api.list_repo_commits(repo_id)) == 2 and api.model_info(repo_id).sha == info.oid


def test_commit_with_missing_lfs_object_is_rejected_whole(hub_endpoint):
    api, repo_id = hub_endpoint.api, new_repo(hub_endpoint)
    before = state(api, repo_id)
    lines = [
        {"key": "header", "value": {"summary": "half a commit", "description": ""}},
        {"key": "file", "value": {"path": "README.md", "content": "aGk=", "encoding": "base64"}},
        {"key": "lfsFile", "value": {"path": "w.safetensors", "algo": "sha256", "oid": "ab" * 32, "size": 10}},
    ]
    response = get_session().post(
        f"{hub_endpoint.url}/api/models/{repo_id}/commit/main",
        content=b"".join(json.dumps(line).encode() + b"\n" for line in lines),
        headers={**build_hf_headers(token=hub_endpoint.token), "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 400 and "never uploaded" in response.json()["error"]
    assert state(api, repo_id) == before


def test_stale_parent_commit_and_deletes(hub_endpoint, model_folder):
    api, repo_id = hub_endpoint.api, new_repo(hub_endpoint)
    initial = api.model_info(repo_id).sha
    full = api.upload_folder(repo_id=repo_id, folder_path=model_folder).oid
    with pytest.raises(HfHubHTTPError) as stale:
        api.create_commit(
            repo_id, [CommitOperationAdd("late.txt", b"x")], commit_message="late", parent_commit=initial
        )
    assert stale.value.response.status_code == 412 and api.model_info(repo_id).sha == full

    api.delete_file("config.json", repo_id)
    api.delete_folder("weights", repo_id)
    assert sorted(api.list_repo_files(repo_id)) == [".gitattributes", "model.safetensors"]
    with pytest.raises(RemoteEntryNotFoundError):
        api.delete_file("config.json", repo_id)
    assert len(api.list_repo_commits(repo_id)) == 4
    # Commits are immutable: the deleted files are still there at the older commit.
    old = Path(hf_hub_download(repo_id, "weights/big.txt", revision=full)).read_bytes()
    assert old == (model_folder / "weights" / "big.txt").read_bytes()


def test_datasets_push_to_hub_and_load_dataset(hub_endpoint):
    import datasets

    rows = {"id": [f"rec-{i:03d}" for i in range(40)], "label": [i % 2 for i in range(40)]}
    repo_id = f"{hub_endpoint.user}/fakeinstruct-mini"
    datasets.Dataset.from_dict(rows).push_to_hub(repo_id, token=hub_endpoint.token)
    files = {f.path: f for f in hub_endpoint.api.list_repo_tree(repo_id, repo_type="dataset", recursive=True)}
    parquet = [f for path, f in files.items() if path.endswith(".parquet")]
    assert len(parquet) == 1 and parquet[0].lfs is not None and "README.md" in files

    downloads = hub_endpoint.calls["resolve"]
    assert datasets.load_dataset(repo_id, split="train").to_dict() == rows
    assert hub_endpoint.calls["resolve"] > downloads
