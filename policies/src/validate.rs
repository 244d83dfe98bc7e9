//! Checks on names and tokens that policies carry: Kubernetes names, HTTP header and cookie
//! names, cookie paths, query parameters. Each records an error at the field and returns
//! `None` when the value is not acceptable.

use crate::decode::{Decoder, FieldRef};

/// A DNS-1123 label: lowercase letters, digits and `-`, alphanumeric at both ends.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A Service name: a DNS-1035 label (a DNS-1123 label starting with a letter).
pub fn service_name<'a>(d: &mut Decoder, field: &FieldRef<'_>, name: &'a str) -> Option<&'a str> {
    if is_dns_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Some(name);
    }
    d.error(field, format!("`{name}` is not a valid Service name"))
        .expected = Some("at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit".into());
    None
}

/// An object name: a DNS-1123 subdomain.
pub fn object_name<'a>(d: &mut Decoder, field: &FieldRef<'_>, name: &'a str) -> Option<&'a str> {
    if name.len() <= 253 && name.split('.').all(is_dns_label) {
        return Some(name);
    }
    d.error(field, format!("`{name}` is not a valid object name"))
        .expected = Some(
        "at most 253 lowercase letters, digits, '-' and '.', alphanumeric at both ends".into(),
    );
    None
}

/// A namespace: a DNS-1123 label.
pub fn namespace<'a>(d: &mut Decoder, field: &FieldRef<'_>, name: &'a str) -> Option<&'a str> {
    if is_dns_label(name) {
        return Some(name);
    }
    d.error(field, format!("`{name}` is not a valid namespace"))
        .expected =
        Some("at most 63 lowercase letters, digits and '-', alphanumeric at both ends".into());
    None
}

/// An HTTP token (RFC 9110 §5.6.2): header and cookie names.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// An HTTP header name.
pub fn header_name<'a>(d: &mut Decoder, field: &FieldRef<'_>, name: &'a str) -> Option<&'a str> {
    if is_token(name) {
        return Some(name);
    }
    d.error(field, format!("`{name}` is not a valid HTTP header name"))
        .expected = Some("letters, digits and !#$%&'*+-.^_`|~, no spaces or colons".into());
    None
}

/// A cookie name.
pub fn cookie_name<'a>(d: &mut Decoder, field: &FieldRef<'_>, name: &'a str) -> Option<&'a str> {
    if is_token(name) {
        return Some(name);
    }
    d.error(field, format!("`{name}` is not a valid cookie name"))
        .expected = Some("letters, digits and !#$%&'*+-.^_`|~, no spaces, '=' or ';'".into());
    None
}

/// A cookie path: starts with `/`, printable, no `;`.
pub fn cookie_path<'a>(d: &mut Decoder, field: &FieldRef<'_>, path: &'a str) -> Option<&'a str> {
    if path.starts_with('/') && path.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b';') {
        return Some(path);
    }
    d.error(field, format!("`{path}` is not a valid cookie path"))
        .expected = Some("a path starting with '/', without spaces or ';'".into());
    None
}

/// A URL query parameter name.
pub fn query_parameter<'a>(
    d: &mut Decoder,
    field: &FieldRef<'_>,
    name: &'a str,
) -> Option<&'a str> {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| (0x21..0x7f).contains(&b) && !b"&=#?+%".contains(&b))
    {
        return Some(name);
    }
    d.error(
        field,
        format!("`{name}` is not a valid query parameter name"),
    )
    .expected = Some("printable characters other than & = # ? + % and spaces".into());
    None
}
