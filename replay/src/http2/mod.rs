//! HTTP/2 reconstruction.
//!
//! [`framer`] cuts each direction into [`frame`]s, [`hpack`] decodes header
//! blocks per direction, [`stream`] accumulates what each stream carried and
//! [`connection`] ties them together into exchanges.

mod connection;
pub(crate) mod frame;
pub(crate) mod framer;
pub(crate) mod hpack;
mod stream;

pub(crate) use connection::{Limits, Replayer, Windowed, replay};
