//! Offline reconstruction of HTTP exchanges from spliff traces.
//!
//! Data flows one way: trace file → connections → HTTP/1.1 or HTTP/2 → exchanges → sinks.
//! Nothing here needs root or Linux; the same trace always gives the same bytes out.

pub mod text;
