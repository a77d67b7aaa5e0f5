"""The event's path, one module per stage: source -> codec -> router -> handlers -> sink -> checkpoint."""
