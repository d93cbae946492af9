//! HTTP/2 reconstruction.
//!
//! [`framer`] cuts each direction into [`frame`]s one at a time, [`hpack`] decodes header
//! blocks per direction, [`stream`] accumulates what each stream carried and
//! [`connection`] reads both directions in time order and turns closed streams into
//! exchanges as it goes (whole, or exchange by exchange for [`crate::lazy`]).

mod connection;
pub(crate) mod frame;
pub(crate) mod framer;
pub(crate) mod hpack;
mod stream;

pub(crate) use connection::{Limits, Replayer, Windowed, replay};
