"""Templates render personal data and refuse to render with data missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.channels.templates import TemplateError, Templates, template_variables

ROOT = Path(__file__).resolve().parents[2]


def test_thank_you_email_greets_by_first_name() -> None:
    templates = Templates(ROOT / "templates")
    variables = template_variables(
        {"traits": {"first_name": "Chloé"}},
        {"event": {"properties": {"order_id": "o-1", "revenue": 42.5}}, "journey": {"name": "J"}},
    )
    email = templates.render_email("order-thank-you", variables)
    assert email.subject == "Thank you for your order, Chloé!"
    assert "Hello Chloé" in email.text
    assert "o-1" in email.html
    assert "42.5" in email.text


def test_missing_variable_without_default_is_an_error(tmp_path: Path) -> None:
    for part, body in (("subject", "Hi {{ customer.nickname }}"), ("html", "x"), ("text", "x")):
        (tmp_path / "t").mkdir(exist_ok=True)
        (tmp_path / "t" / f"{part}.liquid").write_text(body)
    with pytest.raises(TemplateError, match="nickname"):
        Templates(tmp_path).render_email("t", template_variables({"traits": {}}, {}))


def test_unknown_template_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="missing"):
        Templates(tmp_path).render_email("missing", template_variables({}, {}))
