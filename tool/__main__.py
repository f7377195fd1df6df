"""`python -m tool …`: the command line (see tool/cli.py)."""

from tool.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
