"""Exceptions users may catch.

Every error the package raises on purpose derives from :class:`LandquotaError`,
and also from the builtin it specialises, so ``except ValueError`` keeps working.
Messages name the file, row, layer or parameter at fault and say how to fix it.
"""

from __future__ import annotations

__all__ = [
    "AllocationError",
    "BackupVerificationError",
    "CRSError",
    "ConcurrencyError",
    "DataError",
    "ImportDataError",
    "LandquotaError",
    "LayerError",
    "LedgerError",
    "ParameterError",
    "PlanAdjustmentError",
    "SchemaVersionError",
    "ValidationBlockedError",
    "WorkspaceError",
]


class LandquotaError(Exception):
    """Base class of every landquota error."""


class ParameterError(LandquotaError, ValueError):
    """A parameter has a value outside what is allowed."""


class WorkspaceError(LandquotaError, RuntimeError):
    """A workspace cannot be opened, created or written."""


class SchemaVersionError(WorkspaceError):
    """The workspace was made by another schema version and needs upgrading."""


class LayerError(LandquotaError, KeyError):
    """An unknown layer or column was named."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class DataError(LandquotaError, ValueError):
    """Data in the workspace or a file break the contract (a code, a key, a type)."""


class CRSError(DataError):
    """A coordinate reference system is missing, wrong or unsupported."""


class ImportDataError(DataError):
    """A source file cannot be imported as it is."""


class LedgerError(LandquotaError, RuntimeError):
    """A ledger operation would break an invariant (R6: no negative balance)."""


class BackupVerificationError(WorkspaceError):
    """A backup whose manifest or ledger chain does not verify (restore refuses it)."""


class ConcurrencyError(LedgerError):
    """Another process changed the workspace first; nothing was written."""


class AllocationError(LandquotaError, RuntimeError):
    """An allocation run cannot be made, committed or reverted."""


class ValidationBlockedError(AllocationError):
    """Blocking validation errors exist; fix them or pass ``force=True``."""


class PlanAdjustmentError(AllocationError):
    """A plan adjustment breaks R16 (or R15); the message lists each failed check and its area."""
