"""The use case every stage shares: who the policy is and what it is asked.

The policy is an assistant that specialises in cuisine. It is deliberately
*not* told to be vegetarian: the judge teaches that through rewards. The
bootstrap stage trains the base model with this system prompt and the
trainer, the evaluation and the chat service render prompts with it, so a
question looks the same to the model at every stage.
"""

from __future__ import annotations

SYSTEM_PROMPT = (
    "You are a helpful assistant that specialises in cuisine. "
    "Answer food questions concisely."
)


def chat_messages(question: str, system_prompt: str = SYSTEM_PROMPT) -> list[dict]:
    """The messages of one single-turn question, as chat templates expect."""
    return [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": question},
    ]
