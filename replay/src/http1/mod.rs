//! HTTP/1.0 and HTTP/1.1 reconstruction.
//!
//! Each direction is cut into messages on its own ([`reader`]); the
//! [`connection`] module pairs them, which is where request methods feed
//! response framing (HEAD, CONNECT) and where upgrades end HTTP parsing.

mod body_reader;
mod chunked;
mod connection;
mod framing;
mod head;
mod reader;
pub(crate) mod resync;

pub(crate) use connection::{Replayer, replay};
