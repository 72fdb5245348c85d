"""The model every package shares: request context, ids, table definitions, types and errors.

A leaf: nothing in here imports another package of kalam_engine, so any package may import it
without a cycle."""
