"""Slack's published size limits for message and view payloads, so the emulator refuses what Slack refuses.

Figures come from the Block Kit reference (docs.slack.dev/reference/block-kit) and the chat.postMessage /
views.* method pages. Problems are worded the way Slack words ``response_metadata.messages``, e.g.
``[ERROR] must be less than 3001 characters [json-pointer:/blocks/0/text/text]``. Block and element types
the module does not know are accepted unchecked: the aim is to refuse oversize payloads as Slack does, not to
be a full Block Kit schema validator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Surface = Literal["message", "view"]

MESSAGE_TEXT_MAX = 40_000
MESSAGE_BLOCKS_MAX = 50
VIEW_BLOCKS_MAX = 100
VIEW_TITLE_MAX = 24  # title, submit and close alike
PRIVATE_METADATA_MAX = 3_000
ID_MAX = 255  # block_id, action_id, callback_id, external_id

SECTION_TEXT_MAX = 3_000
SECTION_FIELDS_MAX = 10
SECTION_FIELD_TEXT_MAX = 2_000
HEADER_TEXT_MAX = 150
CONTEXT_ELEMENTS_MAX = 10
ACTIONS_ELEMENTS_MAX = 25
INPUT_LABEL_MAX = 2_000
INPUT_HINT_MAX = 2_000
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2_000
BUTTON_URL_MAX = 3_000
PLACEHOLDER_MAX = 150
OPTION_TEXT_MAX = 75
OPTION_VALUE_MAX = 150
PLAIN_TEXT_INPUT_MAX_LENGTH = 3_000

# Most options an element may carry, by element type.
OPTIONS_MAX: dict[str, int] = {
    "static_select": 100,
    "multi_static_select": 100,
    "overflow": 5,
    "radio_buttons": 10,
    "checkboxes": 10,
}


@dataclass(frozen=True)
class LimitProblem:
    """One broken limit: the error code Slack answers with and the sentence it puts in its messages."""

    error: str
    message: str


def find_limit_problems(payload: Mapping[str, Any], surface: Surface) -> list[LimitProblem]:
    """Every Slack size limit ``payload`` breaks; empty when Slack would take it.

    For ``"message"`` the payload is the call's arguments (text, blocks); oversize text reports
    ``msg_too_long`` and block problems ``invalid_blocks``. For ``"view"`` it is the view object, and every
    problem reports ``invalid_arguments``, as views.open / update / push / publish do.
    """
    if surface == "message":
        return _message_problems(payload)
    return _view_problems(payload)


def _message_problems(payload: Mapping[str, Any]) -> list[LimitProblem]:
    problems: list[LimitProblem] = []
    text = payload.get("text")
    if isinstance(text, str) and len(text) > MESSAGE_TEXT_MAX:
        problems.append(
            LimitProblem("msg_too_long", f"text must be less than {MESSAGE_TEXT_MAX + 1} characters")
        )
    check = _Checker("invalid_blocks")
    blocks = payload.get("blocks")
    check.items_at_most(blocks, MESSAGE_BLOCKS_MAX, "/blocks")
    if isinstance(blocks, list):
        for index, block in enumerate(blocks):
            check.block(block, f"/blocks/{index}")
    return problems + check.problems


def _view_problems(view: Mapping[str, Any]) -> list[LimitProblem]:
    check = _Checker("invalid_arguments")
    for key in ("title", "submit", "close"):
        check.text_object(view.get(key), VIEW_TITLE_MAX, f"/view/{key}")
    check.text_at_most(view.get("private_metadata"), PRIVATE_METADATA_MAX, "/view/private_metadata")
    check.text_at_most(view.get("callback_id"), ID_MAX, "/view/callback_id")
    check.text_at_most(view.get("external_id"), ID_MAX, "/view/external_id")
    blocks = view.get("blocks")
    check.items_at_most(blocks, VIEW_BLOCKS_MAX, "/view/blocks")
    if isinstance(blocks, list):
        for index, block in enumerate(blocks):
            check.block(block, f"/view/blocks/{index}")
    return check.problems


class _Checker:
    """Collects problems for one payload; each check ignores values of a shape it does not expect."""

    def __init__(self, error: str) -> None:
        self.error = error
        self.problems: list[LimitProblem] = []

    def _add(self, text: str, pointer: str) -> None:
        self.problems.append(LimitProblem(self.error, f"[ERROR] {text} [json-pointer:{pointer}]"))

    def text_at_most(self, value: Any, limit: int, pointer: str) -> None:
        if isinstance(value, str) and len(value) > limit:
            self._add(f"must be less than {limit + 1} characters", pointer)

    def items_at_most(self, value: Any, limit: int, pointer: str) -> None:
        if isinstance(value, list) and len(value) > limit:
            self._add(f"no more than {limit} items allowed", pointer)

    def text_object(self, value: Any, limit: int, pointer: str) -> None:
        if isinstance(value, dict):
            self.text_at_most(value.get("text"), limit, f"{pointer}/text")

    def block(self, block: Any, pointer: str) -> None:
        if not isinstance(block, dict):
            return
        self.text_at_most(block.get("block_id"), ID_MAX, f"{pointer}/block_id")
        kind = block.get("type")
        if kind == "section":
            self.text_object(block.get("text"), SECTION_TEXT_MAX, f"{pointer}/text")
            fields = block.get("fields")
            self.items_at_most(fields, SECTION_FIELDS_MAX, f"{pointer}/fields")
            if isinstance(fields, list):
                for index, item in enumerate(fields):
                    self.text_object(item, SECTION_FIELD_TEXT_MAX, f"{pointer}/fields/{index}")
            self.element(block.get("accessory"), f"{pointer}/accessory")
        elif kind == "header":
            self.text_object(block.get("text"), HEADER_TEXT_MAX, f"{pointer}/text")
        elif kind == "context":
            self.items_at_most(block.get("elements"), CONTEXT_ELEMENTS_MAX, f"{pointer}/elements")
        elif kind == "actions":
            elements = block.get("elements")
            self.items_at_most(elements, ACTIONS_ELEMENTS_MAX, f"{pointer}/elements")
            if isinstance(elements, list):
                for index, element in enumerate(elements):
                    self.element(element, f"{pointer}/elements/{index}")
        elif kind == "input":
            self.text_object(block.get("label"), INPUT_LABEL_MAX, f"{pointer}/label")
            self.text_object(block.get("hint"), INPUT_HINT_MAX, f"{pointer}/hint")
            self.element(block.get("element"), f"{pointer}/element")

    def element(self, element: Any, pointer: str) -> None:
        if not isinstance(element, dict):
            return
        self.text_at_most(element.get("action_id"), ID_MAX, f"{pointer}/action_id")
        self.text_object(element.get("placeholder"), PLACEHOLDER_MAX, f"{pointer}/placeholder")
        kind = element.get("type")
        if kind == "button":
            self.text_object(element.get("text"), BUTTON_TEXT_MAX, f"{pointer}/text")
            self.text_at_most(element.get("value"), BUTTON_VALUE_MAX, f"{pointer}/value")
            self.text_at_most(element.get("url"), BUTTON_URL_MAX, f"{pointer}/url")
        elif kind == "plain_text_input":
            max_length = element.get("max_length")
            if isinstance(max_length, int) and max_length > PLAIN_TEXT_INPUT_MAX_LENGTH:
                self._add(f"must be less than {PLAIN_TEXT_INPUT_MAX_LENGTH + 1}", f"{pointer}/max_length")
        if isinstance(kind, str) and kind in OPTIONS_MAX:
            options = element.get("options")
            self.items_at_most(options, OPTIONS_MAX[kind], f"{pointer}/options")
            self.options(options, f"{pointer}/options")
            groups = element.get("option_groups")
            if isinstance(groups, list):
                for index, group in enumerate(groups):
                    if isinstance(group, dict):
                        group_pointer = f"{pointer}/option_groups/{index}/options"
                        self.items_at_most(group.get("options"), OPTIONS_MAX[kind], group_pointer)
                        self.options(group.get("options"), group_pointer)

    def options(self, options: Any, pointer: str) -> None:
        if not isinstance(options, list):
            return
        for index, option in enumerate(options):
            if isinstance(option, dict):
                self.text_object(option.get("text"), OPTION_TEXT_MAX, f"{pointer}/{index}/text")
                self.text_at_most(option.get("value"), OPTION_VALUE_MAX, f"{pointer}/{index}/value")
