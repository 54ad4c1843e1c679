"""Slack listeners, registered in one place."""

from __future__ import annotations

from slack_bolt import App

from bot.runtime import Tars
from handlers import actions, commands, views
from handlers.errors import handle_error


def register_all(app: App, tars: Tars) -> None:
    app.error(handle_error)
    commands.register(app, tars)
    actions.register(app, tars)
    views.register(app, tars)
