"""A campaign's contact list read from CSV: columns found, bad rows reported by line and why,
duplicates, caps; the groundwork for campaigns (issue 14, section 3)."""

from __future__ import annotations

import pytest

from bot.input.contacts import MAX_ROWS, ContactsError, read_contacts


def test_number_column_variables_and_agent() -> None:
    data = ("\ufeffName,Phone,appointment_time,Agent,notes with spaces\n"
            "Ann,+1 415 555 0123,Tue 3pm,Appointment Reminder,x\n"
            "Bo,(415) 555-0124,Wed 9am,,\n").encode()
    read = read_contacts(data)
    assert [c.number for c in read.contacts] == ["+14155550123", "+14155550124"]
    assert read.contacts[0].variables == {"Name": "Ann", "appointment_time": "Tue 3pm"}
    assert read.contacts[0].agent == "Appointment Reminder" and read.contacts[1].agent is None
    assert read.columns == ("Name", "appointment_time")  # "notes with spaces" is no name
    assert read.bad == [] and read.rows == 2


def test_bad_rows_say_their_line_and_why_and_duplicates_keep_the_first() -> None:
    data = ("number;customer_name\n"
            "+14155550123;Ann\n"
            "\n"
            ";Nobody\n"
            "12;Short\n"
            "415-555-0123;Ann again\n"
            "+442079460123;" + "x" * 2001 + "\n").encode()
    read = read_contacts(data)
    assert [c.line for c in read.contacts] == [2]
    assert [(b.line, b.reason) for b in read.bad] == [
        (4, "no_number"), (5, "invalid_number"), (6, "duplicate"), (7, "value_too_long")]


def test_whole_file_problems_are_one_clear_mistake() -> None:
    for data, code in ((b"", "contacts_empty"),
                       (b"name,email\nAnn,a@example.com\n", "contacts_no_number_column"),
                       ("number\n".encode("utf-16"), "contacts_not_utf8"),
                       (b"x" * (5 * 1024 * 1024 + 1), "contacts_too_large"),
                       (b"number\n\n\n", "contacts_empty")):
        with pytest.raises(ContactsError) as refused:
            read_contacts(data)
        assert refused.value.code == code, data[:20]


@pytest.mark.slow  # reads 10,005 numbers
def test_at_most_max_rows_are_taken() -> None:
    rows = "\n".join(f"+1415555{n:04d}" for n in range(MAX_ROWS + 5))
    read = read_contacts(("number\n" + rows).encode())
    assert len(read.contacts) == MAX_ROWS
    assert [b.reason for b in read.bad] == ["too_many_rows"]
