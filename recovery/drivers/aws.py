"""The one place that builds boto3 clients for a target and translates AWS errors.

Every AWS call in the toolkit runs inside `AwsDriver.translate(action, resource)`: botocore's errors
become a `RecoveryError` with one line naming what was being done to which resource and AWS's error
code, never request bodies or credentials. Clients retry throttling and transient faults a bounded
number of times (botocore's "standard" retry mode), with short timeouts so a dead endpoint fails fast.
"""

from __future__ import annotations

import ipaddress
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from recovery.drivers.aws_models import ModelFiles
from recovery.errors import EnvironmentProblem, ExternalFailure, KeyUnavailable, RecoveryError

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_s3 import S3Client

    from recovery.targets.model import AwsEndpoint

MAX_ATTEMPTS = 5
# For an endpoint already known unreachable in this process: one retry (a store that came back answers
# the first attempt), and a connect timeout that still suits a distant region.
FAST_FAIL_ATTEMPTS = 2
FAST_FAIL_CONNECT_TIMEOUT = 2.0

# KMS answers that mean "this key cannot be used now": refuse the backup or restore instead of retrying.
KEY_ERROR_CODES = frozenset(
    {
        "NotFoundException",
        "DisabledException",
        "KMSInvalidStateException",
        "InvalidCiphertextException",
        "IncorrectKeyException",
        "InvalidKeyUsageException",
        "KeyUnavailableException",
        "InvalidGrantTokenException",
    }
)
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket", "NoSuchUpload"})
_MESSAGE_LIMIT = 160
# A local endpoint (the lab's moto server) accepts any credentials: these fixed, non-secret ones let a
# machine with no AWS configuration at all (a fresh CI machine) talk to it.
LOCAL_ENDPOINT_CREDENTIALS = {"aws_access_key_id": "lab", "aws_secret_access_key": "lab"}


def is_local_endpoint(endpoint_url: str | None) -> bool:
    if not endpoint_url:
        return False
    host = urllib.parse.urlsplit(endpoint_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def client_config(
    pool_size: int = 10, *, attempts: int = MAX_ATTEMPTS, connect_timeout: float = 5, read_timeout: float = 60
) -> Config:
    return Config(
        retries={"total_max_attempts": attempts, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=pool_size,
        # S3 bodies are not hashed again for the signature: each carries a CRC32 that S3 checks (backup
        # parts compute theirs from the pieces they are made of), which with TLS is what botocore
        # itself settles for on https. On the lab's plain-HTTP endpoint botocore would otherwise read
        # every part a third time, in 1 MiB copies per upload thread.
        s3={"payload_signing_enabled": False},
    )


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "Unknown"))
    return type(exc).__name__


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and error_code(exc) in NOT_FOUND_CODES


# An object that is not there (a missing bucket is a misconfiguration, never "no object").
OBJECT_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
# A conditional write (If-None-Match: *) that found the object already there.
ALREADY_EXISTS_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})

T = TypeVar("T")


def aws_call(
    call: Callable[[], T],
    action: str,
    resource: str,
    *,
    absent: frozenset[str] = frozenset(),
    exists: Callable[[], RecoveryError] | None = None,
) -> T | None:
    """Run one AWS call; its botocore failures become the toolkit's errors in one place. An error code in
    `absent` means "not there" (None is returned); an already-exists code raises `exists()` when given;
    everything else is `translate_error`'s one line (the cause chained)."""
    try:
        return call()
    except ClientError as exc:
        code = error_code(exc)
        if code in absent:
            return None
        if exists is not None and code in ALREADY_EXISTS_CODES:
            raise exists() from exc
        raise translate_error(exc, action, resource) from exc
    except BotoCoreError as exc:
        raise translate_error(exc, action, resource) from exc


