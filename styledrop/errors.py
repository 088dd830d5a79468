"""The one exception type the engine raises for problems a user can fix.

The CLI and the web app print its message as a single line; anything else is a bug and keeps
its traceback.
"""


class StyleDropError(Exception):
    """A problem with the user's input or environment, explained in one sentence."""
