"""Infrastructure: the database, file storage, the task queue, the embedded Redis and child processes."""
