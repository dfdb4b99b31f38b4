//! WinRM message encryption over HTTP (MS-WSMV 2.2.9.1.1, SPNEGO): the SOAP envelope is
//! sealed and framed as `multipart/encrypted`:
//!
//! ```text
//! --Encrypted Boundary\r\n
//! \tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n
//! \tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=<plain length>\r\n
//! --Encrypted Boundary\r\n
//! \tContent-Type: application/octet-stream\r\n
//! <u32 LE signature length = 16><signature><sealed envelope>--Encrypted Boundary--\r\n
//! ```
//!
//! The leading tabs and the absence of a blank line before the binary part are what WinRM,
//! pywinrm and pypsrp write and what pywinrm's parser needs (it strips
//! `"\tContent-Type: application/octet-stream\r\n"` literally).

use crate::Error;
use crate::session::{SIGNATURE_LEN, Session};

/// The `protocol` parameter for NTLM/Negotiate sessions.
pub const PROTOCOL: &str = "application/HTTP-SPNEGO-session-encrypted";
/// The full Content-Type of an encrypted message.
pub const CONTENT_TYPE: &str = "multipart/encrypted;protocol=\"application/HTTP-SPNEGO-session-encrypted\";boundary=\"Encrypted Boundary\"";
/// The Content-Type of the plain envelope inside.
const ORIGINAL_TYPE: &str = "application/soap+xml;charset=UTF-8";

const BOUNDARY: &[u8] = b"--Encrypted Boundary\r\n";
const END: &[u8] = b"--Encrypted Boundary--\r\n";

/// Whether a Content-Type header announces an SPNEGO-encrypted body.
pub fn is_encrypted(content_type: &str) -> bool {
    // Every plain request asks this: the prefix test allocates nothing, and only a multipart
    // type pays for the lower-cased copy the protocol search needs.
    let starts = |prefix: &str| {
        content_type
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    };
    if !starts("multipart/encrypted") && !starts("multipart/x-multi-encrypted") {
        return false;
    }
    content_type
        .to_ascii_lowercase()
        .contains(&PROTOCOL.to_ascii_lowercase())
}

/// Seals `plain` and frames it; the result goes out with [`CONTENT_TYPE`].
pub fn encrypt(session: &mut Session, plain: &[u8]) -> Vec<u8> {
    let mut sealed = plain.to_vec();
    let sig = session.seal(&mut sealed);
    let mut out = Vec::with_capacity(plain.len() + 256);
    out.extend_from_slice(BOUNDARY);
    out.extend_from_slice(format!("\tContent-Type: {PROTOCOL}\r\n").as_bytes());
    out.extend_from_slice(
        format!(
            "\tOriginalContent: type={ORIGINAL_TYPE};Length={}\r\n",
            plain.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(BOUNDARY);
    out.extend_from_slice(b"\tContent-Type: application/octet-stream\r\n");
    out.extend_from_slice(&(SIGNATURE_LEN as u32).to_le_bytes());
    out.extend_from_slice(&sig);
    out.extend_from_slice(&sealed);
    out.extend_from_slice(END);
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Unframes and unseals an encrypted body; checks the signature and the announced length.
pub fn decrypt(session: &mut Session, body: &[u8]) -> Result<Vec<u8>, Error> {
    let rest = body
        .strip_prefix(BOUNDARY)
        .ok_or(Error::Mime("does not start with --Encrypted Boundary"))?;
    let second = find(rest, BOUNDARY).ok_or(Error::Mime("no second part"))?;
    let headers =
        std::str::from_utf8(&rest[..second]).map_err(|_| Error::Mime("headers are not text"))?;
    let mut length = None;
    let mut protocol_ok = false;
    for line in headers.split("\r\n").map(str::trim) {
        if let Some(v) = strip_prefix_ci(line, "Content-Type:") {
            protocol_ok = v.trim().eq_ignore_ascii_case(PROTOCOL);
        } else if let Some(v) = strip_prefix_ci(line, "OriginalContent:") {
            length = v
                .split(';')
                .find_map(|p| strip_prefix_ci(p.trim(), "Length="))
                .and_then(|n| n.trim().parse::<usize>().ok());
        }
    }
    if !protocol_ok {
        return Err(Error::Mime(
            "first part is not application/HTTP-SPNEGO-session-encrypted",
        ));
    }
    let length = length.ok_or(Error::Mime("no OriginalContent Length"))?;
    let part = &rest[second + BOUNDARY.len()..];
    // One header line (Content-Type: application/octet-stream), then the binary.
    let eol = find(part, b"\r\n").ok_or(Error::Mime("no octet-stream header"))?;
    if !std::str::from_utf8(&part[..eol])
        .map(|l| {
            l.trim()
                .to_ascii_lowercase()
                .contains("application/octet-stream")
        })
        .unwrap_or(false)
    {
        return Err(Error::Mime("second part is not application/octet-stream"));
    }
    let mut bin = &part[eol + 2..];
    bin = bin
        .strip_suffix(END)
        .or_else(|| bin.strip_suffix(&END[..END.len() - 2]))
        .ok_or(Error::Mime("no closing --Encrypted Boundary--"))?;
    let sig_len = bin
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or(Error::Mime("truncated signature length"))?;
    if sig_len != SIGNATURE_LEN {
        return Err(Error::Mime("signature length is not 16"));
    }
    let sig = bin
        .get(4..4 + SIGNATURE_LEN)
        .ok_or(Error::Mime("truncated signature"))?;
    let mut msg = bin[4 + SIGNATURE_LEN..].to_vec();
    if msg.len() != length {
        return Err(Error::Mime(
            "sealed length differs from OriginalContent Length",
        ));
    }
    session.unseal(&mut msg, sig)?;
    Ok(msg)
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_multipart_spnego_types_are_encrypted() {
        for (ct, want) in [
            (CONTENT_TYPE, true),
            (
                "Multipart/Encrypted;Protocol=\"Application/HTTP-SPNEGO-Session-Encrypted\"",
                true,
            ),
            (
                "multipart/x-multi-encrypted;protocol=\"application/HTTP-SPNEGO-session-encrypted\"",
                true,
            ),
            ("multipart/encrypted;protocol=\"application/other\"", false),
            ("application/soap+xml;charset=UTF-8", false),
            ("multipart/encrypte", false),
            ("", false),
            // A multi-byte character where the prefix would end must not split it.
            ("multipart/encrypteé", false),
        ] {
            assert_eq!(is_encrypted(ct), want, "{ct}");
        }
    }
}
