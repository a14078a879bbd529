"""Postgres access: connection pool, migrations, and one module of SQL per table."""
