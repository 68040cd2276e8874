"""The configured system prompt fills in only when a request has none."""

from __future__ import annotations

from services.chat.protocol import ChatMessage
from services.chat.serving import ChatLimits, ChatServing


def _serving(system: str | None) -> ChatServing:
    limits = ChatLimits(default_system_prompt=system)
    return ChatServing(backend=None, metrics=None, limits=limits)  # type: ignore[arg-type]


def test_default_system_prompt_is_prepended_when_missing():
    user = [ChatMessage(role="user", content="A quick lunch?")]

    turns = _serving("You cook.")._with_system_prompt(user)

    assert [(m.role, m.text()) for m in turns] == [
        ("system", "You cook."),
        ("user", "A quick lunch?"),
    ]


def test_clients_own_system_prompt_wins():
    own = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="A quick lunch?"),
    ]

    assert _serving("You cook.")._with_system_prompt(own) == own


def test_no_default_leaves_messages_alone():
    user = [ChatMessage(role="user", content="A quick lunch?")]

    assert _serving(None)._with_system_prompt(user) == user
