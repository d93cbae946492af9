//! The network side of a capture: packets seen by XDP and TC, sockets seen by sock_ops and the
//! kernel's socket table (sock_diag), and the join of both with TLS connections by socket
//! cookie and 5-tuple.
//!
//! The join happens here, in user space, when events are written, not in the kernel when a
//! probe fires: a TLS record whose socket the kernel had not reported yet is never dropped, it
//! is correlated as soon as the socket event arrives (seeds 004, issue 1).

pub mod cgroup;
pub mod links;
pub mod packet_headers;
pub mod sock_diag;
pub mod socket_table;
