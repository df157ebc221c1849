"""How /health words a database failure: what failed, never where the database is or who connects.

A connection error's text names the host, port and role (and sometimes the passfile); /health answers
anyone who can reach the service, so it says only which kind of failure it was. The full error goes to
the service's own log. Whether a problem is transient matters to the deploy: a database that does not
answer yet may answer in a moment, a query the release gets wrong fails the same way every time.
"""

from __future__ import annotations

import logging

import psycopg2

log = logging.getLogger("orderservice.health")


def database_problem(exc: psycopg2.Error) -> tuple[str, bool]:
    """(the problem in words, whether it is transient) for a failed database check."""
    log.warning("health: database check failed: %s", str(exc).strip())
    kind = type(exc).__name__
    if exc.pgcode is None or isinstance(exc, psycopg2.OperationalError):
        # No SQLSTATE: the server never answered the statement (connection refused, timed out, dropped).
        return f"database check failed: {kind}: the database did not answer (see the service log)", True
    primary = exc.diag.message_primary or ""
    return f"database check failed: {kind} (SQLSTATE {exc.pgcode}): {primary}".rstrip(": "), False
