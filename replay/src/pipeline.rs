//! The replay pipeline: trace bytes → connections → exchanges in time order. Connections are
//! reconstructed in parallel; the result does not depend on the thread count because rayon's
//! ordered collect keeps connection order and exchanges are then sorted by a total key.

use rayon::prelude::*;
use spliff_formats::ReadError;

use crate::trace_input::{ConnectionInfo, read_connections};
use crate::{ConnectionStreams, Exchange, Reconstruction, ReplayOptions, reconstruct};

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The absolute URL: the target as is when it is absolute-form, else https + the authority
/// (`:authority` or Host, else SNI, else the server address) + the target.
pub fn exchange_url(ex: &Exchange, info: &ConnectionInfo) -> String {
    let target = ex
        .request
        .target
        .as_deref()
        .map(lossy)
        .unwrap_or_else(|| "/".to_string());
    if target.starts_with("http://") || target.starts_with("https://") {
        return target;
    }
    let scheme = ex
        .request
        .scheme
        .as_deref()
        .map(lossy)
        .unwrap_or_else(|| "https".to_string());
    let authority = ex
        .request
        .authority
        .as_deref()
        .or_else(|| ex.request.header("host"))
        .map(lossy)
        .or_else(|| info.sni.clone())
        .or_else(|| info.client_server().1.map(|a| a.to_string()))
        .unwrap_or_else(|| "unknown".to_string());
    // CONNECT and OPTIONS * have no path.
    if target == "*" || !target.starts_with('/') {
        return format!("{scheme}://{authority}");
    }
    format!("{scheme}://{authority}{target}")
}

/// Kernel time at which an exchange starts: its first request byte, else its first response
/// byte, else the connection's first record.
pub fn exchange_start_ns(ex: &Exchange, info: &ConnectionInfo) -> u64 {
    ex.timings
        .request_first_byte_ns
        .or(ex.timings.response_first_byte_ns)
        .unwrap_or(info.first_ts_ns)
}

/// Progress of a replay, reported through the caller's callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The trace has been indexed: this many connections to rebuild.
    Indexed {
        /// Connections found.
        connections: u64,
    },
    /// One more connection was rebuilt.
    ConnectionDone,
}

/// One connection after reconstruction.
#[derive(Debug, Clone)]
pub struct ReplayedConnection {
    /// What the trace says about it.
    pub info: ConnectionInfo,
    /// Its exchanges and notes.
    pub result: Reconstruction,
    /// Its plaintext streams (the pcapng output replays them as TCP).
    pub streams: ConnectionStreams,
}

/// A replayed trace.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Connections in the trace's order (first timestamp, then key).
    pub connections: Vec<ReplayedConnection>,
    /// `(connection index, exchange index)` of every exchange, ordered by start time, then
    /// connection key, then position: the output order of every sink.
    pub order: Vec<(usize, usize)>,
    /// Problems reading the trace.
    pub errors: Vec<ReadError>,
    /// Losses the trace could not attribute to a connection.
    pub unattributed_loss: Vec<String>,
}

impl Replayed {
    /// The exchanges in output order, with their connection.
    pub fn exchanges(&self) -> impl Iterator<Item = (&ConnectionInfo, &Exchange, usize)> + '_ {
        self.order.iter().map(|&(c, e)| {
            let conn = &self.connections[c];
            (&conn.info, &conn.result.exchanges[e], e)
        })
    }
}

/// Replays a trace. `progress` is called from worker threads.
pub fn replay(
    trace: &[u8],
    options: &ReplayOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Replayed {
    let contents = read_connections(trace);
    progress(Progress::Indexed {
        connections: contents.connections.len() as u64,
    });
    let connections: Vec<ReplayedConnection> = contents
        .connections
        .into_par_iter()
        .map(|c| {
            let result = reconstruct(&c.streams, options);
            progress(Progress::ConnectionDone);
            ReplayedConnection {
                info: c.info,
                result,
                streams: c.streams,
            }
        })
        .collect();
    let mut order: Vec<(u64, usize, usize)> = connections
        .iter()
        .enumerate()
        .flat_map(|(ci, c)| {
            c.result
                .exchanges
                .iter()
                .enumerate()
                .map(move |(ei, ex)| (exchange_start_ns(ex, &c.info), ci, ei))
        })
        .collect();
    // Connection indexes already follow (first timestamp, key), so (start, ci, ei) is total
    // and independent of how the work was split.
    order.sort_unstable();
    Replayed {
        connections,
        order: order.into_iter().map(|(_, c, e)| (c, e)).collect(),
        errors: contents.errors,
        unattributed_loss: contents.unattributed_loss,
    }
}
