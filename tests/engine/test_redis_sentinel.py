"""Redis behind Sentinel (``redis+sentinel://``): real redis-server master, replica and sentinel
processes on loopback ports, a real failover (SIGKILL of the master), and a whole job run
through Sentinel against the iRODS test server. No mocks.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from irods_ingest.config import Operation
from irods_ingest.errors import PermanentError, StoreUnavailable
from irods_ingest.redact import Redactor, worker_secrets
from irods_ingest.store.acl import selects_database, url_with_credentials, without_credentials
from irods_ingest.store.connection import connect, translated_errors
from irods_ingest.store.urls import DEFAULT_SENTINEL_PORT, parse_sentinel_url, redacted
from irods_ingest_testkit.processes import free_port, stop_process, wait_until
from irods_ingest_testkit.redis_server import RedisServer, RedisServerMissing
from testsupport.ingest import Ingest
from testsupport.irods_fixtures import IrodsEnv
from testsupport.require import service_unavailable

pytestmark = pytest.mark.redis

SERVICE = "mymaster"
MASTER_PASSWORD = "master-Pass-1"
SENTINEL_PASSWORD = "sentinel-Pass-2"


@dataclass
class SentinelProcess:
    """One ``redis-server --sentinel`` monitoring ``master_port`` as :data:`SERVICE` (quorum 1)."""

    data_dir: Path
    master_port: int
    master_password: str | None = None
    password: str | None = None  # the sentinel's own requirepass
    port: int = 0
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def start(self) -> SentinelProcess:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerMissing("redis-server is not installed; install it with `apt-get install redis-server`")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        lines = [
            "bind 127.0.0.1", f"port {self.port}", "daemonize no", f"dir {self.data_dir}",
            f"logfile {self.data_dir / 'sentinel.log'}",
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} 1",
            f"sentinel down-after-milliseconds {SERVICE} 1000",
            f"sentinel failover-timeout {SERVICE} 3000",
            f"sentinel parallel-syncs {SERVICE} 1",
        ]
        if self.master_password:
            lines.append(f"sentinel auth-pass {SERVICE} {self.master_password}")
        if self.password:
            lines.append(f"requirepass {self.password}")
        config = self.data_dir / "sentinel.conf"  # sentinel rewrites it: it must be writable
        config.write_text("\n".join(lines) + "\n")
        self._process = subprocess.Popen([binary, str(config), "--sentinel"], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL)
        wait_until(lambda: self.master_state() is not None, timeout=15.0, what=f"sentinel on port {self.port}",
                   process=self._process)
        return self

    def client(self) -> redis.Redis:
        return redis.Redis("127.0.0.1", self.port, password=self.password, socket_timeout=2.0)

    def master_state(self) -> dict[str, Any] | None:
        """What the sentinel reports of :data:`SERVICE` (``None`` while it does not answer)."""
        client = self.client()
        try:
            masters: dict[str, dict[str, Any]] = client.sentinel_masters()  # type: ignore[assignment]
        except redis.RedisError:
            return None
        finally:
            client.close()
        return masters.get(SERVICE)

    def knows_replicas(self, count: int) -> bool:
        state = self.master_state()
        return state is not None and int(state.get("num-slaves", 0)) >= count

    def master_port_now(self) -> int | None:
        state = self.master_state()
        return int(state["port"]) if state is not None else None

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)
            self._process = None


@dataclass
class SentinelSetup:
    master: RedisServer
    replica: RedisServer | None
    sentinel: SentinelProcess

    def url(self, *, db: int = 0, query: str = "", hosts: str | None = None) -> str:
        auth = f":{MASTER_PASSWORD}@" if self.master.password else ""
        hosts = hosts or f"127.0.0.1:{self.sentinel.port}"
        params = [f"sentinel_password={self.sentinel.password}"] if self.sentinel.password else []
        params += [query] if query else []
        tail = "?" + "&".join(params) if params else ""
        return f"redis+sentinel://{auth}{hosts}/{SERVICE}/{db}{tail}"


def _replica_linked(replica: RedisServer) -> bool:
    client = redis.Redis.from_url(replica.url, socket_timeout=2.0)
    try:
        info = client.info("replication")
    except redis.RedisError:
        return False
    finally:
        client.close()
    return info.get("role") == "slave" and info.get("master_link_status") == "up"


@pytest.fixture
def make_sentinel(tmp_path: Path) -> Iterator[Callable[..., SentinelSetup]]:
    """``make_sentinel(replica=True, password=False)``: a master, an optional replica linked to
    it, and a sentinel that knows both; passwords on the master and the sentinel when asked."""
    started: list[Any] = []

    def make(*, replica: bool = True, password: bool = False) -> SentinelSetup:
        master_pw = MASTER_PASSWORD if password else None
        auth_args = ["--masterauth", MASTER_PASSWORD] if password else []
        try:
            master = RedisServer(data_dir=tmp_path / "master", password=master_pw, extra_args=auth_args)
            started.append(master.start())
            second = None
            if replica:
                second = RedisServer(data_dir=tmp_path / "replica", password=master_pw,
                                     extra_args=[*auth_args, "--replicaof", "127.0.0.1", str(master.port)])
                started.append(second.start())
                wait_until(lambda: _replica_linked(second), timeout=20.0, what="replica linked to its master")
            sentinel = SentinelProcess(tmp_path / "sentinel", master.port, master_password=master_pw,
                                       password=SENTINEL_PASSWORD if password else None)
            started.append(sentinel)
            sentinel.start()
        except RedisServerMissing as exc:
            service_unavailable("redis-server", str(exc), "run `make test` (it installs redis-server)")
        if replica:
            wait_until(lambda: sentinel.knows_replicas(1), timeout=20.0, what="sentinel discovering the replica")
        return SentinelSetup(master, second, sentinel)

    yield make
    for process in reversed(started):
        if isinstance(process, SentinelProcess):
            process.stop()
        else:
            process.close()


# ---------------------------------------------------------------------------- (a) (b) connect
def test_connect_reaches_the_master_and_writes(make_sentinel: Callable[..., SentinelSetup]) -> None:
    """A client made from a sentinel URL writes to the master (the replica receives the write),
    and a dead sentinel first in the host list is skipped."""
    setup = make_sentinel()
    dead = f"127.0.0.1:{free_port()}"
    client = connect(setup.url(hosts=f"{dead},127.0.0.1:{setup.sentinel.port}"))
    assert client.set("through-sentinel", "yes")
    assert client.info("server")["tcp_port"] == setup.master.port
    assert client.wait(1, 5000) == 1
    assert setup.replica is not None
    replica = redis.Redis.from_url(setup.replica.url)
    assert replica.get("through-sentinel") == b"yes"
    replica.close()
    client.close()


def test_database_number_is_selected(make_sentinel: Callable[..., SentinelSetup]) -> None:
    setup = make_sentinel(replica=False)
    client = connect(setup.url(db=3))
    client.set("in-db-3", "1")
    direct = redis.Redis.from_url(setup.master.url.rsplit("/", 1)[0] + "/3")
    assert direct.get("in-db-3") == b"1"
    direct.close()
    client.close()


def test_password_protected_master_and_sentinel(make_sentinel: Callable[..., SentinelSetup]) -> None:
    """The userinfo password reaches the master, sentinel_password the sentinel; a wrong or
    missing one of either is a PermanentError that says which one to fix."""
    setup = make_sentinel(replica=False, password=True)
    url = setup.url()
    client = connect(url)
    client.set("k", "v")
    assert client.get("k") == b"v"
    client.close()

    wrong_master = url.replace(MASTER_PASSWORD, "nope")
    with pytest.raises(PermanentError, match="refused the password") as refused:
        connect(wrong_master)
    assert "nope" not in str(refused.value)
    no_sentinel_pw = url.split("?", 1)[0]
    with pytest.raises(PermanentError, match=r"requires a password.*sentinel_password="):
        connect(no_sentinel_pw)
    wrong_sentinel_pw = url.replace(SENTINEL_PASSWORD, "wrong-sentinel-pw")
    with pytest.raises(PermanentError, match="refused the sentinel credentials") as bad_sentinel:
        connect(wrong_sentinel_pw)
    assert "wrong-sentinel-pw" not in str(bad_sentinel.value)


# ---------------------------------------------------------------------------- (c) redacted
def test_redacted_hides_both_passwords() -> None:
    url = ("redis+sentinel://ops:m%40ster-pw@s1.example:26379,[::1]:26380/mymaster/2"
           "?sentinel_username=watch&sentinel_password=s3nt-pw&ssl=true")
    shown = redacted(url)
    assert "m%40ster-pw" not in shown and "s3nt-pw" not in shown
    assert shown == ("redis+sentinel://ops:***@s1.example:26379,[::1]:26380/mymaster/2"
                     "?sentinel_username=watch&sentinel_password=***&ssl=true")
    assert redacted("rediss+sentinel://:pw@h:1/svc") == "rediss+sentinel://:***@h:1/svc"
    assert redacted("redis+sentinel://h1,h2/svc?sentinel_password=x") == "redis+sentinel://h1,h2/svc?sentinel_password=***"
    # nothing secret: unchanged; plain URLs as before
    assert redacted("redis+sentinel://h1:1,h2:2/svc/0") == "redis+sentinel://h1:1,h2:2/svc/0"
    assert redacted("redis://:secret@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert redacted("redis://user:secret@host:6379/0?password=other") == "redis://user:***@host:6379/0?password=***"


def test_worker_masks_both_passwords() -> None:
    """What a worker writes to Redis (failure records) is masked with the secrets it knows:
    the master password and the sentinel password of its Sentinel URL."""
    url = "redis+sentinel://u:m%40ster-pw@s1:1,s2:2/svc/0?ssl=true&sentinel_password=sent%2Bpw"
    assert {"m@ster-pw", "sent+pw"} <= set(worker_secrets({}, redis_url=url))
    masked = Redactor(worker_secrets({}, redis_url=url))("handler saw m@ster-pw and sent+pw")
    assert "m@ster-pw" not in masked and "sent+pw" not in masked


def test_errors_name_the_url_redacted(make_sentinel: Callable[..., SentinelSetup]) -> None:
    setup = make_sentinel(replica=False, password=True)
    url = setup.url().replace(f"/{SERVICE}/", "/unknown-service/")
    with pytest.raises(PermanentError) as raised:
        connect(url)
    assert SENTINEL_PASSWORD not in str(raised.value) and "master-Pass" not in str(raised.value)
    assert "sentinel_password=***" in str(raised.value)


# ---------------------------------------------------------------------------- (d) malformed
@pytest.mark.parametrize(
    ("url", "problem", "fix"),
    [
        ("redis+sentinel://127.0.0.1:26379", "names no service", "redis+sentinel://sentinel:26379/mymaster/0"),
        ("redis+sentinel://127.0.0.1:26379/", "names no service", "put the name"),
        ("redis+sentinel:///mymaster", "names no sentinel host", "host:port"),
        ("redis+sentinel://h1:26379,,h2:26379/mymaster", "empty entry", "single commas"),
        ("redis+sentinel://h1:port/mymaster", "invalid port", "1 to 65535"),
        ("redis+sentinel://h1:26379/mymaster/zero", "invalid database number", "a number such as 0"),
        ("redis+sentinel://h1:26379/mymaster/0/extra", "too many path segments", "/service_name/db"),
        ("redis+sentinel://h1:26379/mymaster?sentinel_pasword=x", "unknown query parameter 'sentinel_pasword'",
         "sentinel_password"),
        ("redis+sentinel://h1:26379/mymaster?ssl_ca_certs=/ca.crt", "sets ssl_ca_certs without TLS", "ssl=true"),
        ("redis+sentinel://h1:26379/mymaster?ssl=maybe", "ssl='maybe'", "ssl=true or ssl=false"),
        ("rediss+sentinel://h1:26379/mymaster?ssl=false", "TLS) and ssl=false", "drop one"),
        ("redis+sentinel://[::1:26379/mymaster", "malformed IPv6", "[address]:port"),
    ],
)
def test_malformed_urls_say_what_is_wrong(url: str, problem: str, fix: str) -> None:
    with pytest.raises(PermanentError) as raised:
        connect(url)
    message = str(raised.value)
    assert problem in message and fix in message, message
    assert "redis+sentinel://[[user]:password@]host1" in message  # the form to follow


def test_url_grammar() -> None:
    target = parse_sentinel_url(
        "rediss+sentinel://app:p%40ss@s1:1000,s2,[::1]:1002/my%20svc/4"
        "?sentinel_username=mon&sentinel_password=sp&ssl_ca_certs=/etc/ca.crt&ssl_check_hostname=false"
    )
    assert target.sentinels == (("s1", 1000), ("s2", DEFAULT_SENTINEL_PORT), ("::1", 1002))
    assert (target.service, target.db, target.username, target.password) == ("my svc", 4, "app", "p@ss")
    assert (target.sentinel_username, target.sentinel_password) == ("mon", "sp")
    assert target.tls and target.tls_options == {"ssl_ca_certs": "/etc/ca.crt", "ssl_check_hostname": False}
    plain = parse_sentinel_url("redis+sentinel://s1/svc?ssl=true")
    assert (plain.tls, plain.db, plain.password, plain.sentinel_password) == (True, 0, None, None)
    assert not parse_sentinel_url("redis+sentinel://s1/svc").tls


def test_worker_url_helpers_read_sentinel_urls() -> None:
    """The operator derives workers' URLs from its own: credentials off (the sentinel
    parameters kept, several hosts allowed), the database read from /service/db."""
    url = "redis+sentinel://op:pw@s1:26379,s2:26380/mymaster/0?sentinel_password=sp"
    assert without_credentials(url) == "redis+sentinel://s1:26379,s2:26380/mymaster/0?sentinel_password=sp"
    assert url_with_credentials(without_credentials(url), "ii-job:j", "p w") == (
        "redis+sentinel://ii-job%3Aj:p%20w@s1:26379,s2:26380/mymaster/0?sentinel_password=sp"
    )
    assert not selects_database(url) and not selects_database("redis+sentinel://s1/mymaster")
    assert selects_database("redis+sentinel://s1/mymaster/2")


def test_unknown_service_is_a_permanent_error_listing_what_is_monitored(
    make_sentinel: Callable[..., SentinelSetup],
) -> None:
    setup = make_sentinel(replica=False)
    url = setup.url().replace(f"/{SERVICE}/", "/nosuch/")
    with pytest.raises(PermanentError, match=r"no Redis Sentinel knows service 'nosuch'.*monitor 'mymaster'"):
        connect(url)


def test_a_master_address_instead_of_a_sentinel_is_explained(make_sentinel: Callable[..., SentinelSetup]) -> None:
    setup = make_sentinel(replica=False)
    with pytest.raises(PermanentError, match="are the sentinels"):
        connect(f"redis+sentinel://127.0.0.1:{setup.master.port}/{SERVICE}")


def test_no_reachable_sentinel_is_retryable() -> None:
    with pytest.raises(StoreUnavailable, match=r"has no master.*'mymaster'"):
        connect(f"redis+sentinel://127.0.0.1:{free_port()}/{SERVICE}")


def test_a_known_service_without_a_live_master_is_retryable(make_sentinel: Callable[..., SentinelSetup]) -> None:
    """Sentinel knows the service but its master is down and nothing can be promoted: the
    error is StoreUnavailable (workers back off), not a permanent failure."""
    setup = make_sentinel(replica=False)
    url = setup.url()
    connect(url).close()
    setup.master.kill()
    wait_until(lambda: bool((setup.sentinel.master_state() or {}).get("is_sdown")), timeout=15.0,
               what="sentinel marking the master down")
    with pytest.raises(StoreUnavailable, match=r"has no master.*'mymaster'"):
        connect(url)


def test_a_replica_refusing_writes_is_retryable(make_sentinel: Callable[..., SentinelSetup]) -> None:
    """READONLY (what a demoted master answers) is classified retryable."""
    setup = make_sentinel()
    assert setup.replica is not None
    replica = redis.Redis.from_url(setup.replica.url)
    with pytest.raises(redis.exceptions.ReadOnlyError):
        replica.set("k", "v")
    with pytest.raises(StoreUnavailable, match="not ready"), translated_errors(setup.replica.url):
        replica.set("k", "v")
    replica.close()


# ---------------------------------------------------------------------------- (e) failover
def test_the_same_client_follows_a_failover(make_sentinel: Callable[..., SentinelSetup]) -> None:
    """Write, SIGKILL the master, let Sentinel promote the replica: the same client object
    writes again, to the new master. Anything raised meanwhile is StoreUnavailable (retryable);
    a PermanentError would fail the test at once."""
    setup = make_sentinel()
    assert setup.replica is not None
    client = connect(setup.url())
    client.set("before", "1")
    assert client.wait(1, 5000) == 1  # the replica has it before the crash

    setup.master.kill()
    retryable: list[StoreUnavailable] = []
    deadline = time.monotonic() + 60.0
    while True:
        try:
            with translated_errors(setup.url()):
                client.set("after", "2")
            break
        except StoreUnavailable as exc:  # the failover window: a worker backs off and tries again
            retryable.append(exc)
            assert time.monotonic() < deadline, f"no write after failover within 60 s: {retryable[-1]}"
            time.sleep(0.2)

    assert setup.sentinel.master_port_now() == setup.replica.port
    assert client.info("server")["tcp_port"] == setup.replica.port
    promoted = redis.Redis.from_url(setup.replica.url)
    assert promoted.info("replication")["role"] == "master"
    assert (promoted.get("before"), promoted.get("after")) == (b"1", b"2")
    promoted.close()
    client.close()


# ---------------------------------------------------------------------------- (f) a whole job
@pytest.mark.irods
def test_a_job_runs_through_sentinel(make_sentinel: Callable[..., SentinelSetup], tmp_path: Path,
                                     irods_env: IrodsEnv, irods_session: Callable[..., Any]) -> None:
    """start_job and the worker both connect with the sentinel URL (passwords on master and
    sentinel); the files land in the catalog."""
    setup = make_sentinel(replica=False, password=True)
    source = tmp_path / "src"
    source.mkdir()
    session = irods_session()
    ingest = Ingest(redis_url=setup.url(), env=irods_env, session=session, source=source,
                    target=f"{irods_env.home}/sentinel_job_{setup.master.port}", job="sentinel-job")
    ingest.write("a.txt", "through sentinel")
    ingest.write("sub/b.dat", b"\x00\x01" * 100)
    try:
        status = ingest.run(operation=Operation.PUT)
        assert status.state == "done", status
        assert status.counters["files_synced"] == 2
        assert sorted(ingest.objects()) == ["a.txt", "sub/b.dat"]
        assert ingest.read("a.txt") == b"through sentinel"
        # the run's state lives on the master Sentinel names
        direct = redis.Redis.from_url(setup.master.url)
        assert any(b"sentinel-job" in key for key in direct.scan_iter(count=1000))
        direct.close()
    finally:
        if session.collections.exists(ingest.target):
            session.collections.remove(ingest.target, recurse=True, force=True)
