"""Masking addresses for logs and verdicts: every address in a free text is masked, whatever its script or quoting."""

from __future__ import annotations

import json

import pytest

from account_doctor.addresses import mask_addresses, mask_email
from tests.log_hygiene import leaks

# (id, a provider's or SES's error text, the same text as it may be logged or stored)
TEXTS = [
    ("ascii", "Mailbox jane.doe@acme.com unavailable", "Mailbox j***@acme.com unavailable"),
    ("accented-local-part", "Address josé.garcía@acme.es rejected", "Address j***@acme.es rejected"),
    ("accented-domain", "bounced: user@exämple.de", "bounced: u***@exämple.de"),
    ("other-script", "收件人 用户@例子.广告 不存在", "收件人 用***@例子.广告 不存在"),
    ("quoted-local-part", 'No such user "jane doe"@acme.com', 'No such user "***@acme.com'),
    ("quoted-with-escaped-quote", r'"a\"b"@x.io refused', '"***@x.io refused'),
    ("in-angle-brackets", "<k.s@shop.example>: 550", "<k***@shop.example>: 550"),
    ("several", "a@b.com, c@d.org", "a***@b.com, c***@d.org"),
    ("a quote that is no address", 'said "hi" to bob@acme.com', 'said "hi" to b***@acme.com'),
    ("no address", "Throttling: rate exceeded", "Throttling: rate exceeded"),
]


@pytest.mark.parametrize(("text", "masked"), [t[1:] for t in TEXTS], ids=[t[0] for t in TEXTS])
def test_every_address_in_a_text_is_masked(text: str, masked: str) -> None:
    assert mask_addresses(text) == masked
    # What the log check looks for, in a JSON log line too: nothing of the address is left whole.
    assert leaks(json.dumps({"reason": mask_addresses(text)}, ensure_ascii=False)) == []


@pytest.mark.parametrize("text", [t[1] for t in TEXTS if t[1] != t[2]], ids=[t[0] for t in TEXTS if t[1] != t[2]])
def test_the_log_check_sees_each_unmasked_address(text: str) -> None:
    assert leaks(json.dumps({"reason": text}, ensure_ascii=False))


def test_mask_email_keeps_the_first_character_and_the_domain() -> None:
    assert mask_email("josé.garcía@acme.es") == "j***@acme.es"
    assert mask_email(None) is None
    assert mask_email("not an address") == "not an address"
