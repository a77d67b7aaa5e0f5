"""The process around the pipeline: the worker loop, the entry point, and the supervisor."""
