"""The run directory: its layout, the writer, the reader, the lock."""
