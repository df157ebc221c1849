"""Message templates: every default renders; a team's broken template is refused with file, line, field."""

from __future__ import annotations

from pathlib import Path

import pytest

from recovery.errors import ConfigError
from recovery.notify.templates import (
    DEFAULT_DIR,
    EVENT_FIELDS,
    SUBJECT_LIMIT,
    load_templates,
    parse_template,
)


def fields_for(event: str) -> dict[str, object]:
    return {name: f"<{name}>" for name in EVENT_FIELDS[event]}


def test_every_default_template_renders_every_field_it_is_given() -> None:
    templates = load_templates()
    assert set(templates.templates) == set(EVENT_FIELDS)
    for event in EVENT_FIELDS:
        message = templates.render(event, fields_for(event))
        assert message.subject and "\n" not in message.subject and len(message.subject) <= SUBJECT_LIMIT
        text = (DEFAULT_DIR / f"{event}.txt").read_text()
        used = {name for name in EVENT_FIELDS[event] if f"${{{name}}}" in text}
        assert used, f"{event} names no field at all"
        for name in used:
            assert f"<{name}>" in message.subject + message.body
        assert "${" not in message.subject + message.body


def test_team_messages_say_what_happened_what_was_done_and_what_to_do() -> None:
    templates = load_templates()
    for event in (e for e in EVENT_FIELDS if e.startswith("team/")):
        body = templates.render(event, fields_for(event)).body
        for part in ("What happened:", "What the toolkit", "What you must do:"):
            assert part in body, f"{event} lacks {part!r}"


def test_customer_messages_cannot_ask_for_amounts_or_payment_details(tmp_path: Path) -> None:
    own = tmp_path / "customer"
    own.mkdir()
    (own / "order-confirmed.txt").write_text(
        "# ours\nsubject: Order ${order_id}\n---\nYou paid ${amount_cents} with card ${card}.\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_templates(tmp_path)
    assert raised.value.message.startswith(
        f"{own / 'order-confirmed.txt'}:4: unknown field ${{amount_cents}}"
    )
    assert "order_id" in raised.value.message


def test_a_teams_template_replaces_the_default_and_the_others_stay(tmp_path: Path) -> None:
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "alarm.txt").write_text("subject: ALERT ${check}\n---\nLook at ${check} now.\n")
    templates = load_templates(tmp_path)
    alarm = templates.render("team/alarm", fields_for("team/alarm"))
    assert alarm.subject == "ALERT <check>"
    assert alarm.body == "Look at <check> now.\n"
    assert templates.templates["team/run-failed"].source == DEFAULT_DIR / "team" / "run-failed.txt"


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("# only comments\n", 2, "the first line after the comments must be `subject: ...`"),
        ("subject: \n---\nbody\n", 1, "the subject is empty"),
        ("subject: s\nbody\n", 2, "a line `---` must follow the subject"),
        ("subject: s\n---\n\n", 3, "the body is empty"),
        ("subject: s ${target\n---\nbody\n", 1, "a `$` that starts no ${field}"),
        ("# c\n\nsubject: s\n---\nok\nsee ${chek}\n", 6, "unknown field ${chek}"),
    ],
)
def test_malformed_templates_are_refused_with_the_line(text: str, line: int, what: str) -> None:
    source = Path("team/alarm.txt")
    with pytest.raises(ConfigError) as raised:
        parse_template(text, source, "team/alarm")
    assert raised.value.message.startswith(f"{source}:{line}: {what}")
    assert raised.value.code == "notify.template_invalid"


def test_the_pending_template_the_order_service_gets_through_ansible_holds_no_jinja() -> None:
    source = Path("customer/order-pending.txt")
    text = "subject: Got ${order_id}\n---\nThanks {{ name }} for ${order_id}\n"
    with pytest.raises(ConfigError) as raised:
        parse_template(text, source, "customer/order-pending")
    assert raised.value.message.startswith(f"{source}:3: `{{{{`, `{{%` and `{{#` cannot appear here")
    # Other messages never pass through Ansible: the same text is fine there.
    assert parse_template(text, source, "customer/order-confirmed").event == "customer/order-confirmed"


def test_a_misspelt_file_name_and_a_non_utf8_file_are_refused(tmp_path: Path) -> None:
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "alarms.txt").write_text("subject: s\n---\nb\n")
    with pytest.raises(ConfigError, match="no event is called team/alarms"):
        load_templates(tmp_path)
    (tmp_path / "team" / "alarms.txt").unlink()
    (tmp_path / "team" / "alarm.txt").write_bytes(b"subject: \xff\n---\nb\n")
    with pytest.raises(ConfigError, match=r"alarm.txt:1: not UTF-8 text"):
        load_templates(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_templates(tmp_path / "missing")


def test_secrets_in_values_never_reach_a_message_and_long_subjects_are_cut() -> None:
    templates = load_templates()
    fields = fields_for("team/run-failed")
    fields["message"] = "connect failed: host=db password=hunter2 user=postgres"
    fields["runbook"] = "restore " * 30
    message = templates.render("team/run-failed", fields)
    assert "hunter2" not in message.body + message.subject
    assert len(message.subject) == SUBJECT_LIMIT and message.subject.endswith("...")


def test_rendering_without_a_field_the_event_offers_is_a_programming_error() -> None:
    fields = fields_for("team/alarm")
    del fields["command"]
    with pytest.raises(ValueError, match="gave no command"):
        load_templates().render("team/alarm", fields)