def translate_error(exc: BaseException, action: str, resource: str) -> RecoveryError:
    """The toolkit's error for a botocore failure while doing `action` to `resource`."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        detail = str(exc.response.get("Error", {}).get("Message", "")).splitlines()[0:1]
        text = f" ({detail[0][:_MESSAGE_LIMIT]})" if detail and detail[0] else ""
        if code in KEY_ERROR_CODES or (code == "AccessDeniedException" and resource.startswith("KMS")):
            return KeyUnavailable(
                f"cannot {action} with {resource}: {code}{text}; check that the key exists, is enabled "
                "and that this identity may use it"
            )
        return ExternalFailure(f"AWS refused to {action} on {resource}: {code}{text}")
    if isinstance(exc, NoCredentialsError):
        return EnvironmentProblem(
            f"no AWS credentials to {action} on {resource}; set AWS_PROFILE or the target's aws.profile"
        )
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError):
        endpoint = getattr(exc, "kwargs", {}).get("endpoint_url", "the AWS endpoint")
        return ExternalFailure(
            f"cannot reach {endpoint} to {action} on {resource} after retrying; "
            "check the endpoint and the network"
        )
    return ExternalFailure(f"failed to {action} on {resource}: {type(exc).__name__}")


def failover_record_upsert(
    name: str,
    role: str,
    address: str,
    ttl: int,
    health_check: str | None = None,
    *,
    set_identifier: str | None = None,
) -> dict[str, Any]:
    """One Route53 change: UPSERT the `role` (PRIMARY or SECONDARY) failover A record `name` to
    `address`, with the health check Route53 evaluates for it. Pure."""
    value = {"TTL": ttl, "ResourceRecords": [{"Value": address}]}
    return _failover_upsert(name, role, set_identifier, value, health_check)


def failover_alias_upsert(
    name: str,
    role: str,
    dns_name: str,
    alias_zone_id: str,
    health_check: str | None = None,
    *,
    set_identifier: str | None = None,
) -> dict[str, Any]:
    """One Route53 change: UPSERT the `role` failover record `name` as an alias to a load balancer
    (`dns_name` in its canonical zone `alias_zone_id`). EvaluateTargetHealth stays on: the record is
    healthy only while the load balancer has healthy targets (and `health_check`, when given, passes).
    An alias has no TTL of its own. Pure."""
    value = {
        "AliasTarget": {"HostedZoneId": alias_zone_id, "DNSName": dns_name, "EvaluateTargetHealth": True}
    }
    return _failover_upsert(name, role, set_identifier, value, health_check)


def http_health_check_config(address: str, port: int) -> dict[str, Any]:
    """The HealthCheckConfig of the lab's records: HTTP `/health` on one host, every 10 s, failing at the
    first miss (so a lost site is seen within the watch's window). Pure."""
    return {
        "IPAddress": address,
        "Port": port,
        "Type": "HTTP",
        "ResourcePath": "/health",
        "RequestInterval": 10,
        "FailureThreshold": 1,
    }


def _failover_upsert(
    name: str, role: str, set_identifier: str | None, value: dict[str, Any], health_check: str | None
) -> dict[str, Any]:
    # The set identifier names the record within the pair: reuse the one the zone has (a stack names
    # them after its site), or else the role, so an UPSERT replaces the record instead of adding one.
    record: dict[str, Any] = {
        "Name": name,
        "Type": "A",
        "SetIdentifier": set_identifier or role.lower(),
        "Failover": role,
        **value,
    }
    if health_check:
        record["HealthCheckId"] = health_check
    return {"Action": "UPSERT", "ResourceRecordSet": record}


# botocore gives every session its own loader of the service models (the JSON that describes each API)
# and caches the parsed models in that loader: each session's first S3 client parsed S3's model again,
# measured 14 MiB resident per session, and a run makes several (its lock, its notifications, its
# stores). One loader for the process parses each model once; sessions and clients stay per driver.
_models: Any = None
_models_lock = threading.Lock()


def _botocore_session() -> Any:
    """A fresh botocore session that reads the service models through the process's one loader."""
    global _models
    with _models_lock:
        core = botocore.session.get_session()
        if _models is None:
            _models = core.get_component("data_loader")
            _models.file_loader = ModelFiles()  # plain dicts, the endpoints table cut (aws_models)
        else:
            core.register_component("data_loader", _models)
        return core


def _boto3_session(**kwargs: Any) -> boto3.session.Session:
    session = boto3.session.Session(botocore_session=_botocore_session(), **kwargs)
    # boto3 adds its own models' folder to the (shared) loader's search path for every session.
    with _models_lock:
        paths = _models.search_paths
        paths[:] = list(dict.fromkeys(paths))
    return session


def new_session(endpoint_url: str | None, profile: str | None = None) -> boto3.session.Session:
    """A boto3 session for an endpoint: the profile's credentials, or for a local endpoint without any
    the fixed ones it accepts."""
    session = _boto3_session(profile_name=profile)
    if is_local_endpoint(endpoint_url) and session.get_credentials() is None:
        session = _boto3_session(
            aws_access_key_id=LOCAL_ENDPOINT_CREDENTIALS["aws_access_key_id"],
            aws_secret_access_key=LOCAL_ENDPOINT_CREDENTIALS["aws_secret_access_key"],
        )
    return session


def new_client(service: str, region: str, *, endpoint_url: str | None, config: Config | None = None) -> Any:
    """One boto3 client, made the one way every client is made (AwsDriver caches them per target)."""
    return new_session(endpoint_url).client(
        service,  # type: ignore[call-overload]
        region_name=region,
        endpoint_url=endpoint_url,
        config=config or client_config(),
    )


class UnreachableEndpoints:
    """The endpoint URLs a call could not connect to after its retries, in this process, until a call to
    them succeeds. Fed by botocore's `after-call-error` and `after-call` events of every driver's clients,
    so no call site has to report anything."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._urls: set[str] = set()

    def __contains__(self, url: object) -> bool:
        with self._lock:
            return url in self._urls

    def watch(self, client: Any) -> None:
        """Follow the outcome of every call `client` makes."""
        url = str(client.meta.endpoint_url)

        def failed(exception: BaseException, **_: Any) -> None:
            if isinstance(exception, EndpointConnectionError | ConnectTimeoutError):
                with self._lock:
                    self._urls.add(url)

        def answered(**_: Any) -> None:  # any HTTP answer, an error status included: it is reachable
            with self._lock:
                self._urls.discard(url)

        client.meta.events.register("after-call-error", failed)
        client.meta.events.register("after-call", answered)

    def forget(self) -> None:
        with self._lock:
            self._urls.clear()


UNREACHABLE = UnreachableEndpoints()


class AwsDriver:
    """boto3 clients for one target's AWS endpoint, one per service and region, shared across threads."""

    def __init__(
        self,
        endpoint: AwsEndpoint | None = None,
        *,
        pool_size: int = 10,
        attempts: int = MAX_ATTEMPTS,
        connect_timeout: float = 5,
        read_timeout: float = 60,
    ) -> None:
        self._endpoint_url = endpoint.endpoint_url if endpoint else None
        self._profile = endpoint.profile if endpoint else None
        self._config = client_config(
            pool_size, attempts=attempts, connect_timeout=connect_timeout, read_timeout=read_timeout
        )
        self._fast_fail_config = client_config(
            pool_size,
            attempts=min(attempts, FAST_FAIL_ATTEMPTS),
            connect_timeout=min(connect_timeout, FAST_FAIL_CONNECT_TIMEOUT),
            read_timeout=read_timeout,
        )
        # (service, region, endpoint, fast fail) -> client
        self._clients: dict[tuple[str, str, str | None, bool], Any] = {}
        # boto3 sessions are not thread-safe, clients are: build under a lock, then share.
        self._lock = threading.Lock()
        self._session: boto3.session.Session | None = None

    def client(self, service: str, region: str, endpoint_url: str | None = None) -> Any:
        """The client of `service` in `region`, at the target's endpoint or at `endpoint_url`; one that
        fails fast while that endpoint is known unreachable in this process."""
        endpoint = endpoint_url or self._endpoint_url
        with self._lock:
            client = self._cached_client(service, region, endpoint, fast_fail=False)
            if client.meta.endpoint_url in UNREACHABLE:
                client = self._cached_client(service, region, endpoint, fast_fail=True)
            return client

    def _cached_client(self, service: str, region: str, endpoint: str | None, *, fast_fail: bool) -> Any:
        key = (service, region, endpoint, fast_fail)
        cached = self._clients.get(key)
        if cached is None:
            if self._session is None:
                self._session = self._new_session()
            with self.translate("create a client", f"{service} in {region}"):
                cached = self._session.client(
                    service,  # type: ignore[call-overload]
                    region_name=region,
                    endpoint_url=endpoint,
                    config=self._fast_fail_config if fast_fail else self._config,
                )
            UNREACHABLE.watch(cached)
            self._clients[key] = cached
        return cached

    def _new_session(self) -> boto3.session.Session:
        return new_session(self._endpoint_url, self._profile)

    def s3(self, region: str, endpoint_url: str | None = None) -> S3Client:
        client: S3Client = self.client("s3", region, endpoint_url)
        return client

    def kms(self, region: str) -> KMSClient:
        client: KMSClient = self.client("kms", region)
        return client

    @staticmethod
    @contextmanager
    def translate(action: str, resource: str) -> Iterator[None]:
        """Run AWS calls; re-raise botocore failures as one-line toolkit errors (traceback chained)."""
        try:
            yield
        except (ClientError, BotoCoreError) as exc:
            raise translate_error(exc, action, resource) from exc
