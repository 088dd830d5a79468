"""The human-in-the-loop pages: server-rendered Jinja2 templates (top-level templates/) with htmx (static/).

A thin HTML layer over app/services.py, as the REST API is: forms are parsed into the API's pydantic models
(forms.py), who may see what comes in as dependencies (app/api/access.py), and an ApiError becomes an error
page in app/main.py's one handler. Routes by resource: styles.py, rounds.py (rounds and their candidates),
playground.py, accounts.py (log in, sign up, API tokens), static.py; view models in views.py, templates and
filters in rendering.py.
"""

from . import accounts, playground, rounds, static, styles

routers = [static.router, accounts.router, styles.router, rounds.router, playground.router]  # app/main.py includes each

__all__ = ["routers"]
