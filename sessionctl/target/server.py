"""The server under test: start it, wait until it answers, prepare it, check it, stop it.

A campaign's ``target:`` says how (see :class:`sessionctl.campaign.model.Target`). When it has a
``start`` command, :class:`TargetHandle` runs it in its own session with output in a log file and
stops the whole session with the configured signal (SIGINT by default: Materialize's launcher
cleans up its children on SIGINT and orphans them on SIGTERM). Without one, the user runs the
server and we only probe it, briefly, so a dead server is one clear line instead of a long hang.

Connection URLs may hold passwords (or ``$VARS`` expanded from the environment); every URL that
is printed, logged or stored goes through :func:`redact`, and text that may echo one (server
logs, driver output, the start command's arguments) through :func:`scrub`. Both live in
:mod:`sessionctl.redaction` (re-exported here for the drivers that import them from here).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from sessionctl.campaign.model import Campaign, Preflight, Target
from sessionctl.errors import TargetError
from sessionctl.process import describe_argv, spawn, stop_tree
from sessionctl.redaction import MASK, redact, redact_argv, scrub, secret_key, secrets_of
from sessionctl.reporting import NULL, Reporter
from sessionctl.workspace import Workspace

_UNREACHABLE_PROBE = 2.0  # how long to probe a server we did not start before calling it dead


__all__ = [
    "MASK",
    "PreflightResult",
    "TargetHandle",
    "check_expectation",
    "expand",
    "open_target",
    "redact",
    "scrub",
    "secrets_of",
]


def expand(url: str | None) -> str | None:
    """Expand ``$VAR``/``${VAR}`` in a configured URL (so passwords can live in the environment)."""
    return os.path.expandvars(url) if url else url


@dataclass(frozen=True)
class PreflightResult:
    """The outcome of one preflight check."""

    name: str
    expect: str
    value: Any
    ok: bool


def check_expectation(expect: str, value: Any) -> bool:
    """Evaluate a preflight ``expect`` (``>= N``, ``> N``, ``== X``, ``<= N``, ``< N``, ``!= X``,
    ``true``, ``false``, ``~ regex``) against the query's first value."""
    e = expect.strip()
    low = e.lower()
    if low in ("true", "false"):
        truthy = _truthy(value)
        return truthy if low == "true" else not truthy
    if e.startswith("~"):
        return value is not None and re.search(e[1:].strip(), str(value)) is not None
    m = re.fullmatch(r"(>=|<=|==|!=|>|<)\s*(.+)", e)
    if not m:
        raise TargetError(
            f"preflight expect {expect!r}: use '>= N', '> N', '== N', '<= N', 'true' or '~ regex'"
        )
    op, rhs = m.group(1), m.group(2).strip().strip("'\"")
    if value is None:
        return False
    try:
        a, b = float(value), float(rhs)
    except (TypeError, ValueError):
        if op in ("==", "!="):
            return (str(value) == rhs) == (op == "==")
        return False
    return {
        ">=": a >= b,
        "<=": a <= b,
        "==": a == b,
        "!=": a != b,
        ">": a > b,
        "<": a < b,
    }[op]


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("t", "true", "on", "yes", "1")
    return bool(value)


