"""Errors a user can cause and fix. The CLI prints them as one clear line, never a stack trace."""


class UserError(Exception):
    """Bad input or environment: the message says what is wrong and how to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}\nhint: {self.hint}" if self.hint else base
