"""Storage: the SQL schema (SQLModel), engine setup and Alembic migrations."""
