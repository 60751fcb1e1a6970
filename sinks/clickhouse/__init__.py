"""ClickHouse through clickhouse-connect: a server over HTTP or embedded chDB."""
