"""Uploads through the official clients to a loopback hub (tests/export/fake_hub.py): contents, retries, tokens.

What arrives is compared byte for byte with the export folder. Requests never
leave 127.0.0.1; `huggingface_hub`'s offline switch (set for the whole test
session) is lifted for these tests only.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import huggingface_hub.constants
import pytest
from export_helpers import flat, invoke, preserved_logging, tree
from fake_hub import FakeHub

from fastgrpo.export import RetryPolicy, Token, UploadError, upload_hf, upload_modelscope

SECRET = "hf_SuperSecret0123456789abcdefXYZ"
MS_SECRET = "ms-SuperSecret-9876543210-abcdef"
FAST = RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.05, request_timeout_s=5)


@pytest.fixture(autouse=True)
def online(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    for var in (
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "MODELSCOPE_API_TOKEN",
        "HF_ENDPOINT",
        "MODELSCOPE_ENDPOINT",
    ):
        monkeypatch.delenv(var, raising=False)
    # no saved logins from the machine running the tests
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-hf-token"))
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms-cache"))
    monkeypatch.setenv("MODELSCOPE_HOME", str(tmp_path / "ms-home"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, run_template: Path) -> Path:
    """One export of the template run, shared read-only by the upload-only tests."""
    run = tmp_path_factory.mktemp("exported") / "demo"
    shutil.copytree(run_template, run)
    with preserved_logging():  # module-scoped: outside the per-test logging restore
        result = invoke(run)
    assert result.exit_code == 0, result.output
    return run / "export"


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as server:
        yield server


def _all_bytes(*roots: Path) -> Iterator[tuple[str, bytes]]:
    for root in roots:
        for p in root.rglob("*"):
            if p.is_file():
                yield str(p), p.read_bytes()


# -- Hugging Face ---------------------------------------------------------------------------------------------
def test_export_and_upload_to_hf(run_dir: Path, hub: FakeHub) -> None:
    result = invoke(
        run_dir,
        "--to",
        "hf",
        "--repo-id",
        "me/fast-demo",
        "--endpoint",
        hub.url,
        "--private",
        "--commit-message",
        "FAST-GRPO step 10",
        env={"HF_TOKEN": SECRET},
    )
    assert result.exit_code == 0, result.output
    assert f"uploaded to {hub.url}/me/fast-demo/commit/" in flat(result.output)
    assert hub.state.repos["me/fast-demo"]["visibility"] == "private"
    assert hub.state.repo_files("me/fast-demo", "main") == tree(run_dir / "export")
    assert [c["summary"] for c in hub.state.commits] == ["FAST-GRPO step 10"]
    assert all(r.headers.get("authorization") == f"Bearer {SECRET}" for r in hub.state.requests)
    assert "fast-demo" in (run_dir / "export" / "README.md").read_text()


def test_upload_existing_export_to_a_branch_via_hf_endpoint(exported: Path, hub: FakeHub) -> None:
    before = tree(exported)
    result = invoke(
        exported,
        "--to",
        "hf",
        "--repo-id",
        "me/fast-demo",
        "--revision",
        "dev",
        env={"HF_TOKEN": SECRET, "HF_ENDPOINT": hub.url},
    )
    assert result.exit_code == 0, result.output
    assert hub.state.repo_files("me/fast-demo", "dev") == before == tree(exported)  # folder untouched
    assert any(r.path == "/api/models/me/fast-demo/branch/dev" for r in hub.state.requests)
    assert hub.state.repos["me/fast-demo"].get("visibility") is None  # not --private: the namespace default


def test_transient_errors_are_retried(exported: Path) -> None:
    with FakeHub(fail_first=2) as hub:
        url = upload_hf(exported, "me/retry", Token(SECRET, "test"), endpoint=hub.url, policy=FAST)
        assert url.startswith(f"{hub.url}/me/retry/commit/")
        assert [r.status for r in hub.state.requests[:3]] == [503, 503, 200]
        assert hub.state.repo_files("me/retry", "main") == tree(exported)


def test_hub_down_gives_a_clear_error_in_bounded_time(exported: Path) -> None:
    start = time.monotonic()
    with FakeHub(fail_always=True) as hub, pytest.raises(UploadError) as err:
        upload_hf(exported, "me/down", Token(SECRET, "test"), endpoint=hub.url, policy=FAST)
    assert time.monotonic() - start < 10
    assert len(hub.state.requests) == 3  # one per attempt
    message = str(err.value)
    assert "failed after 3 attempt(s)" in message and "503" in message and "me/down" in message
    assert SECRET not in message


def test_auth_errors_are_not_retried(exported: Path) -> None:
    with (
        FakeHub(fail_always=True, fail_status=401) as hub,
        pytest.raises(UploadError, match="Check the token"),
    ):
        upload_hf(exported, "me/auth", Token(SECRET, "test"), endpoint=hub.url, policy=FAST)
    # one attempt (the client follows a refused create with a GET: the repo might exist already)
    assert [r.path for r in hub.state.requests].count("/api/repos/create") == 1


def test_a_hanging_hub_times_out(exported: Path) -> None:
    policy = RetryPolicy(attempts=2, base_delay_s=0.01, request_timeout_s=0.3)
    start = time.monotonic()
    with FakeHub(hang_s=1.5) as hub, pytest.raises(UploadError, match="failed after 2 attempt"):
        upload_hf(exported, "me/slow", Token(SECRET, "test"), endpoint=hub.url, policy=policy)
    assert time.monotonic() - start < 3


def test_cli_upload_failure_exits_1_and_keeps_the_export(run_dir: Path) -> None:
    with FakeHub(fail_always=True) as hub:
        result = invoke(
            run_dir,
            "--to",
            "hf",
            "--repo-id",
            "me/x",
            "--endpoint",
            hub.url,
            "--retries",
            "1",
            env={"HF_TOKEN": SECRET},
        )
    assert result.exit_code == 1
    text = flat(result.output)
    assert "upload to" in text and "failed after 1 attempt(s)" in text and "the export folder is kept" in text
    assert (run_dir / "export" / "model.safetensors").is_file()
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]


def test_no_token_exits_2_before_exporting(run_dir: Path) -> None:
    result = invoke(run_dir, "--to", "hf", "--repo-id", "me/x", "--endpoint", "http://127.0.0.1:9")
    assert result.exit_code == 2 and "no token for --to hf: set $HF_TOKEN" in flat(result.output)
    assert not (run_dir / "export").exists()


def test_offline_mode_is_reported(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    result = invoke(run_dir, "--to", "hf", "--repo-id", "me/x", env={"HF_TOKEN": SECRET})
    assert result.exit_code == 2 and "HF_HUB_OFFLINE" in flat(result.output)


# -- dry run and token hygiene -------------------------------------------------------------------------------
def test_dry_run_writes_and_uploads_nothing(run_dir: Path, hub: FakeHub) -> None:
    before = tree(run_dir.parent)
    result = invoke(
        run_dir,
        "--to",
        "hf",
        "--repo-id",
        "me/fast-demo",
        "--endpoint",
        hub.url,
        "--dry-run",
        "--max-shard-size",
        "20kB",
        env={"HF_TOKEN": SECRET},
    )
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    assert "global_step_000010 (step 10)" in text and f"{run_dir / 'export'} (create)" in text
    assert f"target : hf {hub.url} repo me/fast-demo revision main" in text
    assert "token : from $HF_TOKEN" in text and SECRET not in result.output
    for name in (
        "model-00001-of-",
        "model.safetensors.index.json",
        "config.json",
        "tokenizer.json",
        "README.md",
    ):
        assert name in text, name
    assert "dry run: nothing was written or uploaded" in text
    assert tree(run_dir.parent) == before
    assert hub.state.requests == []


def test_token_never_appears_in_output_or_files(
    run_dir: Path, hub: FakeHub, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    ok = invoke(
        run_dir, "--to", "hf", "--repo-id", "me/fast-demo", "--endpoint", hub.url, "--token", SECRET, "-h"
    )
    assert ok.exit_code == 0  # help: the flag is documented
    ok = invoke(run_dir, "--to", "hf", "--repo-id", "me/fast-demo", "--endpoint", hub.url, "--token", SECRET)
    with FakeHub(fail_always=True, fail_status=500) as down:
        bad = invoke(
            run_dir,
            "--to",
            "hf",
            "--repo-id",
            "me/y",
            "--endpoint",
            down.url,
            "--retries",
            "2",
            env={"HF_TOKEN": SECRET},
        )
    dry = invoke(run_dir, "--to", "hf", "--repo-id", "me/z", "--dry-run", env={"HF_TOKEN": SECRET})
    assert ok.exit_code == 0 and bad.exit_code == 1 and dry.exit_code == 0, (
        ok.output + bad.output + dry.output
    )
    assert hub.state.requests and all(
        SECRET in r.headers.get("authorization", "") for r in hub.state.requests
    )
    captured = capfd.readouterr()
    for text in (ok.output, bad.output, dry.output, captured.out, captured.err):
        assert SECRET not in text
    for path, data in _all_bytes(tmp_path):
        assert SECRET.encode() not in data, path
    for (_repo, _rev), files in hub.state.files.items():
        for name, data in files.items():
            assert SECRET.encode() not in data, name


def test_token_repr_is_redacted() -> None:
    token = Token(SECRET, "$HF_TOKEN")
    assert SECRET not in repr(token) and SECRET not in str(token) and SECRET not in f"{token}"


# -- ModelScope -----------------------------------------------------------------------------------------------
def test_upload_to_modelscope(exported: Path, hub: FakeHub, capfd: pytest.CaptureFixture[str]) -> None:
    before = tree(exported)
    result = invoke(
        exported,
        "--to",
        "modelscope",
        "--repo-id",
        "me/fast-demo",
        "--endpoint",
        hub.url,
        "--private",
        env={"MODELSCOPE_API_TOKEN": MS_SECRET},
    )
    assert result.exit_code == 0, result.output
    assert f"uploaded to {hub.url}/models/me/fast-demo" in flat(result.output)
    assert hub.state.repos["me/fast-demo"]["Visibility"] == 1  # private
    assert hub.state.repo_files("me/fast-demo", "master") == before
    assert any(
        r.method == "PUT" and r.path.startswith("/lfs-upload/") for r in hub.state.requests
    )  # weights via LFS
    assert tree(exported) == before  # no resume cache or other file left in the folder
    captured = capfd.readouterr()
    assert MS_SECRET not in result.output + captured.out + captured.err


def test_modelscope_endpoint_from_environment_and_retry(
    exported: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeHub(fail_first=1) as hub:
        monkeypatch.setenv("MODELSCOPE_ENDPOINT", hub.url)
        url = upload_modelscope(exported, "me/retry", Token(MS_SECRET, "test"), policy=FAST)
        assert url == f"{hub.url}/models/me/retry"
        assert hub.state.requests[0].status == 503
        assert hub.state.repo_files("me/retry", "master") == tree(exported)


def test_modelscope_down_gives_a_clear_error(exported: Path) -> None:
    with FakeHub(fail_always=True) as hub, pytest.raises(UploadError, match="failed after 3 attempt") as err:
        upload_modelscope(exported, "me/down", Token(MS_SECRET, "test"), endpoint=hub.url, policy=FAST)
    assert MS_SECRET not in str(err.value)


def test_existing_export_dry_run_and_misuse(exported: Path) -> None:
    result = invoke(
        exported,
        "--to",
        "modelscope",
        "--repo-id",
        "me/x",
        "--dry-run",
        env={"MODELSCOPE_API_TOKEN": MS_SECRET},
    )
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    assert "(existing export, upload only)" in text and "token : from $MODELSCOPE_API_TOKEN" in text
    assert "model.safetensors" in text and MS_SECRET not in result.output
    result = invoke(exported, "--to", "hf", "--repo-id", "me/x", "--step", "5", env={"HF_TOKEN": SECRET})
    assert result.exit_code == 2 and "is an export folder, uploaded as is" in flat(result.output)
    result = invoke(exported)
    assert result.exit_code == 2 and "is already an export folder" in flat(result.output)
