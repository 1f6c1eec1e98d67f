"""The command-line tools: `python -m fastmmd.cli.kid` (KID of two feature files), `python -m fastmmd.cli.info`
(the backends usable here), `python -m fastmmd.cli.demo` (a short tour)."""
