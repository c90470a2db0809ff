"""The SQLite store on a real file: transactions, the outbox queue, pruning, admission cost."""
