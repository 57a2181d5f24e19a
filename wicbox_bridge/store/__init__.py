"""Database access behind one small store interface (SQLite embedded, ODBC for SQL Server/PostgreSQL)."""
