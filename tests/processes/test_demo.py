"""`python -m bot demo` as a person runs it: a real process, no accounts, no network."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from bot.context import AppContext
from bot.demo import Demo, run_demo

pytestmark = pytest.mark.slow  # a real process playing a story of a few seconds

REPO = Path(__file__).resolve().parents[2]


def run_demo_process(cwd: Path, *args: str,
                     **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("SLACK_", "RETELL_", "CALLBOT_", "DATABASE_"))}
    clean.update(PYTHONPATH=os.pathsep.join(filter(None, [str(REPO),
                                                          os.environ.get("PYTHONPATH")])),
                 PYTHONIOENCODING="utf-8", **env)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "bot", "demo", *args], cwd=cwd, env=clean,
                            capture_output=True, text=True, encoding="utf-8", timeout=60)
    return result, time.monotonic() - started


def test_the_demo_plays_the_whole_story_and_exits_0(tmp_path: Path) -> None:
    # A real set-up in the same shell and directory changes nothing: the demo reads no
    # settings (here, ones that would break it: a bad key, no transcripts, another region).
    (tmp_path / ".env").write_text("CALLBOT_POST_TRANSCRIPTS=false\n")
    (tmp_path / "tmp").mkdir()
    result, seconds = run_demo_process(tmp_path, TMPDIR=str(tmp_path / "tmp"),
                               SLACK_BOT_TOKEN="xoxb-real-looking", RETELL_API_KEY="key_real",
                               RETELL_MODE="live", CALLBOT_ALLOWED_USERS="U0SOMEONE",
                               CALLBOT_DEFAULT_REGION="GB")
    # Messages are wrapped to the terminal: their lines joined again, to read sentences.
    out = re.sub(r"\n +│ ", " ", result.stdout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stderr == ""  # the server's log lines went to a file, not here
    # 1: the card changed as the call went, and the summary (with its variables) is in
    # the thread.
    assert out.count("card of call 1 updated") >= 3
    assert ("The agent called Ann to confirm the appointment for Tuesday 3pm. Ann confirmed "
            "they will attend") in out
    # 2: not answered; 3: the number on the do-not-call list is refused, no card posted.
    assert "The call was not answered." in out
    assert "is on the do-not-call list" in out and "card of call 3" not in out
    # 4: the transcript button posted the transcript in the thread.
    transcript = out.split("presses [ Transcript ]", 1)[1]
    assert "in the thread of call 1" in transcript
    assert "Agent: Hi Ann, this is the Appointment Reminder assistant." in transcript
    # 5 and the end.
    assert "answer to /callstats" in out
    assert out.rstrip().splitlines()[-1].startswith("Done in ")
    assert "Set up for real" in out.rstrip().splitlines()[-1]
    # Readable: no markup left, and no full phone number shown.
    for markup in ("*Call summary*", ":white_check_mark:", "<@U0DANA>", "&lt;", "<!date"):
        assert markup not in out
    assert "+1 415 ••• 0125" in out  # cards mask the number the person typed
    assert seconds < 15, f"the demo took {seconds:.1f} s"
    # The throw-away directory (database, server log) is gone after a success.
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_step_whose_effect_never_comes_fails_and_says_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    async def story(demo: Demo, ctx: AppContext) -> None:
        demo.begin("step5")  # /callstats, which posts no card: expecting one waits in vain
        await demo.slash("/callstats", "")
        await demo.expect("first_card", lambda: bool(demo.feed.cards), deadline=0.3)

    out = io.StringIO()
    assert run_demo(out, story) == 1
    err = capsys.readouterr().err
    assert "FAILED: 5. /callstats: how the calls went: the call's card in the channel: not " \
           "seen within 0.3 s" in err
    # The server's log is kept, and named, for whoever wants to know more.
    log = Path(err.split("The server's log: ", 1)[1].strip())
    assert log.parent.parent == tmp_path and "POST /slack/events 200" in log.read_text()
    assert "answer to /callstats" in out.getvalue()  # what happened before is shown
    assert "Done in" not in out.getvalue()


def test_the_demo_in_thai(tmp_path: Path) -> None:
    """`--language th`: the story is told in Thai, and the person reads Slack in Thai, so the
    channel's cards (CALLBOT_LANGUAGE) and the answers only they see are Thai too."""
    result, seconds = run_demo_process(tmp_path, "--language", "th")
    out = re.sub(r"\n +│ ", " ", result.stdout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for thai in ("สายที่ติดต่อได้", "โพสต์การ์ดของสายที่ 1", "โทรหา +1 415 ••• 0125",
                 "สรุปการโทร", "ความรู้สึกของลูกค้า", "ไม่มีผู้รับสาย",  # dial_no_answer
                 "อยู่ในรายชื่อห้ามโทร",  # the refusal, to the person
                 "บทสนทนาของสายที่โทรหา", "เสร็จใน"):
        assert thai in out, thai
    for english in ("card of call", "Call summary", "is on the do-not-call list", "Done in"):
        assert english not in out, english
    # What Retell's (simulated) agent said stays as it was said.
    assert "Hi Ann, this is the Appointment Reminder assistant." in out
    assert seconds < 15
