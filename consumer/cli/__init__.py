"""`activity-consumer`: the command line (run, produce, codec, demo)."""
