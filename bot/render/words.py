"""Plain words for Retell's codes and for numbers people read. Pure functions."""

from __future__ import annotations

import math

DISCONNECTION_REASONS: dict[str, str] = {
    "user_hangup": "Customer hung up",
    "agent_hangup": "Agent ended the call",
    "call_transfer": "Transferred",
    "voicemail_reached": "Voicemail",
    "ivr_reached": "Reached a phone menu (IVR)",
    "inactivity": "No one spoke",
    "max_duration_reached": "Reached the maximum duration",
    "concurrency_limit_reached": "Too many calls at once (concurrency limit)",
    "no_concurrency_fallback": "Too many calls at once (no fallback)",
    "no_valid_payment": "No valid payment on the Retell account",
    "scam_detected": "Stopped: scam detected",
    "dial_busy": "Line busy",
    "dial_failed": "Dialing failed",
    "dial_no_answer": "No answer",
    "invalid_destination": "Invalid number",
    "telephony_provider_permission_denied": "Telephony provider refused the call",
    "telephony_provider_unavailable": "Telephony provider unavailable",
    "sip_routing_error": "SIP routing error",
    "marked_as_spam": "Marked as spam by the carrier",
    "user_declined": "Customer declined the call",
    "error_llm_websocket_open": "Agent error (LLM connection)",
    "error_llm_websocket_lost_connection": "Agent error (LLM connection lost)",
    "error_llm_websocket_runtime": "Agent error (LLM runtime)",
    "error_llm_websocket_corrupt_payload": "Agent error (LLM payload)",
    "error_no_audio_received": "No audio received",
    "error_asr": "Speech recognition error",
    "error_retell": "Retell error",
    "error_unknown": "Unknown error",
    "error_user_not_joined": "Customer never joined",
    "registered_call_timeout": "Call never started",
    "transfer_bridged": "Transferred (bridged)",
    "transfer_cancelled": "Transfer cancelled",
    "manual_stopped": "Hung up from Slack or the dashboard",
    "call_take_over": "Taken over by a person",
    "user_requested_dnc": "Customer asked not to be called again",
    "user_requested_callback": "Customer asked for a callback",
    "credit_exhausted": "Retell credit exhausted",
    "budget_reached": "Budget reached",
    "network_blocked": "Blocked by the network",
}

SENTIMENT_EMOJI = {
    "Positive": ":smiley:",
    "Neutral": ":neutral_face:",
    "Negative": ":slightly_frowning_face:",
    "Unknown": ":grey_question:",
}


# A code Retell adds is a short snake_case word; anything longer is cut (rendering escapes it).
REASON_CODE_LIMIT = 100


def reason_words(code: str | None) -> str:
    """Known codes get curated words; new ones Retell adds still read as words."""
    if not code:
        return "Unknown reason"
    known = DISCONNECTION_REASONS.get(code)
    if known:
        return known
    if len(code) > REASON_CODE_LIMIT:
        code = code[: REASON_CODE_LIMIT - 1] + "…"
    return code.replace("_", " ").capitalize()


def duration_words(ms: float | None) -> str:
    if ms is None or not math.isfinite(ms) or abs(ms) > 1e12:
        return "–"
    seconds = round(ms / 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def cost_words(cents: float | None) -> str:
    if cents is None or not math.isfinite(cents):
        return "–"
    return f"${cents / 100:,.2f}"


def percent_words(fraction: float | None) -> str:
    return "–" if fraction is None or not math.isfinite(fraction) else f"{fraction * 100:.0f}%"


def sentiment_words(sentiment: str | None) -> str:
    label = sentiment if sentiment in SENTIMENT_EMOJI else "Unknown"
    return f"{SENTIMENT_EMOJI[label]} {label}"
