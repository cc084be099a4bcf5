"""The `ksef-pipeline` command: `main.py` dispatches, each subcommand is a module here."""
