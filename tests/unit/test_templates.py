"""Templates render personal data, fall back to defaults, choose the customer's language, are
checked when loaded, and carry tracked links."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.channels.links import CLICK, LinkMaker
from services.channels.templates import TemplateError, Templates, template_variables

ROOT = Path(__file__).resolve().parents[2]
LINKS = LinkMaker("secret", "https://ch.example", "https://pr.example")


def _write(folder: Path, files: dict[str, str]) -> Path:
    for name, body in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    return folder


def test_thank_you_email_greets_by_first_name() -> None:
    templates = Templates(ROOT / "templates")
    variables = template_variables(
        {"traits": {"first_name": "Chloé"}},
        {"event": {"properties": {"order_id": "o-1", "revenue": 42.5}}, "journey": {"name": "J"}},
    )
    email = templates.render_email("order-thank-you", variables)
    assert email["subject"] == "Thank you for your order, Chloé!"
    assert "Hello Chloé" in email["text"]
    assert "o-1" in email["html"]
    assert "42.5" in email["text"]


def test_every_shipped_template_loads() -> None:
    assert Templates(ROOT / "templates").problems == {}


def test_a_step_override_reaches_its_template() -> None:
    templates = Templates(ROOT / "templates")
    offer = template_variables({"traits": {}}, {"overrides": {"discount": 25}})
    assert "25% off" in templates.render_email("win-back", offer)["subject"]
    fallback = template_variables({"traits": {}}, {})
    assert "10% off" in templates.render_email("win-back", fallback)["subject"]


def test_personalised_subject_with_fallback_and_locale(tmp_path: Path) -> None:
    _write(tmp_path, {
        "t/subject.liquid": "{{ profile.traits.first_name | default: 'Hello' }}, your cart",
        "t/subject.fr.liquid": "{{ profile.traits.first_name | default: 'Bonjour' }}, "
                               "votre panier",
        "t/html.liquid": "<p>x</p>", "t/text.liquid": "x",
        "t/sms.liquid": "  Hi {{ customer.first_name | default: 'there' }} \n",
    })  # fmt: skip
    templates = Templates(tmp_path)
    assert templates.templates["t"].channels == ["email", "sms"]

    def subject(traits: dict[str, object]) -> str:
        rendered = templates.render("t", "email", template_variables({"traits": traits}, {}))
        return rendered["subject"]

    assert subject({"first_name": "Ana"}) == "Ana, your cart"
    assert subject({}) == "Hello, your cart"
    assert subject({"language": "fr-BE"}) == "Bonjour, votre panier"
    assert subject({"language": "de", "first_name": "Jo"}) == "Jo, your cart"
    sms = templates.render("t", "sms", template_variables({"traits": {}}, {}))
    assert sms["sms"] == "Hi there"


def test_missing_variable_without_default_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path, {"t/subject.liquid": "Hi {{ customer.nickname }}", "t/html.liquid": "x",
                      "t/text.liquid": "x"})  # fmt: skip
    with pytest.raises(TemplateError, match="nickname"):
        Templates(tmp_path).render_email("t", template_variables({"traits": {}}, {}))


def test_bad_templates_are_refused_at_load_with_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path, {
        "syntax/sms.liquid": "Hi\n{% if profile %}\nno end",
        "unknown/sms.liquid": "Hi\n\n{{ custmer.first_name }}",
        "good/sms.liquid": "ok",
    })  # fmt: skip
    templates = Templates(tmp_path)
    assert sorted(templates.templates) == ["good"]
    assert "syntax/sms.liquid:3:" in templates.problems["syntax"][0]
    assert "unknown/sms.liquid:3: unknown variable 'custmer'" in templates.problems["unknown"][0]
    with pytest.raises(TemplateError, match="invalid"):
        templates.get("unknown")
    with pytest.raises(TemplateError, match="missing"):
        templates.get("nowhere")


def test_mjml_compiles_to_responsive_html_with_liquid_kept(tmp_path: Path) -> None:
    _write(tmp_path, {
        "m/subject.liquid": "s", "m/text.liquid": "t",
        "m/html.mjml": "<mjml><mj-body><mj-section><mj-column><mj-text>Hi "
                       "{{ profile.traits.first_name | default: 'you' }}</mj-text>"
                       "</mj-column></mj-section></mj-body></mjml>",
    })  # fmt: skip
    html = Templates(tmp_path).render_email("m", template_variables({"traits": {}}, {}))["html"]
    assert "Hi you" in html
    assert "@media" in html  # the responsive column rules MJML generates


def test_links_are_signed_tracked_and_own_links_left_alone() -> None:
    links = LINKS.for_message(
        "p1", "d1", channel="email", message_type="marketing", journey_id="j", step_id="s",
        survey="nps",
    )  # fmt: skip
    assert links["unsubscribe"].startswith("https://ch.example/t/u/")
    assert links["preferences"].startswith("https://pr.example/v1/preferences/")
    survey = LINKS.signer("survey").verify(links["survey"].rsplit("/", 1)[1], 60)
    assert survey == {"profile_id": "p1", "survey": "nps", "journey_id": "j", "step_id": "s",
                      "dispatch_id": "d1"}  # fmt: skip
    html = (f'<html><body><a href="https://shop.example/cart?a=1&amp;b=2">cart</a>'
            f'<a href="{links["unsubscribe"]}">stop</a></body></html>')  # fmt: skip
    tracked = LINKS.track(html, "d1", opens=True, clicks=True)
    redirect = tracked.split('href="')[1].split('"')[0]
    assert redirect.startswith("https://ch.example/t/r/")
    data = LINKS.signer(CLICK).verify(redirect.rsplit("/", 1)[1], 60)
    assert data == {"d": "d1", "u": "https://shop.example/cart?a=1&b=2"}
    assert f'href="{links["unsubscribe"]}"' in tracked
    assert tracked.index("/t/o/") < tracked.index("</body>")
