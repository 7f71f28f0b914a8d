"""A throwaway local PostgreSQL server: for the demo and for the test suite.

Finds server binaries (``$SESSIONCTL_PG_BINDIR``, PATH, ``pg_config --bindir``, Debian's
``/usr/lib/postgresql/<v>/bin``, then the ``pgserver`` wheel), runs ``initdb`` into a fresh data
folder, and starts the server on loopback only, on a free port, with its socket in the data
folder. PostgreSQL refuses to run as root, so as root everything runs as an unprivileged user
(``postgres`` if it exists, else ``nobody``) and the data folder lives in a temp folder that user
can reach. :meth:`EmbeddedPostgres.stop` is idempotent and is always called on exit.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from sessionctl import process
from sessionctl.errors import CommandError, TargetError, ToolNotFound

INSTALL_HINT = (
    "no PostgreSQL server binaries found; install them (`apt-get install postgresql`, "
    "or `pip install pgserver`) or set SESSIONCTL_PG_BINDIR"
)
_SERVER_TOOLS = ("initdb", "pg_ctl", "postgres")
# A throwaway server: durability off (nothing here must survive a crash), room for 128+ clients.
DEFAULT_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "128MB",
}


def _has_server(bindir: Path) -> bool:
    return all(os.access(bindir / t, os.X_OK) for t in _SERVER_TOOLS)


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", path.parent.name)) or (0,)


def candidate_bindirs() -> Iterator[Path]:
    """Yield folders that may hold server binaries, best first."""
    env = os.environ.get("SESSIONCTL_PG_BINDIR")
    if env:
        yield Path(env)
    on_path = shutil.which("pg_ctl")
    if on_path:
        yield Path(os.path.realpath(on_path)).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(CommandError, ToolNotFound):
            yield Path(process.run([pg_config, "--bindir"]).stdout.strip())
    yield from sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    with contextlib.suppress(ImportError):
        import pgserver  # type: ignore[import-not-found]

        yield Path(pgserver.__file__).parent / "pginstall" / "bin"


def find_bindir() -> Path:
    """Return the first folder with initdb, pg_ctl and postgres, or raise naming what to install."""
    for d in candidate_bindirs():
        if _has_server(d):
            return d
    raise ToolNotFound(INSTALL_HINT)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unprivileged_user() -> str | None:
    """The user to run the server as: None unless we are root."""
    if os.geteuid() != 0:
        return None
    import pwd

    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise TargetError(
        "running as root and no unprivileged user (postgres, nobody) exists to run PostgreSQL"
    )


def blocking_folder(path: Path, user: str | None) -> Path | None:
    """The first existing folder on the way to ``path`` that ``user`` cannot enter, if any.

    As root the server runs as an unprivileged user, which must be able to reach its data
    folder; None when it can (or when we are not root, and the server runs as us).
    """
    if user is None:
        return None
    chain = [p for p in [*reversed(path.parents), path] if p.exists()]
    if (
        not chain
        or process.run(["test", "-x", str(chain[-1])], user=user, check=False).returncode == 0
    ):
        return None
    for folder in chain:
        if process.run(["test", "-x", str(folder)], user=user, check=False).returncode != 0:
            return folder
    return None


def _reachable_bindir(bindir: Path, user: str | None) -> Path:
    """As root, make sure ``user`` can execute the binaries (copy a wheel's tree out of /root).

    A wheel's binaries find their bundled libraries through an RPATH relative to themselves
    (pgserver: ``$ORIGIN/../../../pgserver.libs``), so the copy keeps the layout from the
    package's parent folder down: ``<pkg>/pginstall`` and every sibling ``*.libs`` folder.
    """
    if user is None:
        return bindir
    probe = process.run(["test", "-x", str(bindir / "postgres")], user=user, check=False)
    if probe.returncode == 0:
        return bindir
    install = bindir.parent  # .../site-packages/pgserver/pginstall
    package = install.parent  # .../site-packages/pgserver
    top = package.parent  # .../site-packages
    digest = hashlib.sha256(str(install).encode()).hexdigest()[:12]
    dest = Path(tempfile.gettempdir()) / f"sessionctl-pginstall-{digest}"
    rel_bin = bindir.relative_to(top)
    if not (dest / rel_bin / "postgres").exists():
        tmp = Path(tempfile.mkdtemp(prefix="sessionctl-pginstall-"))
        tree = tmp / "tree"
        shutil.copytree(install, tree / install.relative_to(top), symlinks=True)
        for libs in top.glob("*.libs"):
            shutil.copytree(libs, tree / libs.name, symlinks=True)
        for folder in (tmp, *[p for p in tree.rglob("*") if p.is_dir()], tree):
            os.chmod(folder, 0o755)
        with contextlib.suppress(OSError):
            os.replace(tree, dest)
        shutil.rmtree(tmp, ignore_errors=True)
    return dest / rel_bin


class EmbeddedPostgres:
    """One local server in its own data folder. Use as a context manager."""

    def __init__(
        self,
        datadir: Path | None = None,
        *,
        port: int | None = None,
        dbname: str = "postgres",
        settings: dict[str, str] | None = None,
    ) -> None:
        self.user = unprivileged_user()
        self.bindir = _reachable_bindir(find_bindir(), self.user)
        if datadir is None:
            # A temp folder: as root it must sit where the unprivileged user can reach it.
            base = Path(tempfile.mkdtemp(prefix="sessionctl-pg-"))
            os.chmod(base, 0o755)
            self._owned_base: Path | None = base
            datadir = base / "data"
        else:
            self._owned_base = None
        self.datadir = Path(datadir)
        self.port = port
        self.dbname = dbname
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self.running = False

    @property
    def role(self) -> str:
        return self.user or _current_user()

    @property
    def url(self) -> str:
        """A libpq URL for the server (loopback TCP, no password)."""
        return f"postgresql://{self.role}@127.0.0.1:{self.port}/{self.dbname}"

    @property
    def sockdir(self) -> Path:
        return self.datadir / "socket"

    def tool(self, name: str) -> Path:
        """Path of a binary shipped beside the server (pgbench, psql... if present there)."""
        return self.bindir / name

    def _run(self, argv: list[str], **kw: object) -> None:
        process.run(argv, user=self.user, cwd="/", **kw)  # type: ignore[arg-type]

    def init(self) -> None:
        """Create the data folder (idempotent: an existing cluster is reused)."""
        if (self.datadir / "PG_VERSION").exists():
            _make_socket_folder(self.datadir, self.user)
            return
        self.datadir.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            import pwd

            pw = pwd.getpwnam(self.user)
            top = self._owned_base or self.datadir
            for p in (top, *top.rglob("*")):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                self.role,
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            timeout=120,
        )
        _make_socket_folder(self.datadir, self.user)

    def start(self, *, attempts: int = 5) -> EmbeddedPostgres:
        """Start the server on a free loopback port (retrying another port if one is taken)."""
        self.init()
        last: Exception | None = None
        for _ in range(attempts):
            port = self.port or free_port()
            opts = [f"-p {port}", "-c listen_addresses=127.0.0.1", f"-k {self.sockdir}"]
            opts += [f"-c {k}={v}" for k, v in self.settings.items()]
            _make_socket_folder(self.datadir, self.user)
            try:
                self._run(
                    [
                        str(self.bindir / "pg_ctl"),
                        "-D",
                        str(self.datadir),
                        "-l",
                        str(self.datadir / "server.log"),
                        "-o",
                        " ".join(opts),
                        "-w",
                        "-t",
                        "60",
                        "start",
                    ],
                    timeout=90,
                )
            except CommandError as exc:
                last = exc
                if self.port is not None:
                    break
                continue
            self.port = port
            self.running = True
            return self
        log_tail = ""
        with contextlib.suppress(OSError):
            log_tail = " | ".join(
                (self.datadir / "server.log").read_text().strip().splitlines()[-3:]
            )
        raise TargetError(
            f"embedded PostgreSQL did not start in {self.datadir}: {last} {log_tail}".strip()
        )

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove folders this object created."""
        if self.running:
            with contextlib.suppress(CommandError, ToolNotFound):
                self._run(
                    [
                        str(self.bindir / "pg_ctl"),
                        "-D",
                        str(self.datadir),
                        "-m",
                        "fast",
                        "-w",
                        "-t",
                        "30",
                        "stop",
                    ],
                    timeout=60,
                )
            self.running = False

    def cleanup(self) -> None:
        """Stop and delete the data folder if this object created it."""
        self.stop()
        if self._owned_base is not None:
            shutil.rmtree(self._owned_base, ignore_errors=True)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until a connection succeeds."""
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


def _make_socket_folder(datadir: Path, user: str | None) -> None:
    """Make ``datadir/socket`` (the server's -k folder), owned by the user the server runs as."""
    sockdir = datadir / "socket"
    sockdir.mkdir(exist_ok=True)
    if user is not None:
        import pwd

        pw = pwd.getpwnam(user)
        os.chown(sockdir, pw.pw_uid, pw.pw_gid)


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def server_argv(
    bindir: Path, datadir: Path, port: int, settings: dict[str, str] | None = None
) -> list[str]:
    """The foreground ``postgres`` command line for ``datadir`` on 127.0.0.1:``port``."""
    argv = [
        str(bindir / "postgres"),
        "-D",
        str(datadir),
        "-p",
        str(port),
        "-k",
        str(datadir / "socket"),
    ]
    argv += ["-c", "listen_addresses=127.0.0.1"]
    for k, v in {**DEFAULT_SETTINGS, **(settings or {})}.items():
        argv += ["-c", f"{k}={v}"]
    return argv


def serve(datadir: Path, port: int) -> None:
    """Replace this process by a foreground server (SIGINT = fast shutdown), as a campaign target.

    As root, privileges are dropped to the unprivileged user first. The data folder must exist
    (made by :meth:`EmbeddedPostgres.init`).
    """
    user = unprivileged_user()
    try:
        if not (datadir / "PG_VERSION").exists():
            raise TargetError(
                f"{datadir}: not a PostgreSQL data folder; create it first with "
                f"`python -m sessionctl.target.embedded_postgres init --datadir {datadir}`"
            )
        _make_socket_folder(datadir, user)
        bindir = _reachable_bindir(find_bindir(), user)
        argv = server_argv(bindir, datadir, port)
        if user is not None:
            import pwd

            pw = pwd.getpwnam(user)
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            os.environ["HOME"] = pw.pw_dir
    except PermissionError as exc:
        if user is None:
            raise
        # Root without root's privileges: an agent's sandbox (Codex's workspace-write drops
        # every capability) can neither read the server user's data folder nor become it.
        raise TargetError(
            f"{datadir}: {exc.strerror or exc}: running as root without root's privileges "
            f"(inside an agent's sandbox?), so the server cannot be started as {user}; run as "
            "a normal user, or let the agent run unsandboxed "
            "(agent.codex_args: [--sandbox, danger-full-access])"
        ) from None
    os.execv(argv[0], argv)


def main(argv: list[str] | None = None) -> int:
    """``python -m sessionctl.target.embedded_postgres init|serve --datadir D [--port P]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sessionctl.target.embedded_postgres")
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run a server in the foreground on 127.0.0.1")
    p_serve.add_argument("--datadir", type=Path, required=True)
    p_serve.add_argument("--port", type=int, required=True)
    p_init = sub.add_parser("init", help="create a data folder for serve (initdb; idempotent)")
    p_init.add_argument("--datadir", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "init":
            EmbeddedPostgres(args.datadir.absolute()).init()
            print(
                f"initialized {args.datadir}; run it with `serve --datadir {args.datadir} --port P`"
            )
        else:
            serve(args.datadir, args.port)
    except (TargetError, ToolNotFound, CommandError) as exc:
        print(f"error: {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
