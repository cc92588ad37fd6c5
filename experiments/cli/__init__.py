"""What the entry points share: the --config/--workdir/--distributed flags, start-up and the error guard."""
