"""The human-in-the-loop pages: server-rendered Jinja2 templates (top-level templates/) with htmx (static/).

The routes call the same services and API functions as the REST API, so a rule lives in one place.
Account pages (log in, sign up, API tokens) are in accounts.py; the rating grid's routes in rating.py.
"""

from . import accounts, compare, docs, gallery, jobs, manage, rating, routes

routers = [routes.static_router, docs.router, accounts.router, rating.router, gallery.router, compare.router, manage.router, jobs.router, routes.router]  # app/main.py includes each

__all__ = ["routers"]
