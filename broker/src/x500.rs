//! A certificate's subject as Kafka sees it: Java's
//! `X500Principal.getName()`, the RFC 2253 string that
//! `ssl.principal.mapping.rules` are matched against.
//!
//! The relative distinguished names come last-first (`CN=alice,OU=eng,
//! O=Acme,C=US` for a certificate issued to `/C=US/O=Acme/OU=eng/CN=alice`),
//! the values of one multi-valued RDN joined by `+` in their DER order.
//! Only RFC 2253's keywords (CN, C, L, ST, O, OU, STREET, DC, UID) are
//! named; any other attribute is its dotted OID with the value as `#` and
//! the hex of its DER encoding (so an e-mail address is
//! `1.2.840.113549.1.9.1=#16…`), as is a value that is not a string. As
//! Java does, a string's bytes are read as UTF-8 whatever its ASN.1 type;
//! `,`, `=`, `+`, `<`, `>`, `#`, `;`, `"` and `\` are escaped with `\`, a
//! NUL is `\00`, and spaces (or carriage returns) at either end are
//! escaped too. A value of an ASN.1 type the `der` crate has no tag for
//! (the deprecated UniversalString) makes the subject unreadable.

use x509_cert::Certificate;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Decode, Encode, Tag, Tagged};
use x509_cert::name::Name;

/// The subject of a DER certificate as Java's `X500Principal.getName()`
/// spells it.
pub fn subject_name(certificate: &[u8]) -> Result<String, String> {
    let certificate = Certificate::from_der(certificate)
        .map_err(|e| format!("the certificate cannot be read: {e}"))?;
    Ok(rfc2253(certificate.tbs_certificate().subject()))
}

/// `name` in RFC 2253 form, as Java writes it.
pub fn rfc2253(name: &Name) -> String {
    let rdns: Vec<&_> = name.iter_rdn().collect();
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, ava) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            attribute(ava, &mut out);
        }
    }
    out
}

/// RFC 2253's keywords (Java names no others in this form).
const KEYWORDS: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

fn keyword(oid: &ObjectIdentifier) -> Option<&'static str> {
    let dotted = oid.to_string();
    KEYWORDS
        .iter()
        .find(|(o, _)| *o == dotted)
        .map(|(_, keyword)| *keyword)
}

/// The string types Java writes as text rather than as hex.
fn is_string(tag: Tag) -> bool {
    matches!(
        tag,
        Tag::PrintableString
            | Tag::TeletexString
            | Tag::Ia5String
            | Tag::GeneralString
            | Tag::BmpString
            | Tag::Utf8String
    )
}

fn attribute(ava: &AttributeTypeAndValue, out: &mut String) {
    let value = &ava.value;
    match keyword(&ava.oid) {
        Some(keyword) if is_string(value.tag()) => {
            out.push_str(keyword);
            out.push('=');
            escape(&String::from_utf8_lossy(value.value()), out);
        }
        named => {
            match named {
                Some(keyword) => out.push_str(keyword),
                None => out.push_str(&ava.oid.to_string()),
            }
            out.push_str("=#");
            // An `Any` always encodes (it was decoded from these bytes).
            for byte in value.to_der().unwrap_or_default() {
                out.push_str(&format!("{byte:02x}"));
            }
        }
    }
}

