"""Slack listeners, registered in one place."""

from __future__ import annotations

from slack_bolt import App

from bot.runtime import Tars
from handlers import card_buttons, modal_submissions, slash_commands, triage_buttons
from handlers.id_checks import refuse_unstorable_ids
from handlers.listener_errors import handle_error


def register_all(app: App, tars: Tars) -> None:
    app.error(handle_error)
    app.use(refuse_unstorable_ids)
    slash_commands.register(app, tars)
    card_buttons.register(app, tars)
    modal_submissions.register(app, tars)
    triage_buttons.register(app, tars)
