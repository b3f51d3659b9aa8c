"""``python -m tests.app.fault_cli [--hang-on TEXT] [--crash-on TEXT] COMMAND ARGS...``: the ``verifier``
command line, with the instances whose label contains TEXT made to hang / crash their worker.

It hands a :class:`verifier.app.commands_batch.Hooks` to the Click group (``main(obj=...)``): the
production command line has no such option and reads no environment variable.
"""

from __future__ import annotations

import sys
from functools import partial

from tests.app.faults import inject
from verifier.app.commands_batch import Hooks
from verifier.cli import main


def run(argv: list[str]) -> None:
    hang_on = crash_on = None
    while argv and argv[0] in ("--hang-on", "--crash-on"):
        flag, value, argv = argv[0], argv[1], argv[2:]
        if flag == "--hang-on":
            hang_on = value
        else:
            crash_on = value
    main(args=argv, prog_name="verifier", obj=Hooks(prepare=partial(inject, hang_on=hang_on, crash_on=crash_on)))


if __name__ == "__main__":
    run(sys.argv[1:])
