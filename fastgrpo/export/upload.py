"""Publish an export folder with the official hub clients, retrying transient network errors.

Why a retry loop around the clients' own: `huggingface_hub` retries some calls
(preupload, commit) but not repo creation, and neither client bounds the whole
operation; one loop over "create repo if missing + upload folder" (both
idempotent) with exponential backoff gives one bounded policy for both hubs.
The token goes to the client object only; every message that could quote a
server response is passed through `redact`.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fastgrpo import __version__
from fastgrpo.export.errors import ExportError, UploadError
from fastgrpo.log import get_logger

log = get_logger("export")
T = TypeVar("T")

TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
HF_TOKEN_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
MS_TOKEN_ENV = ("MODELSCOPE_API_TOKEN",)


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all; waits base, 2*base, ... capped at max_delay_s; each request times out."""

    attempts: int = 4
    base_delay_s: float = 2.0
    max_delay_s: float = 30.0
    request_timeout_s: float = 300.0

    def delay(self, attempt: int) -> float:
        return min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))


@dataclass(frozen=True)
class Token:
    """A secret and where it came from; `repr` never shows the value."""

    value: str
    source: str

    def __repr__(self) -> str:
        return f"Token(source={self.source!r})"

    __str__ = __repr__


def redact(text: str, token: Token | str | None) -> str:
    secret = token.value if isinstance(token, Token) else token
    return text.replace(secret, "***") if secret else text


def resolve_token(target: str, flag: str | None) -> Token | None:
    """--token, else the hub's environment variable, else the client's stored login; None if none."""
    if flag:
        return Token(flag, "--token")
    for var in HF_TOKEN_ENV if target == "hf" else MS_TOKEN_ENV:
        if os.environ.get(var):
            return Token(os.environ[var], f"${var}")
    try:
        if target == "hf":
            from huggingface_hub import get_token

            stored = get_token()
            return Token(stored, "huggingface_hub login") if stored else None
        from modelscope_hub.config import HubConfig

        stored = HubConfig().token
        return Token(stored, "modelscope login") if stored else None
    except Exception:  # client missing or unreadable credentials: treat as no token
        return None


def is_transient(error: BaseException) -> bool:
    """Network failures, timeouts, 408/429/5xx: worth another try. Auth, 404, bad request: not."""
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None) or getattr(error, "status_code", None)
    if isinstance(status, int):
        return status in TRANSIENT_STATUS
    for http_client in ("httpx2", "httpx"):  # huggingface_hub 2.x, 1.x
        try:
            module = importlib.import_module(http_client)
        except ImportError:
            continue
        if isinstance(error, module.TransportError):
            return True
    try:
        import requests

        if isinstance(error, requests.ConnectionError | requests.Timeout):
            return True
    except ImportError:
        pass
    try:
        from modelscope_hub.errors import NetworkError, RateLimitError, ServerError

        if isinstance(error, NetworkError | RateLimitError | ServerError):
            return True
    except ImportError:
        pass
    return False


def _hint(error: BaseException) -> str:
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None) or getattr(error, "status_code", None)
    if status == 401:
        return " Check the token (is it valid for this hub?)."
    if status == 403:
        return " The token lacks write access to this repo or namespace."
    return ""


