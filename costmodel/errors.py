"""The one error type users see: which field was wrong and what is allowed."""


class InputError(ValueError):
    """Bad user input. ``str(err)`` is one line: ``"<field>: <what is allowed>"``."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")
