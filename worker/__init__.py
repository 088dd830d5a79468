"""Celery worker of StyleDrop Studio: thin tasks that call the engine (imported lazily inside the tasks)
and write results through the app's models. `worker.celery_app` imports neither torch nor the engine."""
