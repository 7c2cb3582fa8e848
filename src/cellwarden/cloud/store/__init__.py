"""Storage behind one interface: SQLite embedded by default, PostgreSQL when configured."""
