"""The application schema: ordered SQL migrations, their runner (CLI and Lambda) and maintenance."""
