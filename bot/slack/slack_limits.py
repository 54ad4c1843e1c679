"""Slack's published limits, and the one place every outgoing message and view is fitted to them.

Everything `bot/slack/rendering.py` returns passes through `fit_text`, `fit_blocks` or `fit_view`. Long content degrades instead of being refused, so an incident is always
announced: text is cut with an ellipsis (never inside an `&amp;` entity or a `<…>` mention or link), and extra
section fields, context elements and blocks are dropped with a note saying how many. Where slack_sdk's Block
Kit models define a limit, the number is taken from them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    Option,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

log = logging.getLogger(__name__)

Block = dict[str, Any]

MESSAGE_TEXT = 40_000  # chat.postMessage / chat.update / response_url: Slack truncates longer text
MESSAGE_BLOCKS = 50
SECTION_TEXT = SectionBlock.text_max_length  # 3,000
SECTION_FIELDS = SectionBlock.fields_max_length  # 10
FIELD_TEXT = 2_000  # each section field
TEXT_OBJECT = 3_000  # any other text object, e.g. a context element
HEADER_TEXT = HeaderBlock.text_max_length  # 150
CONTEXT_ELEMENTS = ContextBlock.elements_max_length  # 10
ACTIONS_ELEMENTS = ActionsBlock.elements_max_length  # 25
BUTTON_TEXT = ButtonElement.text_max_length  # 75
BUTTON_VALUE = ButtonElement.value_max_length  # 2,000
OPTION_TEXT = Option.label_max_length  # 75
OPTION_VALUE = Option.value_max_length  # 150
SELECT_OPTIONS = StaticSelectElement.options_max_length  # 100
PLACEHOLDER = 150
CONFIRM_TITLE = ConfirmObject.title_max_length  # 100
CONFIRM_TEXT = ConfirmObject.text_max_length  # 300
CONFIRM_BUTTON = ConfirmObject.confirm_max_length  # 30
INPUT_LABEL = InputBlock.label_max_length  # 2,000
INPUT_HINT = InputBlock.hint_max_length  # 2,000
TEXT_INPUT = 3_000  # plain_text_input max_length and initial_value
VIEW_TITLE = View.title_max_length  # 24, also submit and close
VIEW_BLOCKS = View.blocks_max_length  # 100
PRIVATE_METADATA = View.private_metadata_max_length  # 3,000
ID_LENGTH = 255  # block_id, action_id

ELLIPSIS = "…"

# A cut must not leave half an entity (`&am`) or half a mention or link (`<@U12`): Slack would show the debris.
_OPEN_ENTITY = re.compile(r"&[#a-zA-Z0-9]{0,8}$")


def fit_text(text: str, limit: int = MESSAGE_TEXT) -> str:
    """`text` if it fits in `limit` characters, else its head and an ellipsis."""
    if len(text) <= limit:
        return text
    head = text[: max(0, limit - len(ELLIPSIS))]
    entity = _OPEN_ENTITY.search(head)
    if entity:
        head = head[: entity.start()]
    opened, closed = head.rfind("<"), head.rfind(">")
    if opened > closed:
        head = head[:opened]
    return head.rstrip() + ELLIPSIS


def fit_blocks(
    blocks: Sequence[Block], *, limit: int = MESSAGE_BLOCKS, in_place: bool = False
) -> list[Block]:
    """Message (or view) blocks within Slack's limits. The originals are left untouched unless `in_place`: a
    renderer's own fresh output needs no copy, and copying cost every scheduled update a fifth of its time."""
    fitted = [_fit_block(block if in_place else _copied(block)) for block in blocks]
    if len(fitted) > limit:
        dropped = len(fitted) - (limit - 1)
        fitted = [*fitted[: limit - 1], _note(f"{ELLIPSIS}{dropped} more not shown")]
    return fitted


def _copied(value: Any) -> Any:
    """A copy of JSON-shaped data. copy.deepcopy keeps a memo for cycles JSON cannot have, and cost a scheduler
    tick a fifth of its time."""
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copied(item) for item in value]
    return value


