"""Slack listeners, registered in one place."""

from __future__ import annotations

from slack_bolt import App

from bot.runtime import Tars
from handlers import actions, commands, views
from handlers.errors import handle_error
from handlers.ids import refuse_unstorable_ids


def register_all(app: App, tars: Tars) -> None:
    app.error(handle_error)
    app.use(refuse_unstorable_ids)
    commands.register(app, tars)
    actions.register(app, tars)
    views.register(app, tars)
