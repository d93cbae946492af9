//! Padding shared by DATA, HEADERS and PUSH_PROMISE (RFC 9113 §6.1).

use super::head::{FrameHead, Kind};
use super::{FrameError, flags};

/// The payload without the pad-length byte and the padding.
pub(crate) fn strip<'a>(head: &FrameHead, payload: &'a [u8]) -> Result<&'a [u8], FrameError> {
    if !head.has(flags::PADDED) {
        return Ok(payload);
    }
    let Some((&pad, rest)) = payload.split_first() else {
        return Err(FrameError::InvalidLength {
            kind: head.kind,
            len: payload.len(),
        });
    };
    let pad = usize::from(pad);
    if pad > rest.len() {
        return Err(FrameError::PaddingTooLong {
            kind: head.kind,
            pad,
        });
    }
    Ok(&rest[..rest.len() - pad])
}

/// The same for frames whose padded part starts after a fixed prefix: the
/// prefix must fit too.
pub(crate) fn strip_with_prefix<'a>(
    head: &FrameHead,
    payload: &'a [u8],
    prefix: usize,
    kind: Kind,
) -> Result<(&'a [u8], &'a [u8]), FrameError> {
    let inner = strip(head, payload)?;
    if inner.len() < prefix {
        return Err(FrameError::InvalidLength {
            kind,
            len: payload.len(),
        });
    }
    Ok(inner.split_at(prefix))
}