def fit_view(view: Block, *, in_place: bool = False) -> Block:
    """A modal within Slack's limits: title and buttons, block count, and every block."""
    fitted = {key: value for key, value in view.items() if key != "blocks"}
    for key in ("title", "submit", "close"):
        if isinstance(fitted.get(key), dict):
            fitted[key] = _fit_text_object(fitted[key], VIEW_TITLE)
    metadata = fitted.get("private_metadata")
    if isinstance(metadata, str) and len(metadata) > PRIVATE_METADATA:
        # TARS's own JSON; cutting it would break the submission, so this is a bug to fix, not to hide.
        raise ValueError(f"private_metadata is {len(metadata)} characters; Slack allows {PRIVATE_METADATA}")
    fitted["blocks"] = fit_blocks(view.get("blocks") or [], limit=VIEW_BLOCKS, in_place=in_place)
    return fitted


# --- fitting, one block type at a time ---------------------------------------------------------------------


def _note(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _fit_text_object(obj: Any, limit: int) -> Any:
    if isinstance(obj, dict) and isinstance(obj.get("text"), str):
        obj["text"] = fit_text(obj["text"], limit)
    return obj


def _fit_block(block: Block) -> Block:
    kind = block.get("type")
    if kind == "section":
        if "text" in block:
            _fit_text_object(block["text"], SECTION_TEXT)
        if isinstance(block.get("fields"), list):
            fields = block["fields"]
            if len(fields) > SECTION_FIELDS:
                more = len(fields) - SECTION_FIELDS + 1
                fields = [*fields[: SECTION_FIELDS - 1], {"type": "mrkdwn", "text": f"{ELLIPSIS}{more} more"}]
            block["fields"] = [_fit_text_object(field, FIELD_TEXT) for field in fields]
        if isinstance(block.get("accessory"), dict):
            block["accessory"] = _fit_element(block["accessory"])
    elif kind == "header":
        _fit_text_object(block.get("text"), HEADER_TEXT)
    elif kind == "context":
        elements = list(block.get("elements") or [])
        if len(elements) > CONTEXT_ELEMENTS:
            more = len(elements) - CONTEXT_ELEMENTS + 1
            elements = [
                *elements[: CONTEXT_ELEMENTS - 1],
                {"type": "mrkdwn", "text": f"{ELLIPSIS}{more} more"},
            ]
        block["elements"] = [_fit_text_object(element, TEXT_OBJECT) for element in elements]
    elif kind == "actions":
        elements = [_fit_element(element) for element in block.get("elements") or []]
        block["elements"] = [element for element in elements if element is not None][:ACTIONS_ELEMENTS]
    elif kind == "input":
        _fit_text_object(block.get("label"), INPUT_LABEL)
        _fit_text_object(block.get("hint"), INPUT_HINT)
        if isinstance(block.get("element"), dict):
            block["element"] = _fit_element(block["element"]) or block["element"]
    return block


def _fit_element(element: Block) -> Block | None:
    kind = element.get("type")
    _fit_text_object(element.get("placeholder"), PLACEHOLDER)
    if isinstance(element.get("confirm"), dict):
        confirm = element["confirm"]
        _fit_text_object(confirm.get("title"), CONFIRM_TITLE)
        _fit_text_object(confirm.get("text"), CONFIRM_TEXT)
        _fit_text_object(confirm.get("confirm"), CONFIRM_BUTTON)
        _fit_text_object(confirm.get("deny"), CONFIRM_BUTTON)
    if kind == "button":
        _fit_text_object(element.get("text"), BUTTON_TEXT)
        if len(str(element.get("value", ""))) > BUTTON_VALUE:
            # A value is TARS's own handle on the click; a cut one would act on the wrong thing.
            log.error(
                "dropped button %s: its value is over %d characters", element.get("action_id"), BUTTON_VALUE
            )
            return None
    if kind == "plain_text_input" and isinstance(element.get("initial_value"), str):
        limit = min(int(element.get("max_length") or TEXT_INPUT), TEXT_INPUT)
        element["initial_value"] = element["initial_value"][:limit]
    if isinstance(element.get("options"), list):
        options = [
            _fit_text_object(option, OPTION_TEXT)
            for option in element["options"][:SELECT_OPTIONS]
            if len(str(option.get("value", ""))) <= OPTION_VALUE
        ]
        element["options"] = options
        initial = element.get("initial_option")
        if isinstance(initial, dict):
            _fit_text_object(initial.get("text"), OPTION_TEXT)
            if initial not in options:
                del element["initial_option"]
    return element
