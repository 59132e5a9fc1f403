"""One module per CLI verb: what the verb does, apart from parsing its arguments (cli.py)."""
