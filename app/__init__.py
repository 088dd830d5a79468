"""StyleDrop Studio web app: REST API, database models, file storage. Never imports torch.

The engine (`styledrop/`) runs only in the Celery worker (`worker/`); the app enqueues jobs and reads
their results from the database.
"""
