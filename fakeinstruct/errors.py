"""One exception family for the package, each carrying where the problem is (file, line, field)."""

from __future__ import annotations


class FakeInstructError(Exception):
    """Base error. ``str(err)`` is the one-line ``file:line: field: message`` the CLI prints."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.field = field

    def __reduce__(self):
        # keep file, line and field when an error crosses a process boundary
        return _rebuild, (type(self), self.message, self.file, self.line, self.field)

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = str(self.file)
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        if self.field:
            where += f"{self.field}: "
        return where + self.message


def _rebuild(cls, message, file, line, field):
    return cls(message, file=file, line=line, field=field)


class FakeChainError(FakeInstructError):
    """A FakeChain record, its image or the chains file is invalid."""


class TemplateError(FakeInstructError):
    """An instruction template file is invalid or fails to render."""


class TaxonomyError(FakeInstructError):
    """The forgery-attribute taxonomy (built-in or an extension) is invalid."""
