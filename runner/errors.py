"""The one error type users see: it prints as a single line, never a traceback."""


class UserError(Exception):
    """Something the user can fix: a config mistake, a missing tool, an unreachable engine."""

    exit_code = 2
