"""A scripted, deterministic google-adk model and a counter agent for the Runner tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Callable
from typing import Any

from google.adk.agents import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.adk.tools.tool_context import ToolContext
from google.genai import types

APP = "counter_app"


class ScriptedLlm(BaseLlm):
    """A deterministic model: ``bump N`` calls the ``bump`` tool, a tool result gets a reply.

    ``gate`` (optional) is awaited before answering a user message, so a test can hold two
    turns inside the model at the same time.
    """

    gate: Any = None

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        """Answer from the last content of the request."""
        part = llm_request.contents[-1].parts[0]  # type: ignore[index]
        if part.function_response is not None:
            count = (part.function_response.response or {}).get("count")
            text = f"the count is {count}"
            yield LlmResponse(content=types.Content(role="model", parts=[types.Part(text=text)]))
            return
        if self.gate is not None:
            await self.gate()
        amount = int((part.text or "0").split()[-1])
        call = types.FunctionCall(name="bump", args={"amount": amount}, id=f"call-{uuid.uuid4()}")
        content = types.Content(role="model", parts=[types.Part(function_call=call)])
        yield LlmResponse(content=content)


def bump(amount: int, tool_context: ToolContext) -> dict[str, Any]:
    """Add ``amount`` to the counters in every state scope.

    Args:
        amount: How much to add.
        tool_context: Supplied by ADK.

    Returns:
        The session's new count.
    """
    state = tool_context.state
    state["app:total"] = state.get("app:total", 0) + amount
    state["user:calls"] = state.get("user:calls", 0) + 1
    state["count"] = state.get("count", 0) + amount
    state["temp:last_amount"] = amount
    state["history"] = [*state.get("history", []), amount]
    return {"count": state["count"], "seen_temp": state.get("temp:last_amount")}


def make_agent(gate: Callable[[], Any] | None = None) -> LlmAgent:
    """Build the counter agent on the scripted model."""
    return LlmAgent(
        name="counter",
        model=ScriptedLlm(model="scripted", gate=gate),
        tools=[bump],
        instruction="Count with the bump tool.",
    )


async def run_turn(runner: Runner, user_id: str, session_id: str, text: str) -> list[Any]:
    """Run one user turn and return the events the Runner yielded."""
    message = types.Content(role="user", parts=[types.Part(text=text)])
    return [
        event
        async for event in runner.run_async(
            user_id=user_id, session_id=session_id, new_message=message
        )
    ]
