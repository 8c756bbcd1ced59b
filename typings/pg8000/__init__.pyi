# The part of pg8000 (1.31, untyped) that pgha uses, typed for pyright: without it, every `conn.run(...)[0]`
# is reported because the inferred result includes the None pg8000 starts with.