def with_retries(fn: Callable[[], T], policy: RetryPolicy, what: str, token: Token | None) -> T:
    """Run fn; on a transient error wait and try again, up to policy.attempts; then raise `UploadError`."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn()
        except Exception as e:
            detail = redact(f"{type(e).__name__}: {e}".strip(), token)
            if not is_transient(e):
                raise UploadError(f"{what} failed: {detail}{_hint(e)}") from None
            if attempt == policy.attempts:
                raise UploadError(
                    f"{what} failed after {policy.attempts} attempt(s): {detail}. "
                    "The hub or the network is unavailable; try again later (the export folder is kept)."
                ) from None
            wait = policy.delay(attempt)
            log.warning(
                "%s: %s; retrying in %.1fs (attempt %d/%d)",
                what,
                detail.splitlines()[0],
                wait,
                attempt + 1,
                policy.attempts,
            )
            time.sleep(wait)
    raise AssertionError("unreachable")


def assert_token_absent(folder: Path, token: Token | None) -> None:
    """Refuse to publish a folder whose text files contain the token (defence in depth)."""
    if token is None or not token.value:
        return
    needle = token.value.encode()
    for p in folder.rglob("*"):
        if p.is_file() and not p.name.endswith(".safetensors") and needle in p.read_bytes():
            raise UploadError(f"{p} contains the token; refusing to upload it")


@contextlib.contextmanager
def _hf_request_timeout(seconds: float) -> Iterator[None]:
    """Give huggingface_hub's shared HTTP client a timeout while we upload (its default is none)."""
    try:
        from huggingface_hub import set_client_factory
        from huggingface_hub.utils import _http
    except ImportError:
        yield
        return
    previous = getattr(_http, "_GLOBAL_CLIENT_FACTORY", _http.default_client_factory)

    def factory() -> Any:
        client = previous()
        # The client's own Timeout class: httpx.Timeout under huggingface_hub 1.x (what transformers 5.16
        # allows), httpx2.Timeout under 2.x.
        client.timeout = type(client.timeout)(seconds, connect=min(seconds, 30.0))
        return client

    set_client_factory(factory)
    try:
        yield
    finally:
        set_client_factory(previous)


def upload_hf(
    folder: Path,
    repo_id: str,
    token: Token,
    *,
    endpoint: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Upload FAST-GRPO model",
    policy: RetryPolicy | None = None,
) -> str:
    """Create the repo if missing (and the branch for a non-main revision), upload the folder; return the commit URL."""
    from huggingface_hub import HfApi

    policy = policy or RetryPolicy()
    api = HfApi(
        endpoint=hub_endpoint("hf", endpoint),
        token=token.value,
        library_name="fastgrpo",
        library_version=__version__,
    )

    def attempt() -> str:
        api.create_repo(repo_id, repo_type="model", private=private or None, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            repo_type="model",
            folder_path=str(folder),
            commit_message=commit_message,
            revision=revision,
        )
        return str(getattr(info, "commit_url", info))

    with _hf_request_timeout(policy.request_timeout_s):
        return with_retries(attempt, policy, f"upload to {api.endpoint}/{repo_id}", token)


def upload_modelscope(
    folder: Path,
    repo_id: str,
    token: Token,
    *,
    endpoint: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Upload FAST-GRPO model",
    policy: RetryPolicy | None = None,
) -> str:
    """Same for ModelScope (`modelscope.hub.api.HubApi`); returns the repo URL."""
    try:
        from modelscope.hub.api import HubApi
    except ImportError:
        raise ExportError(
            "--to modelscope needs the modelscope SDK: pip install 'fastgrpo[modelscope]'"
        ) from None

    policy = policy or RetryPolicy()
    ms_endpoint = hub_endpoint("modelscope", endpoint)
    api = HubApi(endpoint=ms_endpoint, token=token.value, timeout=int(max(1, policy.request_timeout_s)))
    base = (ms_endpoint or api.endpoint).rstrip("/")

    def attempt() -> str:
        api.create_repo(
            repo_id, repo_type="model", visibility="private" if private else "public", exist_ok=True
        )
        # The resume cache must live outside the folder, which is uploaded as is and must stay clean.
        with (
            tempfile.TemporaryDirectory(prefix="fastgrpo-ms-") as cache,
            contextlib.redirect_stdout(sys.stderr),
        ):
            api.upload_folder(
                repo_id=repo_id,
                folder_path=str(folder),
                commit_message=commit_message,
                revision=revision or "master",
                tracker_path=str(Path(cache) / "upload_cache"),
                disable_tqdm=True,
            )
        return f"{base}/models/{repo_id}"

    return with_retries(attempt, policy, f"upload to {base}/models/{repo_id}", token)


def hub_endpoint(target: str, flag: str | None) -> str | None:
    """--endpoint, else HF_ENDPOINT (hf) / MODELSCOPE_ENDPOINT or MODELSCOPE_DOMAIN (modelscope); None: default."""
    if flag:
        return flag.rstrip("/")
    if target == "hf":
        from huggingface_hub import constants

        return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
    value = os.environ.get("MODELSCOPE_ENDPOINT") or os.environ.get("MODELSCOPE_DOMAIN")
    if value and not value.startswith(("http://", "https://")):
        value = f"https://{value}"
    return value.rstrip("/") if value else None
