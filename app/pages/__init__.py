"""The human-in-the-loop pages: server-rendered Jinja2 templates (top-level templates/) with htmx (static/).

A thin HTML layer over the domain (app/domain/), as the REST API is: forms are parsed into the API's pydantic models
(forms.py), who may see what comes in as dependencies (app/api/access.py), and an ApiError becomes an error
page in app/main.py's one handler. Routes by resource: styles.py, rounds.py (rounds and their candidates),
playground.py, accounts.py (log in, sign up, API tokens), static.py, gallery.py (a style's live gallery card),
compare.py (rounds side by side in pictures), manage.py (rename, edit, delete a style), jobs.py (queued and
running jobs), docs.py (offline API docs), evaluations.py (the evaluation panel), worlds.py (a world base model's
build); view models in views.py and progress.py (a round's phases and
ETA), queue positions in queue.py, templates and filters in rendering.py.
"""

from . import accounts, compare, docs, evaluations, gallery, jobs, manage, playground, rounds, static, styles, worlds

routers = [static.router, docs.router, accounts.router, styles.router, rounds.router, playground.router,
           gallery.router, compare.router, manage.router, jobs.router, evaluations.router,
           worlds.router]  # app/main.py includes each

__all__ = ["routers"]
