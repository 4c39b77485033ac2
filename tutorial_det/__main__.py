"""``python -m tutorial_det``: the command line of :mod:`tutorial_det.cli`."""

from tutorial_det.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
