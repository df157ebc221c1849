"""One exception root for the whole toolkit.

Every error carries a stable code (for scripts and journals), a one-line message that says what is wrong
and what to do, and the process exit code the CLI returns. Messages must never contain secrets: callers
pass names and paths, never key material or passwords.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The documented exit codes of the `recovery` CLI (README, "Exit codes")."""

    OK = 0
    FAILED = 1  # the operation ran and failed; nothing left half-done that the message does not name
    USAGE = 2  # bad input: unknown target, malformed file, bad option; nothing was changed
    REFUSED = 3  # a precondition or preflight check refused the operation; nothing was changed
    LOCKED = 4  # another run holds the target's lock; nothing was changed
    VERIFY_FAILED = 5  # data or service verification failed
    ROLLED_BACK = 6  # the upgrade failed and was rolled back cleanly
    ROLLBACK_FAILED = 7  # the rollback itself failed: page a human
    NEEDS_CONFIRMATION = 8  # a destructive step needs --yes in a non-interactive run
    ENVIRONMENT = 9  # the machine lacks something (binary, free port, permission)
    INTEGRITY = 10  # a backup is damaged, tampered with, or cannot be decrypted with the key given


class RecoveryError(Exception):
    """Root of every error the toolkit raises on purpose."""

    code = "recovery.error"
    exit_code = ExitCode.FAILED

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class UsageError(RecoveryError):
    code = "usage"
    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    code = "config.invalid"


class TargetNotFound(UsageError):
    code = "target.not_found"


class PreconditionFailed(RecoveryError):
    code = "precondition.failed"
    exit_code = ExitCode.REFUSED


class LockHeld(RecoveryError):
    code = "lock.held"
    exit_code = ExitCode.LOCKED


class VerificationFailed(RecoveryError):
    code = "verify.failed"
    exit_code = ExitCode.VERIFY_FAILED


class ConfirmationRequired(RecoveryError):
    code = "confirm.required"
    exit_code = ExitCode.NEEDS_CONFIRMATION


class EnvironmentProblem(RecoveryError):
    code = "environment"
    exit_code = ExitCode.ENVIRONMENT


class IntegrityError(RecoveryError):
    code = "backup.integrity"
    exit_code = ExitCode.INTEGRITY


class KeyUnavailable(IntegrityError):
    code = "backup.key_unavailable"


class ExternalFailure(RecoveryError):
    """A driver call (ansible, ssh, AWS, PostgreSQL) failed after its retries."""

    code = "external.failed"
    exit_code = ExitCode.FAILED


class RolledBack(RecoveryError):
    code = "upgrade.rolled_back"
    exit_code = ExitCode.ROLLED_BACK


class RollbackFailed(RecoveryError):
    code = "rollback.failed"
    exit_code = ExitCode.ROLLBACK_FAILED


def first_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's text (a driver's message can span lines), or its type."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
