"""Generic writers of rows and messages: ClickHouse (server or chDB), JSONL, console."""