/// RFC 2253 escaping as Java applies it.
fn escape(value: &str, out: &mut String) {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            ',' | '=' | '+' | '<' | '>' | '#' | ';' | '"' | '\\' => {
                escaped.push('\\');
                escaped.push(c);
            }
            '\0' => escaped.push_str("\\00"),
            _ => escaped.push(c),
        }
    }
    let blank = |c: char| c == ' ' || c == '\r';
    let lead = escaped.len() - escaped.trim_start_matches(blank).len();
    let trail = escaped.trim_end_matches(blank).len();
    for (i, c) in escaped.char_indices() {
        if i < lead || i >= trail.max(lead) {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DER names and what Java 17's `X500Principal.getName()` says of
    /// each (taken from the JDK): keywords and order, a multi-valued RDN,
    /// string types read as UTF-8 (BMPString too, as Java does), non-string
    /// values and unnamed attributes in hex, and every escape.
    const CASES: &[(&str, &str)] = &[
        (
            "303a310b3009060355040613025553310d300b060355040a0c0441636d65310c300a060355040b0c03656e67310e300c06035504030c05616c696365",
            "CN=alice,OU=eng,O=Acme,C=US",
        ),
        (
            "30153113301106035504031e0a0062006d0070002000e9",
            "CN=\\00b\\00m\\00p\\00 \\00\u{fffd}",
        ),
        (
            "30133111300f06035504030c086e756c0068657265",
            "CN=nul\\00here",
        ),
        (
            "3020310f300d06035504030c06202073702020310d300b060355040a0c040d63720d",
            "O=\\\u{d}cr\\\u{d},CN=\\ \\ sp\\ \\ ",
        ),
        ("3010310e300c06035504030c05236c656164", "CN=\\#lead"),
        ("300d310b3009060355040304020102", "CN=#04020102"),
        (
            "3010310e300c06072b0601040163010c0178",
            "1.3.6.1.4.1.99.1=#0c0178",
        ),
        (
            "30163114301206092a864886f70d01090116056140622e63",
            "1.2.840.113549.1.9.1=#16056140622e63",
        ),
        ("300f310d300b06035504031404636166e9", "CN=caf\u{fffd}"),
        ("3000", ""),
        ("300e310c300a06035504031b0367656e", "CN=gen"),
        (
            "303d310b30090603550406130255533119300a060355040b0c03656e67300b060355040a130441636d653113301106035504030c0ac3bc6ec3af20f09f9880",
            "CN=ünï 😀,OU=eng+O=Acme,C=US",
        ),
        ("300c310a300806035504030c0120", "CN=\\ "),
        ("300f310d300b06035504030c04615c2062", "CN=a\\\\ b"),
        (
            "30153113301106035504030c0a746162096e6c0a656e64",
            "CN=tab\u{9}nl\u{a}end",
        ),
        ("300f310d300b06035504071604636166e9", "L=caf\u{fffd}"),
        (
            "301e311c301a06035504030c13612c622b6322645c653c663e673b683d69236a",
            "CN=a\\,b\\+c\\\"d\\\\e\\<f\\>g\\;h\\=i\\#j",
        ),
        (
            "307231133011060a0992268993f22c6401191603636f6d31173015060a0992268993f22c64011916076578616d706c6531123010060a0992268993f22c6401010c0275313110300e06035504090c074d61696e205374310e300c060355040713055061726973310c300a06035504080c03494446",
            "ST=IDF,L=Paris,STREET=Main St,UID=u1,DC=example,DC=com",
        ),
        (
            "301a310b3009060355040513023432310b3009060355040c0c024472",
            "2.5.4.12=#0c024472,2.5.4.5=#13023432",
        ),
        (
            "30163114301206035504030c0b785f792a7a407721272829",
            "CN=x_y*z@w!'()",
        ),
    ];

    fn der(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn a_value_of_a_type_der_does_not_know_is_not_read() {
        // UniversalString (deprecated; Java writes it as hex): the `der`
        // crate has no tag for it, so such a subject is not read and the
        // client is refused rather than named wrongly.
        assert!(
            Name::from_der(&der("30173115301306035504031c0c000000750000006e00000069")).is_err()
        );
    }

    #[test]
    fn names_are_written_as_java_writes_them() {
        for (hex, want) in CASES {
            let name = Name::from_der(&der(hex)).unwrap_or_else(|e| panic!("{hex}: {e}"));
            assert_eq!(rfc2253(&name), *want, "{hex}");
        }
    }
}
