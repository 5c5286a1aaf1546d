"""What a database error is, as data: its SQLSTATE (or, before the server said anything,
the driver's or the network's exception) mapped to a kind that logs, metrics and answers
use. Never the error's message, which can quote the data a statement carried."""

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import asyncpg
import structlog
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.core import metrics

log = structlog.get_logger(__name__)


class DatabaseErrorKind(StrEnum):
    # An open connection broke: the server shut down or ended the session, the network
    # dropped it, or the driver lost track of it mid-operation.
    connection_lost = "connection_lost"
    # No connection could be made: refused, unreachable, starting up, too many clients.
    unavailable = "unavailable"
    # Every pooled connection stayed busy for HABEAS_POOL_TIMEOUT_SECONDS.
    pool_timeout = "pool_timeout"
    # The transaction was undone because of a concurrent one; running it again can succeed.
    serialization_failure = "serialization_failure"
    deadlock = "deadlock"
    # A lock could not be had in time (lock_timeout, NOWAIT).
    lock_timeout = "lock_timeout"
    # The statement was cancelled: statement_timeout, or an administrator's cancel.
    statement_timeout = "statement_timeout"
    # The server is out of disk, memory or another resource.
    insufficient_resources = "insufficient_resources"
    # Not a kind of exception but of moment: a connection lost during COMMIT.
    commit_outcome_unknown = "commit_outcome_unknown"


K = DatabaseErrorKind

# Exact SQLSTATEs first, then their two-character class.
SQLSTATE_KINDS: Mapping[str, DatabaseErrorKind] = {
    "40001": K.serialization_failure,
    "40P01": K.deadlock,
    "55P03": K.lock_timeout,
    "57014": K.statement_timeout,
    "57P01": K.connection_lost,  # admin_shutdown
    "57P02": K.connection_lost,  # crash_shutdown
    "57P03": K.unavailable,  # cannot_connect_now (starting up, in recovery)
    "57P05": K.connection_lost,  # idle_session_timeout
    "25P03": K.connection_lost,  # idle_in_transaction_session_timeout
    "53300": K.unavailable,  # too_many_connections
    "08001": K.unavailable,  # the client could not establish a connection
    "08004": K.unavailable,  # the server rejected the connection
    "08": K.connection_lost,
    "53": K.insufficient_resources,
}

# The driver's state after a connection broke in the middle of an operation.
_DRIVER_STATE_ERRORS = (asyncpg.InterfaceError, asyncpg.InternalClientError)
# The network's: refused or timed-out connections, a host name that does not resolve, a
# Unix socket whose server is not running ...
_UNREACHABLE = (ConnectionRefusedError, TimeoutError, socket.gaierror, FileNotFoundError)

# Errors raised before or without any SQLSTATE, in the order they are tried.
_EXCEPTION_KINDS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], K], ...] = (
    (PoolTimeout, K.pool_timeout),
    (DisconnectionError, K.connection_lost),
    (_DRIVER_STATE_ERRORS, K.connection_lost),
    (_UNREACHABLE, K.unavailable),
    # ... and connections reset or broken after they were made.
    (ConnectionError, K.connection_lost),
)

# What touching a broken connection may raise (besides SQLAlchemy's own errors).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    *_DRIVER_STATE_ERRORS,
    *_UNREACHABLE,
    ConnectionError,
)

# The kinds that mean the database could not be reached or dropped the connection (as
# opposed to refusing or undoing one statement): the connection is not to be reused.
UNAVAILABLE_KINDS = frozenset({K.connection_lost, K.unavailable, K.pool_timeout})
# Where the database's code lives: a bare network error (the driver raises them as they
# are when it cannot connect) counts only when raised in there. A missing key file's
# FileNotFoundError, or a TimeoutError of our own, is a bug to report, not an outage.
_DRIVER_PACKAGES = (f"{os.sep}asyncpg{os.sep}", f"{os.sep}sqlalchemy{os.sep}")


def classify(error: BaseException) -> DatabaseErrorKind | None:
    """The kind of database error `error` is, or was caused by; None for anything else
    (a bug, a constraint's refusal)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        kind = _kind_of(current)
        if kind is not None:
            return kind
        current = _cause(current)
    return None


def _cause(error: BaseException) -> BaseException | None:
    """What `error` wraps (SQLAlchemy's `orig`) or was raised from; the error being
    handled when it was raised only if it was not disowned (`raise ... from None`)."""
    wrapped = getattr(error, "orig", None)
    if isinstance(wrapped, BaseException):
        return wrapped
    if error.__cause__ is not None:
        return error.__cause__
    return None if error.__suppress_context__ else error.__context__


def _raised_by_the_driver(error: BaseException) -> bool:
    trace = error.__traceback__
    while trace is not None:
        if any(package in trace.tb_frame.f_code.co_filename for package in _DRIVER_PACKAGES):
            return True
        trace = trace.tb_next
    return False


def _kind_of(error: BaseException) -> DatabaseErrorKind | None:
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return K.connection_lost
    sqlstate = _sqlstate(error)
    if sqlstate is not None:
        kind = SQLSTATE_KINDS.get(sqlstate) or SQLSTATE_KINDS.get(sqlstate[:2])
        if kind is not None:
            return kind
    for types, kind in _EXCEPTION_KINDS:
        if isinstance(error, types):
            if type(error).__module__ == "builtins" and not _raised_by_the_driver(error):
                return None
            return kind
    return None


def _sqlstate(error: BaseException) -> str | None:
    sqlstate = getattr(error, "sqlstate", None)
    return sqlstate if isinstance(sqlstate, str) else None


@dataclass(frozen=True)
class Described:
    """What the logs say of a database error: its class and SQLSTATE, never its message."""

    error_class: str
    sqlstate: str | None


def describe(error: BaseException) -> Described:
    """The innermost error under SQLAlchemy's and the driver's wrapping (the driver's own
    class, e.g. DeadlockDetectedError), and the first SQLSTATE on the way to it."""
    chain = [error]
    seen = {id(error)}
    while (following := getattr(chain[-1], "orig", None) or chain[-1].__cause__) is not None:
        if id(following) in seen:
            break
        seen.add(id(following))
        chain.append(following)
    sqlstate = next((found for link in chain if (found := _sqlstate(link)) is not None), None)
    return Described(type(chain[-1]).__name__, sqlstate)


def report(error: BaseException, kind: DatabaseErrorKind, **context: object) -> None:
    """Log a database error as what it is (`database_deadlock`, …) and count it."""
    described = describe(error)
    log.warning(
        f"database_{kind.value}",
        error_class=described.error_class,
        sqlstate=described.sqlstate,
        **context,
    )
    metrics.database_error(kind.value)
