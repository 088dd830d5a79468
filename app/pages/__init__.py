"""The human-in-the-loop pages: server-rendered Jinja2 templates (top-level templates/) with htmx (static/).

The routes call the same services and API functions as the REST API, so a rule lives in one place.
"""

from .routes import router

__all__ = ["router"]
