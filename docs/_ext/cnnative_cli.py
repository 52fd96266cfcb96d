"""The ``cnnative-help`` directive: a command's ``--help`` text, taken from the parser itself.

``.. cnnative-help::`` gives ``cnnative --help``; ``.. cnnative-help:: train`` gives
``cnnative train --help``.  The text is produced at build time by ``cnnative.cli._parser()``
(``cnnative.bench.signal.parse_args`` for ``bench``, which parses its own options), so the
reference can't fall behind the code.
"""
import contextlib
import io
import os
import sys
from unittest import mock

from docutils import nodes
from docutils.parsers.rst import Directive

# argparse wraps at the terminal's width, which the build machine must not decide.
_COLUMNS = "96"


def help_text(command=None):
    """The text ``cnnative [command] --help`` prints."""
    from cnnative import cli

    output = io.StringIO()
    with mock.patch.dict(os.environ, {"COLUMNS": _COLUMNS}), \
            contextlib.redirect_stdout(output):
        if command is None:
            cli._parser().print_help()
        elif command == "bench":
            from cnnative.bench import signal as bench
            # The benchmark's parser names itself after the running program.
            with mock.patch.object(sys, "argv", ["cnnative bench"]), \
                    contextlib.suppress(SystemExit):
                bench.parse_args(["--help"])
        else:
            parser = cli._parser()
            with contextlib.suppress(SystemExit):
                parser.parse_args([command, "--help"])
    return output.getvalue().rstrip()


class CnnativeHelp(Directive):
    optional_arguments = 1
    has_content = False

    def run(self):
        command = self.arguments[0] if self.arguments else None
        try:
            text = help_text(command)
        except Exception as error:  # noqa: BLE001 - reported as a build error, with the cause
            raise self.error(f"cnnative-help {command or ''}: {type(error).__name__}: {error}")
        if not text:
            raise self.error(f"cnnative-help: no help text for {command!r}")
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


def setup(app):
    app.add_directive("cnnative-help", CnnativeHelp)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
