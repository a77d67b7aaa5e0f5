"""Development tools, never needed at run time: the demo, the embedded broker, the schema generator."""
