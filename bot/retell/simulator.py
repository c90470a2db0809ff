"""Retell simulated inside the server (RETELL_MODE=simulate): try the Slack side with no
Retell account, and no call placed.

The Retell stand-in of the tests (standins/retell.py) runs on 127.0.0.1 in the server's own
process and answers the app's Retell client (create-phone-call, get-call, stop-call, the
agent and number lists). Each call it creates then lives its life here: answered after a
few seconds, a short conversation, ended, analysed. Each step reaches the app as Retell's
would, a webhook signed with the webhook key and POSTed to the server's own
`/retell/webhook`, so the edge, the signature check, the inbox, cards, threads, stats and
buttons all run exactly as in production. A hang-up (stop-call) ends the call too.

The last digit of the number called steers the outcome (OUTCOMES): 0 is not answered, 1
reaches voicemail, 2 is busy, anything else is a conversation the agent wraps up. What the
agent says echoes the call's dynamic variables (customer_name, appointment, product, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from standins.retell import RetellStandIn, transcript_object

log = logging.getLogger(__name__)

# A webhook our own server did not take is sent again after these waits, as Retell retries
# (up to 3 times); one failing never holds back the next.
RETRY_DELAYS = (0.5, 1.0, 2.0)
# Cut for each dynamic variable echoed by the agent: values come from people.
VARIABLE_ECHO_LIMIT = 100
# Another of the simulated account's numbers, for the caller-ID choice (555-01xx: fiction).
SECOND_NUMBER = "+14155550199"

# The simulated account's agents (ids shaped like Retell's).
APPOINTMENTS = "Appointment Reminder"
SALES = "Sales Follow-up"
SURVEY = "Customer Survey"
AGENTS: tuple[tuple[str, str], ...] = (
    ("agent_5a1d0c8e7b6f4e3d2c1b0a91", APPOINTMENTS),
    ("agent_5a1d0c8e7b6f4e3d2c1b0a92", SALES),
    ("agent_5a1d0c8e7b6f4e3d2c1b0a93", SURVEY),
)
OWN_AGENT_NAME = "Your Agent"  # RETELL_AGENT_ID, when it is none of the above


@dataclass(frozen=True)
class Timings:
    """Seconds each stage of a simulated call takes (the defaults look like a real call,
    shortened; the demo and the tests pass shorter ones)."""

    ring: float = 3.0  # placed -> answered, or busy
    no_answer: float = 8.0  # placed -> given up ringing
    talk: float = 10.0  # answered -> ended (a voicemail message takes half)
    analysis: float = 2.0  # ended -> analysed


@dataclass(frozen=True)
class Outcome:
    name: str  # conversation | voicemail | no_answer | busy
    reason: str  # Retell's disconnection_reason
    connects: bool


CONVERSATION = Outcome("conversation", "agent_hangup", connects=True)
# The last digit of the number called -> what happens (README: "Simulated calls").
OUTCOMES: dict[str, Outcome] = {
    "0": Outcome("no_answer", "dial_no_answer", connects=False),
    "1": Outcome("voicemail", "voicemail_reached", connects=True),
    "2": Outcome("busy", "dial_busy", connects=False),
}


def outcome_for(number: str) -> Outcome:
    return OUTCOMES.get(number.strip()[-1:], CONVERSATION)


def local_webhook_url(host: str, port: int) -> str:
    """The server's own `/retell/webhook`, as reached from inside it."""
    if host in ("", "0.0.0.0", "*"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/retell/webhook"


# -- what is said --------------------------------------------------------------------------


@dataclass(frozen=True)
class Script:
    """A simulated call's words and Retell's analysis of them."""

    turns: tuple[tuple[str, str], ...]  # (agent | user, words)
    summary: str
    sentiment: str = "Positive"
    successful: bool = True
    in_voicemail: bool = False
    extracted: Mapping[str, Any] = field(default_factory=dict)

    def transcript(self, turns: int | None = None) -> str:
        said = self.turns if turns is None else self.turns[:turns]
        return "".join(f"{role.capitalize()}: {words}\n" for role, words in said)


def _echo(variables: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = variables.get(key)
        if isinstance(value, str) and value.strip():
            return _cut(value.strip())
    return None


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= VARIABLE_ECHO_LIMIT else text[: VARIABLE_ECHO_LIMIT - 1] + "…"


NAME_KEYS = ("customer_name", "name", "first_name")
WHEN_KEYS = ("appointment", "appointment_time", "appointment_date", "date", "time", "when")
PRODUCT_KEYS = ("product", "plan", "offer", "interest")
TOPIC_KEYS = ("topic", "visit", "service", "product")


def script_for(agent_name: str | None, variables: Mapping[str, Any],
               outcome: Outcome = CONVERSATION) -> Script:
    """What the agent and the callee say, from the agent's name and the call's dynamic
    variables; variables no line uses are passed on in the summary."""
    agent = _cut(agent_name) if agent_name else "your assistant"
    person = _echo(variables, *NAME_KEYS)
    hello = f"Hi {person}" if person else "Hi there"
    who = person or "The callee"
    kind = (agent_name or "").casefold()
    used: tuple[str, ...] = NAME_KEYS
    if "appointment" in kind or "reminder" in kind:
        when = _echo(variables, *WHEN_KEYS)
        used += WHEN_KEYS
        what = f"your appointment for {when}" if when else "your upcoming appointment"
        the_visit = f"the appointment for {when}" if when else "the upcoming appointment"
        voicemail = (f"{hello}, this is the {agent} assistant calling about {what}. "
                     "Please call us back to confirm. Thank you!")
        script = Script(
            turns=(
                ("agent", f"{hello}, this is the {agent} assistant. I'm calling to confirm "
                          f"{what}. Can you still make it?"),
                ("user", f"Yes, {when} works for me." if when else "Yes, I'll be there."),
                ("agent", "Great, you're all set. You'll get a text reminder the day before. "
                          "Is there anything else I can help with?"),
                ("user", "No, that's everything. Thanks!"),
                ("agent", f"Thank you{', ' + person if person else ''}. Have a great day. "
                          "Goodbye!"),
            ),
            summary=(f"The agent called {person or 'the callee'} to confirm {the_visit}. "
                     f"{who} confirmed they will attend; a text reminder goes out the day "
                     "before."),
            extracted={"appointment_confirmed": True},
        )
    elif "sales" in kind or "follow" in kind:
        product = _echo(variables, *PRODUCT_KEYS)
        used += PRODUCT_KEYS
        thing = product or "our plans"
        voicemail = (f"{hello}, this is {agent} following up on your interest in {thing}. "
                     "Call us back whenever suits you. Thanks!")
        script = Script(
            turns=(
                ("agent", f"{hello}, this is {agent}, following up on your interest in "
                          f"{thing}. Do you have a minute?"),
                ("user", "Sure. I was about to ask for a quote, actually."),
                ("agent", f"Happy to help. I'll email you a quote for {thing} today. "
                          "Shall I use the address on file?"),
                ("user", "Yes, the one on file is fine."),
                ("agent", "Perfect, you'll have it within the hour. Thanks for your time!"),
            ),
            summary=(f"{who} is interested in {thing} and asked for a quote; the agent will "
                     "email it today to the address on file."),
            extracted={"quote_requested": True},
        )
    elif "survey" in kind:
        topic = _echo(variables, *TOPIC_KEYS)
        used += TOPIC_KEYS
        subject = topic or "your recent visit"
        voicemail = (f"{hello}, this is {agent} with a short survey about {subject}. "
                     "We'll try again another time. Thank you!")
        script = Script(
            turns=(
                ("agent", f"{hello}, this is {agent} with a one-minute survey about "
                          f"{subject}. On a scale of 1 to 5, how satisfied were you?"),
                ("user", "I'd say a 4."),
                ("agent", "Thank you! What could we do better?"),
                ("user", "Shorter waiting times would help."),
                ("agent", "Noted. Thanks for your time, and goodbye!"),
            ),
            summary=(f"{who} rated {subject} 4 out of 5 and suggested shorter waiting "
                     "times."),
            extracted={"satisfaction_score": 4},
        )
    else:
        voicemail = (f"{hello}, this is {agent}. Sorry I missed you; "
                     "please call us back when you can. Thank you!")
        script = Script(
            turns=(
                ("agent", f"{hello}, this is {agent}. Is now a good time to talk?"),
                ("user", "Yes, go ahead."),
                ("agent", "Thanks. I just wanted to go over a few details with you."),
                ("user", "Sounds good, that all works for me."),
                ("agent", "Wonderful. Thank you, and goodbye!"),
            ),
            summary=f"The agent ({agent}) reached {person or 'the callee'}, who agreed "
                    "to the details discussed.",
        )
    extra = [f"{k}: {_cut(str(v))}" for k, v in variables.items()
             if k not in used and str(v).strip()]
    if extra:
        script = _with_summary(script, script.summary + " Details passed to the agent: "
                               + "; ".join(extra) + ".")
    if outcome.name == "voicemail":
        whose = f"{person}'s" if person else "the callee's"
        return Script(
            turns=(("agent", voicemail),),
            summary=(f"The call reached {whose} voicemail; the agent left a message "
                     "asking for a call back."),
            sentiment="Neutral", successful=False, in_voicemail=True,
        )
    return script


def _with_summary(script: Script, summary: str) -> Script:
    return Script(script.turns, summary, script.sentiment, script.successful,
                  script.in_voicemail, script.extracted)


def _not_connected(outcome: Outcome) -> dict[str, Any]:
    summary = ("The line was busy; the call did not connect." if outcome.name == "busy"
               else "The call was not answered.")
    return {"call_summary": summary, "user_sentiment": "Unknown", "call_successful": False,
            "in_voicemail": False, "custom_analysis_data": {}}


# -- the simulated Retell -------------------------------------------------------------------


def account(from_number: str, agent_id: str | None
            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The simulated account's agents and numbers: RETELL_FROM_NUMBER calls out with
    RETELL_AGENT_ID (or the appointment reminder), a second line with the sales agent."""
    agents: list[dict[str, Any]] = [{"agent_id": i, "agent_name": n} for i, n in AGENTS]
    if agent_id and all(a["agent_id"] != agent_id for a in agents):
        agents.append({"agent_id": agent_id, "agent_name": OWN_AGENT_NAME})
    outbound = agent_id or AGENTS[0][0]
    numbers: list[dict[str, Any]] = [{
        "phone_number": from_number, "nickname": "Main line",
        "outbound_agent_id": outbound, "inbound_agent_id": outbound,
    }]
    if from_number != SECOND_NUMBER:
        numbers.append({"phone_number": SECOND_NUMBER, "nickname": "Sales line",
                        "outbound_agent_id": AGENTS[1][0], "inbound_agent_id": None})
    return agents, numbers


class RetellSimulator:
    """A Retell on 127.0.0.1 whose calls play themselves out (see the module doc).

    `api_key` is what the app's client sends; `webhook_key` signs the webhooks, as the
    key marked for webhooks does at Retell; `webhook_url` is the server's own route."""

    def __init__(
        self,
        *,
        api_key: str,
        webhook_key: str,
        webhook_url: str,
        from_number: str,
        agent_id: str | None = None,
        timings: Timings | None = None,
    ) -> None:
        self.webhook_key = webhook_key
        self.webhook_url = webhook_url
        self.timings = timings or Timings()
        agents, numbers = account(from_number, agent_id)
        self.standin = RetellStandIn(api_key, agents=agents, phone_numbers=numbers)
        self.standin.on_call = self._on_call
        self._stops: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False

    @property
    def url(self) -> str:
        """Where the app's Retell client must send its requests."""
        return self.standin.url

    async def start(self) -> None:
        await self.standin.start()
        self._started = True
        log.info("Retell is simulated (RETELL_MODE=simulate): no real calls are placed")

    async def close(self) -> None:
        """Calls still playing stop where they are (no more webhooks); then the API stops."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._started:
            await self.standin.close()
            self._started = False

    @property
    def playing(self) -> int:
        """Calls whose life is still being played."""
        return len(self._tasks)

    def _on_call(self, event: str, call_id: str) -> None:
        # The stand-in records every request; a long-running server needs only the calls.
        del self.standin.requests[:-100]
        if event == "created":
            stop = self._stops[call_id] = asyncio.Event()
            task = asyncio.get_running_loop().create_task(self._play(call_id, stop),
                                                          name=f"simulated-call-{call_id}")
            self._tasks.add(task)
            task.add_done_callback(self._done)
        elif event == "stopped" and call_id in self._stops:
            self._stops[call_id].set()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("simulated call failed: %s", type(task.exception()).__name__)

    async def _play(self, call_id: str, stop: asyncio.Event) -> None:
        try:
            await self._life(call_id, stop)
        finally:
            self._stops.pop(call_id, None)

    async def _life(self, call_id: str, stop: asyncio.Event) -> None:
        call = self.standin.calls[call_id]
        outcome = outcome_for(str(call.get("to_number") or ""))
        variables = call.get("retell_llm_dynamic_variables") or {}
        script = script_for(call.get("agent_name"), variables, outcome)
        timings = self.timings
        ringing = timings.no_answer if outcome.name == "no_answer" else timings.ring
        if await _stopped_within(stop, ringing):
            await self._end(call_id, "manual_stopped", 0, script, 0, analysis={
                "call_summary": "The call was stopped before it was answered.",
                "user_sentiment": "Unknown", "call_successful": False, "in_voicemail": False,
                "custom_analysis_data": {}})
            return
        if not outcome.connects:
            await self._end(call_id, outcome.reason, 0, script, 0,
                            analysis=_not_connected(outcome))
            return
        started = time.monotonic()
        await self._send(call_id, "call_started")
        talking = timings.talk / 2 if outcome.name == "voicemail" else timings.talk
        stopped = await _stopped_within(stop, talking)
        duration = round((time.monotonic() - started) * 1000)
        spoken = len(script.turns)
        analysis = {
            "call_summary": script.summary, "user_sentiment": script.sentiment,
            "call_successful": script.successful, "in_voicemail": script.in_voicemail,
            "custom_analysis_data": dict(script.extracted),
        }
        reason = outcome.reason
        if stopped:
            reason = "manual_stopped"
            share = min(1.0, duration / 1000 / talking) if talking > 0 else 1.0
            spoken = max(1, int(len(script.turns) * share))
            analysis = {
                "call_summary": "The call was hung up before the conversation finished.",
                "user_sentiment": "Neutral", "call_successful": False,
                "in_voicemail": script.in_voicemail, "custom_analysis_data": {},
            }
        await self._end(call_id, reason, duration, script, spoken, analysis=analysis,
                        variables=variables)

    async def _end(self, call_id: str, reason: str, duration_ms: int, script: Script,
                   spoken: int, *, analysis: dict[str, Any],
                   variables: Mapping[str, Any] | None = None) -> None:
        ended: dict[str, Any] = {"disconnection_reason": reason, "duration_ms": duration_ms}
        if spoken:
            turns = script.turns[:spoken]
            ended.update(
                transcript=script.transcript(spoken),
                transcript_object=transcript_object(turns),
                # Nothing was recorded: no link to show that would lead nowhere.
                recording_url=None, public_log_url=None,
                collected_dynamic_variables=dict(variables or {}),
            )
        elif reason == "manual_stopped":  # stopped while ringing: nobody spoke
            ended.update(transcript="", transcript_object=[], recording_url=None,
                         public_log_url=None, latency=None)
        await self._send(call_id, "call_ended", **ended)
        await asyncio.sleep(self.timings.analysis)
        await self._send(call_id, "call_analyzed", call_analysis=analysis)

    async def _send(self, call_id: str, event: str, **changes: Any) -> bool:
        """Build the event (advancing the call Retell-side) and deliver it as Retell does:
        signed, retried on anything but a 2xx."""
        body = self.standin.event_body(call_id, event, **changes)
        problem = ""
        for delay in (*RETRY_DELAYS, None):
            try:
                status, _ = await self.standin.send_webhook(self.webhook_url, body,
                                                            key=self.webhook_key)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                problem = type(exc).__name__
            else:
                if 200 <= status < 300:
                    log.debug("simulated %s delivered call_id=%s", event, call_id)
                    return True
                problem = f"HTTP {status}"
            if delay is not None:
                await asyncio.sleep(delay)
        log.warning("simulated %s not delivered to %s call_id=%s: %s", event,
                    self.webhook_url, call_id, problem)
        return False


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds`, or less if the call is stopped; True when it was."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(seconds, 0.0))
    return stop.is_set()