class TargetHandle:
    """One campaign's server: ``start`` (when configured), ``wait_ready``, ``run_setup``,
    ``preflight``, ``stop``; a context manager that starts on entry and stops on exit. Its
    processes (for profiling) are :func:`sessionctl.profiling.pids.target_pids` of it: the target
    knows nothing of profiling."""

    def __init__(
        self,
        ws: Workspace,
        campaign: Campaign,
        *,
        start: bool = True,
        reporter: Reporter = NULL,
        artifacts_dir: Path | None = None,
    ) -> None:
        self.ws = ws
        self.campaign = campaign
        self.spec: Target = campaign.target
        self.reporter = reporter
        self.artifacts_dir = artifacts_dir
        self.should_start = bool(start and self.spec.start)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self.ready = False
        self._log: IO[bytes] | None = None
        self.adopted: int | None = None  # pid of a long-lived server started by an earlier command

    @property
    def long_lived(self) -> bool:
        """``target.restart: never`` with a start command: start once, reuse, never stop."""
        return self.spec.restart == "never" and self.should_start

    @property
    def leader_pid(self) -> int | None:
        """The session leader of the server we started (this command or an earlier one)."""
        return self.proc.pid if self.proc is not None else self.adopted

    # --- addresses ------------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"prompts/{self.campaign.name}.yaml"

    @property
    def sql_url(self) -> str:
        url = expand(self.spec.sql_url)
        if not url:
            raise TargetError(
                f"{self._where}: target.sql_url: not set; add the server's connection URL "
                "(e.g. postgresql://materialize@localhost:6875/materialize)"
            )
        return url

    @property
    def system_sql_url(self) -> str:
        return expand(self.spec.system_sql_url) or self.sql_url

    @property
    def metrics_url(self) -> str | None:
        return expand(self.spec.metrics_url)

    @property
    def secrets(self) -> list[str]:
        found = secrets_of(
            expand(self.spec.sql_url), expand(self.spec.system_sql_url), self.metrics_url
        )
        for key, value in self.spec.env.items():  # PGPASSWORD, API_TOKEN...: never echoed
            shown = os.path.expandvars(value)
            if secret_key(key) and shown and shown not in found:
                found.append(shown)
        return found

    def describe(self) -> dict[str, Any]:
        """Redacted facts about this target (for run records and ``--json``)."""
        return {
            "sql_url": redact(expand(self.spec.sql_url) or ""),
            "system_sql_url": redact(expand(self.spec.system_sql_url) or ""),
            "metrics_url": redact(self.metrics_url or ""),
            "started": self.proc is not None,
            "pid": self.leader_pid,
            "long_lived": self.long_lived,
            "start": self._shown_argv() if self.spec.start else None,
            "log": str(self.log_path) if self.log_path else None,
        }

    # --- lifecycle ------------------------------------------------------------------------------

    def _argv(self) -> list[str]:
        argv = list(self.spec.start or ())
        ph = self.spec.artifacts_param
        if not ph:
            return argv
        if self.artifacts_dir is None:
            # No preserved build to point at: leave out the arguments that would name it.
            return [a for a in argv if ph not in a]
        return [a.replace(ph, str(self.artifacts_dir)) for a in argv]

    def _shown_argv(self) -> str:
        """The start command as it may be printed or stored: passwords in it masked."""
        return scrub(describe_argv(redact_argv(self._argv())), self.secrets)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({k: os.path.expandvars(v) for k, v in self.spec.env.items()})
        return env

    def _cwd(self) -> Path:
        return (self.ws.root / self.spec.cwd).resolve() if self.spec.cwd else self.ws.root

    def start(self) -> TargetHandle:
        """Start the server if the campaign says how (and we were asked to); idempotent."""
        if not self.should_start or self.proc is not None:
            return self
        argv = self._argv()
        if self.spec.log:
            self.log_path = (self.ws.root / self.spec.log).resolve()
        else:
            stamp = time.strftime("%Y%m%dT%H%M%S")
            self.log_path = (
                self.ws.runs_dir(self.campaign.name) / f"target-{stamp}-{os.getpid()}.log"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cwd = self._cwd()
        if not cwd.is_dir():
            raise TargetError(f"{self._where}: target.cwd: {cwd} is not a folder; fix target.cwd")
        taken, _ = self._probe()
        if taken:
            # Whatever answers now is not the server we are about to start: measuring it would
            # record someone else's numbers under this campaign's name.
            raise TargetError(
                f"{self._probe_target()}: a server already answers there before target.start "
                "ran; stop it (or pass --no-start to measure that server on purpose)"
            )
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - the server writes to it until stop()
        self.reporter.info(f"starting target: {self._shown_argv()} (log: {self.log_path})")
        try:
            self.proc = spawn(
                argv, cwd=cwd, env=self._env(), stdout=self._log, stderr=subprocess.STDOUT
            )
        except BaseException:
            self._close_log()
            raise
        return self

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the server log on one line (secrets scrubbed), or ''."""
        if self.log_path is None:
            return ""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 8192))
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            return ""
        tail = [ln.strip() for ln in text.splitlines() if ln.strip()][-lines:]
        return scrub(" | ".join(tail), self.secrets)

    def _died(self) -> TargetError | None:
        from sessionctl.target import long_lived

        if self.proc is None and self.adopted is not None and not long_lived.alive(self.adopted):
            return TargetError(
                f"long-lived target (pid {self.adopted}) exited before it was ready; "
                f"log {self.log_path}: {self.log_tail() or '(empty)'}"
            )
        return self._exited("before it was ready")

    def check_alive(self, what: str) -> None:
        """Raise if the server we started has exited: whatever answered ``what`` was not it."""
        dead = self._exited(f"during {what}: its numbers are not trusted")
        if dead is not None:
            raise dead

    def _exited(self, when: str) -> TargetError | None:
        """The error for the server we started having exited ``when`` (None while it runs)."""
        if self.proc is None or self.proc.poll() is None:
            return None
        return TargetError(
            f"target `{self._shown_argv()}` exited with {self.proc.returncode} {when}; "
            f"log {self.log_path}: {self.log_tail() or '(empty)'}"
        )

    def _probe(self) -> tuple[bool, str]:
        """Try the readiness probe once: (ready, what went wrong)."""
        ready = self.spec.ready
        if ready is not None and ready.url:
            # Here, not at the top: urllib.request pulls in ssl and email (~25 ms), and the
            # redaction helpers below are imported by commands that never probe a URL.
            import urllib.error
            import urllib.request

            url = expand(ready.url) or ""
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    if resp.status == 200:
                        return True, ""
                    return False, f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                return False, f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                return False, str(reason)
        sql = ready.sql if ready is not None and ready.sql else "select 1"
        return self._sql_probe(sql)

    def _sql_probe(self, sql: str) -> tuple[bool, str]:
        import psycopg

        try:
            with psycopg.connect(self.sql_url, autocommit=True, connect_timeout=3) as conn:
                conn.execute(sql)  # type: ignore[arg-type]  # configured text, not user input
            return True, ""
        except psycopg.Error as exc:
            return False, _first_line(str(exc))

    def _probe_target(self) -> str:
        ready = self.spec.ready
        if ready is not None and ready.url:
            return redact(expand(ready.url) or "")
        return redact(self.sql_url)

    def wait_ready(self) -> TargetHandle:
        """Block until the readiness probe passes; raise naming the URL/command and the log tail."""
        ready = self.spec.ready
        started = self.leader_pid is not None
        timeout = ready.timeout if ready is not None else 300.0
        interval = ready.interval if ready is not None else 0.5
        if not started:
            timeout = min(timeout, _UNREACHABLE_PROBE)
        deadline = time.monotonic() + timeout
        what = ""
        while True:
            dead = self._died()
            if dead is not None:
                raise dead
            ok, what = self._probe()
            if ok:
                dead = self._died()  # it answered, but was it ours? ours must still be running
                if dead is not None:
                    raise dead
                self.ready = True
                return self
            if time.monotonic() >= deadline:
                break
            time.sleep(interval)
        where = self._probe_target()
        what = scrub(what, self.secrets)
        if started:
            raise TargetError(
                f"target not ready after {timeout:g}s at {where} ({what}); started with "
                f"`{self._shown_argv()}`; "
                f"log {self.log_path}: {self.log_tail() or '(empty)'}"
            )
        how = (
            "start it, or pass --start"
            if self.spec.start
            else f"start the server (or add target.start to {self._where}) and check target.sql_url"
        )
        raise TargetError(f"target not reachable at {where} ({what}); {how}")

    def stop(self) -> int | None:
        """Stop the server we started (stop signal, then SIGTERM/SIGKILL); return its exit code.

        A long-lived target is left running (only ``sessionctl target stop`` stops it)."""
        if self.long_lived:
            self.proc, self.ready = None, False
            self._close_log()
            return None
        if self.proc is None:
            return None
        sig = signal.Signals[self.spec.stop_signal]
        try:
            return stop_tree(self.proc, first_signal=sig, grace=self.spec.stop_timeout)
        finally:
            self.proc = None
            self.ready = False
            self._close_log()

    # --- SQL --------------------------------------------------------------------------------

    def connect(
        self, system: bool = False, *, autocommit: bool = True, timeout: float = 10.0
    ) -> Any:
        """Connect as the normal (or system) user; fail naming the redacted URL."""
        import psycopg

        url = self.system_sql_url if system else self.sql_url
        try:
            return psycopg.connect(url, autocommit=autocommit, connect_timeout=max(1, int(timeout)))
        except psycopg.Error as exc:
            msg = scrub(_first_line(str(exc)), self.secrets)
            field_name = (
                "target.system_sql_url" if system and self.spec.system_sql_url else "target.sql_url"
            )
            raise TargetError(
                f"cannot connect to {redact(url)}: {msg}; is the server running? "
                f"check {field_name} "
                f"in {self._where}"
            ) from None

    def run_setup(self, extra: Iterable[str] = ()) -> None:
        """Run ``target.setup_sql`` as the system user (autocommit), then ``extra`` as the user."""
        import psycopg

        for system, statements, label in (
            (True, self.spec.setup_sql, "target.setup_sql"),
            (False, tuple(extra), "benchmark setup_sql"),
        ):
            if not statements:
                continue
            with self.connect(system=system) as conn:
                for i, sql in enumerate(statements):
                    try:
                        conn.execute(sql)
                    except psycopg.Error as exc:
                        msg = scrub(_first_line(str(exc)), self.secrets)
                        url = self.system_sql_url if system else self.sql_url
                        raise TargetError(
                            f"{self._where}: {label}[{i}]: `{_short(sql)}` failed on "
                            f"{redact(url)}: {msg}"
                        ) from None

    def preflight(self) -> list[PreflightResult]:
        """Run every preflight check; raise on the first failure with its name, value and fix."""
        results: list[PreflightResult] = []
        for i, check in enumerate(self.spec.preflight):
            value = self._preflight_value(i, check)
            ok = check_expectation(check.expect, value)
            results.append(PreflightResult(check.name, check.expect, value, ok))
            if not ok:
                fix = (
                    check.fix
                    or f"fix the target's state, or edit target.preflight[{i}] in {self._where}"
                )
                raise TargetError(
                    f"preflight {check.name!r} failed: expected {check.expect}, "
                    f"got {value!r}; {fix}"
                )
        return results

    def _preflight_value(self, i: int, check: Preflight) -> Any:
        import psycopg

        with self.connect(system=check.system) as conn:
            try:
                row = conn.execute(check.sql).fetchone()
            except psycopg.Error as exc:
                msg = scrub(_first_line(str(exc)), self.secrets)
                raise TargetError(
                    f"preflight {check.name!r}: `{_short(check.sql)}` failed: {msg}; "
                    f"fix target.preflight[{i}].sql in {self._where}"
                ) from None
        return None if row is None else row[0]

    # --- context manager --------------------------------------------------------------------

    def _enter_long_lived(self) -> None:
        """Reuse the server that answers, or wait for the one we started earlier, or start it
        and remember it (see :mod:`sessionctl.target.long_lived`)."""
        from sessionctl.measurement import now_iso
        from sessionctl.target import long_lived

        # Two commands at once must not both start one: check and spawn under a lock (the
        # wait for readiness is outside it, so a slow boot does not time the lock out).
        with self.ws.lock(f"target-{self.campaign.name}"):
            st = long_lived.live_state(self.ws, self.campaign.name)
            if st is not None:
                self.adopted = st.pid
                self.log_path = Path(st.log) if st.log else None
            if self._probe()[0]:
                self.ready = True
                who = f"pid {st.pid}" if st is not None else "started outside sessionctl"
                self.reporter.info(
                    f"target is up (long-lived, {who}); reusing it, never stopping it"
                )
                return
            if st is None:
                self.start()
                assert self.proc is not None
                log = str(self.log_path) if self.log_path else None
                state = long_lived.State(self.proc.pid, self._argv(), log, now_iso())
                long_lived.write_state(self.ws, self.campaign.name, state)
            else:
                self.reporter.info(f"long-lived target (pid {st.pid}) is not ready yet; waiting")
        self.wait_ready()

    def __enter__(self) -> TargetHandle:
        if not self.ready and self.long_lived:
            self._enter_long_lived()
        if not self.ready:
            self.start()
            try:
                self.wait_ready()
            except BaseException:
                self.stop()
                raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def open_target(
    ws: Workspace,
    campaign: Campaign,
    *,
    start: bool = True,
    reporter: Reporter = NULL,
    artifacts_dir: Path | None = None,
) -> TargetHandle:
    """Start (when configured and ``start``) and wait for the campaign's target; return it ready.

    Use it as a context manager (``with open_target(...) as t:``) so a started server is stopped.
    """
    handle = TargetHandle(ws, campaign, start=start, reporter=reporter, artifacts_dir=artifacts_dir)
    return handle.__enter__()


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), text.strip())


def _short(sql: str, width: int = 80) -> str:
    one = " ".join(sql.split())
    return one if len(one) <= width else one[: width - 1] + "…"
