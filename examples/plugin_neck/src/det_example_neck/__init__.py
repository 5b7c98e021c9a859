"""Example third-party detcore plugin: the SumNeck neck and a config using it."""
